"""Ordering and blocking, as the Phoenix socket and channel processes do it
(transcripts README, fact 11)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from phoenix_channels.server import (
    ChannelSocket,
    Server,
    ServerChannel,
    demo_server,
    noreply,
    ok,
)

from .helpers import TIMEOUT, connect, heartbeat, join, recv_json, until, v2


async def test_join_delay_blocks_the_whole_connection(demo):
    """A heartbeat sent during a delayed join is answered after the join."""
    ws = await connect(demo)
    async with ws:
        started = time.monotonic()
        await ws.send(v2("1", "1", "room:slowjoin", "phx_join", {"delay_ms": 200}))
        await ws.send(v2(None, "2", "phoenix", "heartbeat"))
        assert (await recv_json(ws))[:2] == ["1", "1"]
        assert (await recv_json(ws))[:3] == [None, "2", "phoenix"]
        assert time.monotonic() - started >= 0.2


async def test_a_blocking_join_holds_other_channels_output(demo):
    """While a join runs inside the connection, replies of other channels
    wait: Phoenix's socket process only writes them after the join."""
    ws = await connect(demo)
    async with ws:
        await join(ws, "room:a", "1")
        # t=0: slow on room:a replies at ~50 ms, inside the 300 ms join.
        await ws.send(v2("1", "2", "room:a", "slow", {"ms": 50}))
        await ws.send(v2("3", "3", "room:b", "phx_join", {"delay_ms": 300}))
        assert (await recv_json(ws))[:4] == ["3", "3", "room:b", "phx_reply"]
        assert (await recv_json(ws))[:4] == ["1", "2", "room:a", "phx_reply"]


async def test_a_blocking_join_holds_broadcasts_too(demo):
    """Broadcasts from other connections also wait behind a join."""
    ws, other = await connect(demo), await connect(demo)
    async with ws, other:
        await join(ws, "room:a", "1")
        await join(other, "room:a", "9")
        await ws.send(v2("3", "3", "room:b", "phx_join", {"delay_ms": 200}))
        await heartbeat(other)  # the join has surely started by now
        await other.send(v2("9", "10", "room:a", "broadcast", {"n": 1}))
        assert (await recv_json(other))[3] == "broadcasted"
        assert (await recv_json(ws))[:4] == ["3", "3", "room:b", "phx_reply"]
        assert await recv_json(ws) == [None, None, "room:a", "broadcasted", {"n": 1}]


async def test_slow_blocks_only_its_own_channel(demo):
    """A slow handler delays its own topic, not heartbeats or other topics."""
    ws = await connect(demo)
    async with ws:
        await join(ws, "room:a", "1")
        await join(ws, "room:b", "2")
        await ws.send(v2("1", "3", "room:a", "slow", {"ms": 200}))
        await ws.send(v2("1", "4", "room:a", "echo", {"same": 1}))
        await ws.send(v2("2", "5", "room:b", "echo", {"other": 1}))
        await ws.send(v2(None, "6", "phoenix", "heartbeat"))
        refs = [(await recv_json(ws))[1] for _ in range(4)]
        assert refs == ["6", "5", "3", "4"]


async def test_leave_waits_behind_a_slow_handler(demo):
    """phx_leave is handled by the channel in order: slow reply, leave
    reply, then phx_close."""
    ws = await connect(demo)
    async with ws:
        await join(ws, "room:a", "1")
        await ws.send(v2("1", "2", "room:a", "slow", {"ms": 100}))
        await ws.send(v2("1", "3", "room:a", "phx_leave"))
        assert (await recv_json(ws))[:2] == ["1", "2"]
        assert await recv_json(ws) == [
            "1",
            "3",
            "room:a",
            "phx_reply",
            {"response": {}, "status": "ok"},
        ]
        assert await recv_json(ws) == ["1", "1", "room:a", "phx_close", {}]


async def test_duplicate_join_cancels_the_old_channel(demo):
    """A duplicate join ends the old channel at once, even mid-handler: its
    pending reply never comes; the new reply, then phx_close for the old."""
    ws = await connect(demo)
    async with ws:
        await join(ws, "room:a", "1")
        await ws.send(v2("1", "2", "room:a", "slow", {"ms": 300}))
        await ws.send(v2("3", "3", "room:a", "phx_join", {"again": True}))
        assert (await recv_json(ws))[:4] == ["3", "3", "room:a", "phx_reply"]
        assert await recv_json(ws) == ["1", "1", "room:a", "phx_close", {}]
        await ws.send(v2("3", "4", "room:a", "count"))
        assert (await recv_json(ws))[1:2] == ["4"]  # not the cancelled slow
        await heartbeat(ws)


