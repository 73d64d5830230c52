"""The push scenarios ``phoenix-channels demo`` runs, against any server with
the demo channels (API.md, "The demo channels").

Each scenario returns one readable line; it passes when the push behaved as
phoenix.js semantics say it must.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..channel import Channel
from ..errors import PushError, PushTimeout
from ..socket import Socket

__all__ = ["SCENARIOS", "Outcome", "run_scenarios"]


@dataclass
class Outcome:
    name: str
    passed: bool
    detail: str
    seconds: float

    def line(self) -> str:
        mark = "PASS" if self.passed else "FAIL"
        return (
            f"{mark}  {self.name:<10} {self.detail:<62} {self.seconds * 1000:8.1f} ms"
        )


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 40 else text[:37] + "..."


async def ok(channel: Channel) -> tuple[bool, str]:
    reply = await channel.push("echo", {"body": "hello"})
    return reply == {"body": "hello"}, f"echo -> ok {_short(reply)}"


async def error(channel: Channel) -> tuple[bool, str]:
    try:
        await channel.push("fail", {})
    except PushError as exc:
        return exc.status == "error", f"fail -> {exc.status} {_short(exc.response)}"
    return False, "fail -> ok (expected an error reply)"


async def timeout(channel: Channel) -> tuple[bool, str]:
    push = channel.push("noreply", {}, timeout=0.3)
    try:
        await push
    except PushTimeout:
        return push.status == "timeout", "noreply -> timeout after 0.3 s (no reply)"
    return False, "noreply -> got a reply (expected a timeout)"


async def resend(channel: Channel) -> tuple[bool, str]:
    push = channel.push("slow", {"ms": 400}, timeout=0.2)
    first_ref = push.ref
    try:
        await push
        return False, "slow 400 ms answered within 0.2 s (expected a timeout)"
    except PushTimeout:
        pass
    push.resend(2.0)
    reply = await push
    passed = push.ref != first_ref and reply == {"ms": 400}
    refs = f"ref {first_ref}->{push.ref}"
    return passed, f"slow 400 ms: timeout at 0.2 s, resend(2.0) -> ok, {refs}"


async def retry(channel: Channel) -> tuple[bool, str]:
    channel.push("slow", {"ms": 500})  # keeps the channel busy for 500 ms
    push = channel.push("echo", {"n": 1}, timeout=0.3)
    timeouts = []
    push.receive("timeout", lambda: timeouts.append(push.ref))
    reply = await push.retry(attempts=3, backoff=lambda n: 0.1 * n)
    passed = reply == {"n": 1} and len(timeouts) == 1
    return passed, f"echo behind a busy channel: {len(timeouts)} timeout, retry -> ok"


async def batch(channel: Channel) -> tuple[bool, str]:
    ops = [("echo", {"i": i}) for i in range(100)] + [("fail", {})]
    results = await asyncio.gather(
        *(channel.push(event, payload) for event, payload in ops),
        return_exceptions=True,
    )
    oks = sum(1 for r in results if isinstance(r, dict))
    errors = sum(1 for r in results if isinstance(r, PushError))
    return (oks, errors) == (
        100,
        1,
    ), f"101 pipelined pushes -> {oks} ok, {errors} error"


async def monitoring(channel: Channel) -> tuple[bool, str]:
    pushes = [channel.push("slow", {"ms": 50}) for _ in range(3)]
    in_flight = len(channel.socket.pending_pushes())
    await asyncio.gather(*pushes)
    durations = [p.duration or 0.0 for p in pushes]
    ordered = durations == sorted(durations)
    passed = in_flight >= 3 and ordered and not channel.socket.pending_pushes()
    shown = ", ".join(f"{d * 1000:.0f}" for d in durations)
    return passed, f"{in_flight} in flight; durations {shown} ms, none left pending"


SCENARIOS: list[tuple[str, Callable[[Channel], Awaitable[tuple[bool, str]]]]] = [
    ("ok", ok),
    ("error", error),
    ("timeout", timeout),
    ("resend", resend),
    ("retry", retry),
    ("batch", batch),
    ("monitoring", monitoring),
]


async def run_scenarios(url: str, vsn: str = "2.0.0") -> list[Outcome]:
    """Run every scenario on its own channel; each is bounded in time."""
    outcomes = []
    async with Socket(url, vsn=vsn) as socket:
        for index, (name, scenario) in enumerate(SCENARIOS):
            channel = socket.channel(f"room:demo-{index}")
            started = time.perf_counter()
            try:
                await asyncio.wait_for(channel.join(), 5)
                passed, detail = await asyncio.wait_for(scenario(channel), 15)
            except Exception as exc:  # a scenario failing must not stop the others
                passed, detail = False, f"{type(exc).__name__}: {exc}"
            outcomes.append(
                Outcome(name, passed, detail, time.perf_counter() - started)
            )
            channel.leave()
    return outcomes
