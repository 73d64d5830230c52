"""``phoenix-channels demo``: the bundled server plus the push scenarios."""

from __future__ import annotations

import argparse

from ..server import demo_server
from .scenarios import Outcome, run_scenarios

__all__ = ["run_demo"]


async def run_demo(args: argparse.Namespace) -> int:
    if args.url:
        return _report(await run_scenarios(args.url, args.vsn), args.url)
    async with demo_server(port=0) as server:
        print(f"bundled Phoenix-protocol server at {server.url}\n", flush=True)
        outcomes = await run_scenarios(server.url, args.vsn)
    return _report(outcomes, server.url)


def _report(outcomes: list[Outcome], url: str) -> int:
    for outcome in outcomes:
        print(outcome.line(), flush=True)
    failed = [o.name for o in outcomes if not o.passed]
    if failed:
        print(f"\n{len(failed)} scenario(s) misbehaved: {', '.join(failed)}")
        return 1
    print(f"\nall {len(outcomes)} scenarios behaved as expected against {url}")
    return 0