async def test_stale_leave_is_ignored_but_pushes_are_not(demo):
    """Fact 6: join_ref is checked on phx_leave only."""
    ws = await connect(demo)
    async with ws:
        await join(ws, "room:a", "1")
        await ws.send(v2(None, "2", "room:a", "phx_leave"))  # null != "1"
        await ws.send(v2("99", "3", "room:a", "echo", {"e": 1}))
        assert (await recv_json(ws))[:2] == ["1", "3"]
        assert demo.connections[0].topics == ["room:a"]


async def test_max_channels_limits_joins():
    """Past max_channels a join gets 'too many channels joined'; leaving frees
    a slot, and re-joining a joined topic is not a new channel."""
    async with demo_server(port=0, max_channels=2) as server:
        ws = await connect(server)
        async with ws:
            await join(ws, "room:1", "1")
            await join(ws, "room:2", "2")
            await ws.send(v2("3", "3", "room:3", "phx_join"))
            assert await recv_json(ws) == [
                "3",
                "3",
                "room:3",
                "phx_reply",
                {"response": {"reason": "too many channels joined"}, "status": "error"},
            ]
            await ws.send(v2("4", "4", "room:2", "phx_join"))
            assert (await recv_json(ws))[4]["status"] == "ok"
            assert (await recv_json(ws))[3] == "phx_close"
            await ws.send(v2("1", "5", "room:1", "phx_leave"))
            assert (await recv_json(ws))[3] == "phx_reply"
            assert (await recv_json(ws))[3] == "phx_close"
            await join(ws, "room:3", "6")


async def test_unmatched_join_does_not_block(demo):
    """A join no channel handles is answered at once (no task, no hold)."""
    ws = await connect(demo)
    async with ws:
        await ws.send(v2("1", "1", "nochannel:x", "phx_join"))
        await ws.send(v2(None, "2", "phoenix", "heartbeat"))
        assert (await recv_json(ws))[:3] == [None, "1", "nochannel:x"]
        assert (await recv_json(ws))[1] == "2"


async def test_many_pipelined_pushes_keep_their_order(demo):
    """Pushes on one channel are answered in the order they were sent."""
    ws = await connect(demo)
    async with ws:
        await join(ws, "room:order")
        for n in range(200):
            await ws.send(v2("1", str(n), "room:order", "count"))
        counts = [(await recv_json(ws))[4]["response"]["count"] for _ in range(200)]
        assert counts == list(range(1, 201))


class Gated(ServerChannel):
    """A channel whose join waits until the test opens the gate, and whose
    "ping" handler tells the test when it has replied."""

    gate: asyncio.Event
    replied: asyncio.Event

    async def join(self, topic: str, payload: Any, socket: ChannelSocket):
        if topic == "gated:wait":
            await Gated.gate.wait()
        return ok()

    async def handle_in(self, event: str, payload: Any, socket: ChannelSocket):
        socket.send_reply(socket.ref, "ok", {"pong": True})
        Gated.replied.set()
        return noreply()


@pytest.fixture
async def gated():
    Gated.gate, Gated.replied = asyncio.Event(), asyncio.Event()
    async with Server({"gated:*": Gated}, port=0) as server:
        yield server
    Gated.gate.set()


async def test_a_pending_join_holds_replies_deterministically(gated):
    """A channel's reply made while another join is pending reaches the
    client only after that join's reply (no timing involved)."""
    ws = await connect(gated)
    async with ws:
        await join(ws, "gated:a", "1")
        await ws.send(v2("2", "2", "gated:wait", "phx_join"))
        await ws.send(v2("1", "3", "gated:a", "ping"))
        # The push reached the server and waits in the backlog, unhandled.
        socket = gated.connections[0].socket
        await until(lambda: len(socket._backlog) == 1)
        assert not Gated.replied.is_set()
        Gated.gate.set()
        assert (await recv_json(ws))[:4] == ["2", "2", "gated:wait", "phx_reply"]
        assert (await recv_json(ws))[:2] == ["1", "3"]


async def test_output_made_during_a_pending_join_is_held(gated):
    """The reply of a push received *before* the join, made while the join
    is pending, is written after the join reply."""
    ws = await connect(gated)
    async with ws:
        await join(ws, "gated:a", "1")
        Gated.replied.clear()
        await ws.send(v2("1", "3", "gated:a", "ping"))
        await ws.send(v2("2", "2", "gated:wait", "phx_join"))
        await asyncio.wait_for(Gated.replied.wait(), TIMEOUT)  # reply made...
        Gated.gate.set()  # ...while the join was pending
        assert (await recv_json(ws))[:4] == ["2", "2", "gated:wait", "phx_reply"]
        assert (await recv_json(ws))[:2] == ["1", "3"]


async def test_connections_do_not_block_each_other(gated):
    """A pending join on one connection does not delay another connection."""
    waiting, other = await connect(gated), await connect(gated)
    async with waiting, other:
        await waiting.send(v2("1", "1", "gated:wait", "phx_join"))
        await heartbeat(other)
        await join(other, "gated:b")
        Gated.gate.set()
        assert (await recv_json(waiting))[:2] == ["1", "1"]
