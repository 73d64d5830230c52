"""The connection over time: heartbeats, ping, clean disconnect, a server
restart on the same port, a dead connection, and pushes caught in a drop."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from phoenix_channels import Push, PushTimeout, Socket
from phoenix_channels.server import Server, demo_server

from .conftest import FAST, Calls, SocketFactory, bounded, joined, until


def heartbeat_replies(socket: Socket) -> Calls:
    """Record every heartbeat reply the socket receives."""
    replies = Calls()
    socket.on_message(lambda msg: replies(msg) if msg.topic == "phoenix" else None)
    return replies


async def test_heartbeats_keep_the_connection_up(connect: SocketFactory) -> None:
    """With a 0.1 s heartbeat, several beats are answered on one connection."""
    socket = await connect(heartbeat_interval=0.1)
    channel = await joined(socket, "room:lobby")
    closes = Calls()
    socket.on_close(closes)
    replies = heartbeat_replies(socket)
    await replies.wait_count(4)
    assert all(
        msg.payload == {"status": "ok", "response": {}} for (msg,) in replies.calls
    )
    assert closes.calls == []
    assert socket.is_connected()
    assert await bounded(channel.push("echo", {"a": 1})) == {"a": 1}


async def test_heartbeats_keep_an_idle_connection_from_the_idle_timeout(
    vsn: str,
) -> None:
    """A server closing connections idle for 0.3 s keeps one whose only traffic
    is the client's 0.1 s heartbeat."""
    async with demo_server(port=0, idle_timeout=0.3) as server:
        socket = Socket(server.url, vsn=vsn, heartbeat_interval=0.1)
        try:
            await bounded(socket.connect())
            closes = Calls()
            socket.on_close(closes)
            replies = heartbeat_replies(socket)
            await replies.wait_count(10)  # about 1 s: over three idle timeouts
            assert closes.calls == []
            assert len(server.connections) == 1
        finally:
            await socket.disconnect()


async def test_idle_connection_without_heartbeats_is_closed_and_healed(
    vsn: str,
) -> None:
    """A client whose heartbeat is slower than the server's idle timeout is
    closed by the server, then reconnects by itself."""
    async with demo_server(port=0, idle_timeout=0.2) as server:
        socket = Socket(server.url, vsn=vsn, heartbeat_interval=30.0, **FAST)
        try:
            await bounded(socket.connect())
            opens, closes = Calls(), Calls()
            socket.on_open(opens)
            socket.on_close(closes)
            await closes.wait()
            await opens.wait()
            assert socket.is_connected()
        finally:
            await socket.disconnect()


async def test_ping_measures_a_round_trip(socket: Socket) -> None:
    """``ping()`` returns one heartbeat round trip in seconds."""
    rtt = await bounded(socket.ping())
    assert isinstance(rtt, float)
    assert 0 <= rtt < 1.0


async def test_disconnect_is_clean_and_final(server: Server, socket: Socket) -> None:
    """``disconnect()`` closes with 1000 and nothing reconnects."""
    channel = await joined(socket, "room:lobby")
    closes, opens = Calls(), Calls()
    socket.on_close(closes)
    socket.on_open(opens)
    await bounded(socket.disconnect())
    assert socket.connection_state == "closed"
    assert closes.first_args[0].code == 1000
    await until(lambda: not server.connections, "the server saw the close")
    assert channel.state == "errored"
    assert opens.calls == []


async def test_context_manager_connects_and_disconnects(
    server: Server, vsn: str
) -> None:
    """``async with Socket(...)`` is connected inside and closed after."""
    async with Socket(server.url, vsn=vsn) as socket:
        assert socket.is_connected()
        assert socket.connection_state == "open"
        await joined(socket, "room:lobby")
    assert socket.connection_state == "closed"


async def test_server_restart_on_the_same_port_reconnects_and_rejoins(
    server: Server, vsn: str
) -> None:
    """After the server stops and a new one starts on the same port, the socket
    reconnects on its reconnect_after schedule and every channel rejoins with
    fresh params from its callable."""
    port = server.port
    tries = Calls()

    def reconnect_after(n: int) -> float:
        tries(n)
        return 0.05

    connects = itertools.count(1)
    socket = Socket(
        server.url,
        vsn=vsn,
        params=lambda: {"connect": str(next(connects))},
        reconnect_after=reconnect_after,
        rejoin_after=lambda n: 0.05,
    )
    replacement: Server | None = None
    try:
        await bounded(socket.connect())
        attempts = {topic: itertools.count(1) for topic in ("room:a", "room:b")}
        replies = {topic: Calls() for topic in attempts}
        for topic, counter in attempts.items():
            channel = socket.channel(topic, lambda c=counter: {"attempt": next(c)})
            channel.join().receive("ok", replies[topic])
            await replies[topic].wait()
        closes = Calls()
        socket.on_close(closes)

        await server.stop()  # clients get 1001 "going away"
        await closes.wait()
        assert closes.first_args[0].code == 1001
        # The server is down: attempts fail and follow the schedule 1, 2, 3...
        await tries.wait_count(3)
        assert tries.first_args[:3] == [1, 2, 3]

        replacement = demo_server(port=port)
        await replacement.start()
        for got in replies.values():
            await got.wait_count(2)
            assert got.first_args[0]["params"] == {"attempt": 1}
            assert got.first_args[-1]["params"]["attempt"] >= 2
        assert socket.is_connected()
        [conn] = replacement.connections
        assert int(conn.params["connect"]) >= 2  # socket params re-read too
        assert sorted(conn.topics) == ["room:a", "room:b"]
    finally:
        await socket.disconnect()
        if replacement is not None:
            await replacement.stop()


