"""The client over real loopback sockets, against a tiny test-only server.

The server here speaks just enough Phoenix (v2 arrays) to prove the
transport and the core work together: join, push, reply, leave, heartbeat,
a dropped connection healed by reconnect and rejoin. The bundled server has
its own end-to-end tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from phoenix_channels import ConnectError, JoinError, PushTimeout, Socket

WAIT = 5.0  # every wait in this file is bounded by this


class MiniPhoenix:
    """join ok (private refused), echo, noreply, leave; records what it got."""

    def __init__(self) -> None:
        self.frames: list[list[Any]] = []
        self.connections: list[ServerConnection] = []
        self.joins = 0
        self.joined = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        async for raw in ws:
            frame = json.loads(raw)
            self.frames.append(frame)
            join_ref, ref, topic, event, payload = frame
            if event == "noreply":
                continue
            status, response = "ok", payload
            if event == "phx_join":
                if topic == "room:private":
                    status, response = "error", {"reason": "unauthorized"}
                else:
                    self.joins += 1
                    self.joined.set()
            out = [
                join_ref,
                ref,
                topic,
                "phx_reply",
                {"status": status, "response": response},
            ]
            await ws.send(json.dumps(out))
            if event == "phx_leave":
                await ws.send(json.dumps([join_ref, join_ref, topic, "phx_close", {}]))


@pytest.fixture
async def mini() -> AsyncIterator[tuple[MiniPhoenix, str]]:
    app = MiniPhoenix()
    server: Server
    async with serve(app.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield app, f"ws://127.0.0.1:{port}/socket"


async def test_join_push_reply_leave_over_loopback(
    mini: tuple[MiniPhoenix, str],
) -> None:
    """join -> push -> reply -> leave works over a real websocket."""
    app, url = mini
    async with Socket(url, params={"user": "u1"}) as socket:
        assert socket.is_connected()
        channel = socket.channel("room:lobby", {"n": 1})
        assert await asyncio.wait_for(channel.join(), WAIT) == {"n": 1}
        reply = await asyncio.wait_for(channel.push("echo", {"body": "é✓"}), WAIT)
        assert reply == {"body": "é✓"}
        channel.leave()
        assert channel.state == "closed"
    assert socket.connection_state == "closed"
    assert [f[3] for f in app.frames] == ["phx_join", "echo", "phx_leave"]
    assert app.frames[0][:3] == [app.frames[0][1], app.frames[0][1], "room:lobby"]


async def test_refused_join_raises_join_error(mini: tuple[MiniPhoenix, str]) -> None:
    """A refused join surfaces as JoinError with the server's response."""
    _, url = mini
    async with Socket(url) as socket:
        with pytest.raises(JoinError) as info:
            await asyncio.wait_for(socket.channel("room:private").join(), WAIT)
        assert info.value.response == {"reason": "unauthorized"}


async def test_push_without_reply_times_out(mini: tuple[MiniPhoenix, str]) -> None:
    """A push the server never answers raises PushTimeout after its timeout."""
    _, url = mini
    async with Socket(url) as socket:
        channel = socket.channel("room:lobby")
        await asyncio.wait_for(channel.join(), WAIT)
        push = channel.push("noreply", {}, timeout=0.05)
        with pytest.raises(PushTimeout):
            await asyncio.wait_for(push, WAIT)
        assert push.status == "timeout"


async def test_pipelined_batch_gets_every_reply(mini: tuple[MiniPhoenix, str]) -> None:
    """Pushes gathered together are pipelined and each gets its own reply."""
    _, url = mini
    async with Socket(url) as socket:
        channel = socket.channel("room:lobby")
        await asyncio.wait_for(channel.join(), WAIT)
        pushes = [channel.push("echo", {"i": i}) for i in range(200)]
        assert len(socket.pending_pushes()) == 200
        replies = await asyncio.wait_for(asyncio.gather(*pushes), WAIT)
        assert replies == [{"i": i} for i in range(200)]
        assert socket.pending_pushes() == []


async def test_ping_measures_a_heartbeat_round_trip(
    mini: tuple[MiniPhoenix, str],
) -> None:
    """ping() sends a phoenix heartbeat and returns its round-trip time."""
    app, url = mini
    async with Socket(url) as socket:
        rtt = await asyncio.wait_for(socket.ping(), WAIT)
        assert 0 <= rtt < WAIT
    assert app.frames[-1][2:4] == ["phoenix", "heartbeat"]


async def test_dropped_connection_reconnects_and_rejoins(
    mini: tuple[MiniPhoenix, str],
) -> None:
    """After the server drops the TCP connection, the socket reconnects and
    the channel rejoins with a new join_ref."""
    app, url = mini
    async with Socket(url) as socket:
        channel = socket.channel("room:lobby")
        joins: asyncio.Queue[str | None] = asyncio.Queue()
        join = channel.join().receive("ok", lambda: joins.put_nowait(channel.join_ref))
        await asyncio.wait_for(join, WAIT)
        first_join_ref = await joins.get()
        app.connections[-1].transport.abort()  # no close frame: code 1006
        # The join push's hooks fire again for the rejoin (PROTOCOL §3.6).
        assert await asyncio.wait_for(joins.get(), WAIT) == channel.join_ref
        assert channel.state == "joined"
        assert app.joins == 2
        assert channel.join_ref != first_join_ref
        assert len(app.connections) == 2
        assert await asyncio.wait_for(channel.push("echo", {"after": 1}), WAIT) == {
            "after": 1
        }


async def test_connect_to_a_closed_port_raises_connect_error() -> None:
    """The first connection attempt failing raises ConnectError, and nothing
    keeps retrying in the background."""
    async with serve(lambda ws: ws.close(), "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
    socket = Socket(f"ws://127.0.0.1:{port}/socket", params={"token": "s3cret"})
    with pytest.raises(ConnectError) as info:
        await asyncio.wait_for(socket.connect(), WAIT)
    assert "s3cret" not in str(info.value)
    assert socket.connection_state == "closed"
    assert not socket._reconnect_timer.is_scheduled
