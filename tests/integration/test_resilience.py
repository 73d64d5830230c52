"""Resilience on real sockets: the bundled server behind a ChaosProxy."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from phoenix_channels import PushTimeout, Socket
from phoenix_channels.server import Server, demo_server
from phoenix_channels.testing import ChaosProxy

WAIT = 5.0
FAST = {
    "reconnect_after": lambda tries: 0.05,
    "rejoin_after": lambda tries: 0.05,
}


@pytest.fixture
async def proxied() -> AsyncIterator[tuple[Server, ChaosProxy]]:
    async with demo_server(port=0) as server, ChaosProxy(server.port) as proxy:
        yield server, proxy


class Joins:
    """Counts join outcomes of a channel (the join hooks fire on every rejoin)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    def watch(self, push: Any) -> Any:
        for status in ("ok", "error", "timeout"):
            push.receive(status, lambda _, s=status: self.queue.put_nowait(s))
        return push

    async def next(self) -> str:
        return await asyncio.wait_for(self.queue.get(), WAIT)


async def test_frozen_connection_is_detected_by_heartbeat_and_healed(
    proxied: tuple[Server, ChaosProxy],
) -> None:
    """A connection that stops carrying bytes is closed after an unanswered
    heartbeat (within two intervals) and replaced; the channel rejoins."""
    _, proxy = proxied
    interval = 0.2
    closes: asyncio.Queue[Any] = asyncio.Queue()
    joins = Joins()
    async with Socket(proxy.url(), heartbeat_interval=interval, **FAST) as socket:
        socket.on_close(closes.put_nowait)
        channel = socket.channel("room:hb")
        joins.watch(channel.join())
        assert await joins.next() == "ok"
        proxy.freeze()
        frozen_at = asyncio.get_running_loop().time()
        event = await asyncio.wait_for(closes.get(), 2 * interval + WAIT)
        detected_after = asyncio.get_running_loop().time() - frozen_at
        proxy.cut()  # the frozen TCP connection goes away for good
        proxy.thaw()
        assert await joins.next() == "ok"
        assert channel.state == "joined"
    assert detected_after <= 2 * interval + 1.0, detected_after
    assert event.reason == "heartbeat timeout" or event.code != 1000


async def test_pushes_in_flight_during_a_drop_end_exactly_once(
    proxied: tuple[Server, ChaosProxy],
) -> None:
    """Pushes sent just before the connection is cut each end exactly once
    (timeout: their replies can never come), and the channel rejoins."""
    _, proxy = proxied
    outcomes: list[tuple[int, str]] = []
    joins = Joins()
    async with Socket(proxy.url(), **FAST) as socket:
        channel = socket.channel("room:drop")
        joins.watch(channel.join())
        assert await joins.next() == "ok"
        pushes = []
        for i in range(20):
            push = channel.push("slow", {"ms": 200}, timeout=0.5)
            for status in ("ok", "error", "timeout"):
                push.receive(status, lambda _, i=i, s=status: outcomes.append((i, s)))
            pushes.append(push)
        proxy.cut()
        results = await asyncio.wait_for(
            asyncio.gather(*pushes, return_exceptions=True), WAIT
        )
        assert await joins.next() == "ok"
        assert socket.pending_pushes() == []
    assert sorted(i for i, _ in outcomes) == list(range(20))
    assert all(isinstance(r, PushTimeout) for r in results)


async def test_disconnect_during_reconnect_attempts_stops_them_for_good(
    proxied: tuple[Server, ChaosProxy],
) -> None:
    """With the server unreachable the socket keeps retrying; disconnect()
    stops that: nothing is scheduled and the proxy sees no new attempt."""
    _, proxy = proxied
    socket = Socket(proxy.url(), **FAST)
    await asyncio.wait_for(socket.connect(), WAIT)
    attempts: asyncio.Queue[Any] = asyncio.Queue()
    socket.on_error(attempts.put_nowait)
    proxy.refuse = True
    proxy.cut()
    for _ in range(3):  # three failed reconnect attempts
        await asyncio.wait_for(attempts.get(), WAIT)
    await asyncio.wait_for(socket.disconnect(), WAIT)
    accepted = proxy.accepted
    assert socket.connection_state == "closed"
    assert not socket._reconnect_timer.is_scheduled
    proxy.refuse = False
    # A ping round trip on a fresh socket proves the loop ran on meanwhile.
    async with Socket(proxy.url()) as other:
        await asyncio.wait_for(other.ping(), WAIT)
    assert proxy.accepted == accepted + 1
    assert socket.connection_state == "closed"


async def test_socket_callbacks_fire_once_per_event(
    proxied: tuple[Server, ChaosProxy],
) -> None:
    """on_open/on_close fire once per connection opened/closed; on_error once
    per failure, across a cut and a reconnect."""
    _, proxy = proxied
    seen: list[str] = []
    opened: asyncio.Queue[None] = asyncio.Queue()
    socket = Socket(proxy.url(), **FAST)
    socket.on_open(lambda: (seen.append("open"), opened.put_nowait(None)))
    socket.on_close(lambda event: seen.append(f"close {event.code}"))
    socket.on_error(lambda error: seen.append("error"))
    await asyncio.wait_for(socket.connect(), WAIT)
    await asyncio.wait_for(opened.get(), WAIT)
    proxy.cut()
    await asyncio.wait_for(opened.get(), WAIT)
    await asyncio.wait_for(socket.disconnect(), WAIT)
    assert seen == ["open", "close 1006", "open", "close 1000"]


@pytest.mark.parametrize("fault", ["close_mid_frame", "garble"])
async def test_broken_bytes_never_break_the_socket(
    proxied: tuple[Server, ChaosProxy], fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A frame cut in half or garbled is dropped or fails the connection, which
    heals; no exception escapes and the channel works again."""
    _, proxy = proxied
    caplog.set_level(logging.WARNING)
    joins = Joins()
    async with Socket(proxy.url(), **FAST) as socket:
        channel = socket.channel("room:bytes")
        joins.watch(channel.join())
        assert await joins.next() == "ok"
        getattr(proxy, fault)()
        broken = channel.push("echo", {"data": "x" * 200}, timeout=0.5)
        try:
            await asyncio.wait_for(broken, WAIT)
        except PushTimeout:
            pass  # lost with the broken bytes: ended exactly once all the same
        for _ in range(50):
            try:
                if channel.state == "joined":
                    reply = await asyncio.wait_for(channel.push("echo", {"n": 1}), WAIT)
                    break
            except PushTimeout:
                continue
            await joins.next()
        assert reply == {"n": 1}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
