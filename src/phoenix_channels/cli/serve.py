"""``phoenix-channels serve``: the bundled server with the demo channels."""

from __future__ import annotations

import argparse
import sys

from ..server import Server, serve_forever

__all__ = ["run_serve"]


async def run_serve(args: argparse.Namespace) -> int:
    def ready(server: Server) -> None:
        print(f"serving the demo channels at {server.url}", flush=True)
        print("stop with Ctrl-C", file=sys.stderr, flush=True)

    try:
        await serve_forever(args.host, args.port, args.max_channels, ready=ready)
    except OSError as exc:
        print(
            f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
    return 0