async def test_paused_heartbeats_are_detected_within_two_intervals(
    server: Server, connect: SocketFactory
) -> None:
    """When the server stops answering heartbeats, the client declares the
    connection dead within two heartbeat intervals, reconnects and rejoins."""
    interval = 0.25
    socket = await connect(heartbeat_interval=interval, **FAST)
    channel = socket.channel("room:lobby")
    joins = Calls()
    channel.join().receive("ok", joins)
    await joins.wait()
    beats = heartbeat_replies(socket)
    await beats.wait()  # heartbeats flow
    errors = Calls()
    channel.on_error(lambda reason: errors(asyncio.get_running_loop().time(), reason))

    loop = asyncio.get_running_loop()
    paused_at = loop.time()
    server.pause_heartbeats()
    await errors.wait(timeout=4 * interval + 2)
    detected_at, reason = errors.calls[0]
    assert detected_at - paused_at <= 2 * interval + 0.25
    assert reason == {"source": "transport", "reason": "heartbeat_timeout"}

    server.resume_heartbeats()
    await joins.wait_count(2)
    assert channel.state == "joined"
    assert await bounded(channel.push("echo", {"back": 1})) == {"back": 1}


def record_outcomes(push: Push) -> Calls:
    """Every terminal status of ``push``, as (status, response)."""
    outcomes = Calls()
    for status in ("ok", "error", "timeout"):
        push.receive(status, lambda response, s=status: outcomes(s, response))
    return outcomes


async def settle(pushes: list[Push]) -> list[Any]:
    """Await every push (bounded); exceptions are returned, not raised."""
    results: list[Any] = await bounded(asyncio.gather(*pushes, return_exceptions=True))
    return results


async def test_pushes_unread_by_the_server_end_once_after_a_drop(
    server: Server, socket: Socket
) -> None:
    """Pushes sent right before the server drops the TCP connection each end
    exactly once (with timeout), and the channel rejoins."""
    channel = socket.channel("room:lobby")
    joins = Calls()
    channel.join().receive("ok", joins)
    await joins.wait()
    pushes = [channel.push("echo", {"i": i}, timeout=0.4) for i in range(5)]
    pushes.append(channel.push("slow", {"ms": 100}, timeout=0.4))
    outcomes = [record_outcomes(p) for p in pushes]
    assert server.drop_connections() == 1
    results = await settle(pushes)
    await joins.wait_count(2)
    assert await bounded(channel.push("echo", {"after": 1})) == {"after": 1}
    assert [len(o) for o in outcomes] == [1] * len(pushes)
    assert all(isinstance(r, PushTimeout) for r in results)
    assert socket.pending_pushes() == []


async def test_pushes_running_on_the_server_end_once_after_a_drop(
    server: Server, socket: Socket
) -> None:
    """Pushes the server is working on when the connection drops each end
    exactly once, and late replies never arrive for them."""
    busy = await joined(socket, "room:busy")
    probe = await joined(socket, "room:probe")
    pushes = [busy.push("slow", {"ms": 300}, timeout=0.6) for _ in range(3)]
    pushes.append(busy.push("noreply", {}, timeout=0.6))
    outcomes = [record_outcomes(p) for p in pushes]
    # Frames are read in order: once this is answered, the server has them all.
    await bounded(probe.push("echo", {}))
    server.drop_connections()
    await settle(pushes)
    await until(lambda: busy.state == "joined", "busy rejoined")
    # Past the moment the slow replies would have come on the old connection.
    assert await bounded(busy.push("slow", {"ms": 400})) == {"ms": 400}
    assert [o.calls for o in outcomes] == [[("timeout", {})]] * len(pushes)
    assert socket.pending_pushes() == []


async def test_pushes_made_while_disconnected_are_sent_after_rejoin(
    server: Server, connect: SocketFactory
) -> None:
    """A push made while the connection is down is buffered, then sent once the
    channel has rejoined, and gets its reply."""
    socket = await connect(reconnect_after=lambda n: 0.3, rejoin_after=lambda n: 0.05)
    channel = socket.channel("room:lobby")
    joins = Calls()
    channel.join().receive("ok", joins)
    await joins.wait()
    closes = Calls()
    socket.on_close(closes)
    server.drop_connections()
    await closes.wait()
    assert not socket.is_connected()
    push = channel.push("echo", {"buffered": True})
    assert await bounded(push) == {"buffered": True}
    assert joins.calls and len(joins) == 2


@pytest.mark.parametrize("vsn", ["2.0.0"])
async def test_server_stop_closes_clients_with_1001(
    server: Server, socket: Socket
) -> None:
    """A stopping server closes with 1001 "going away", and the client errors its
    channels and schedules a reconnect."""
    channel = await joined(socket, "room:lobby")
    closes, errors = Calls(), Calls()
    socket.on_close(closes)
    channel.on_error(errors)
    await server.stop()
    await closes.wait()
    await errors.wait()
    assert closes.first_args[0].code == 1001
    assert channel.state == "errored"
    assert socket.connection_state in ("closed", "connecting")
