"""PresenceTracker: Phoenix.Presence semantics for user channels."""

from __future__ import annotations

from typing import Any

import pytest

from phoenix_channels.server import (
    ChannelSocket,
    Server,
    ServerChannel,
    error,
    noreply,
    ok,
)

from .helpers import connect, heartbeat, recv_json, v2


class Tracked(ServerChannel):
    async def join(self, topic: str, payload: Any, socket: ChannelSocket):
        socket.send_info(payload["key"])
        return ok()

    async def handle_info(self, key: Any, socket: ChannelSocket):
        socket.presence.track(socket, key, {"n": 1})
        socket.push("presence_state", socket.presence.list(socket.topic))
        return noreply()

    async def handle_in(self, event: str, payload: Any, socket: ChannelSocket):
        if event == "untrack":
            socket.presence.untrack(socket, payload["key"])
            return ok()
        if event == "track_again":
            socket.presence.track(socket, payload["key"], {})
            return ok()
        raise RuntimeError("crash")


@pytest.fixture
async def server():
    async with Server({"p:*": Tracked}, port=0) as server:
        yield server


async def _join(ws, key, join_ref="1"):
    await ws.send(v2(join_ref, join_ref, "p:t", "phx_join", {"key": key}))
    assert (await recv_json(ws))[3] == "phx_reply"
    diff = await recv_json(ws)
    assert diff[3] == "presence_diff"
    state = await recv_json(ws)
    assert state[3] == "presence_state"
    return diff[4], state[4]


async def test_track_list_and_diffs(server):
    """Each track sends a joins diff to everyone; the state lists all metas,
    oldest first, with a phx_ref each."""
    a, b = await connect(server), await connect(server)
    async with a, b:
        diff, state = await _join(a, "u")
        [meta_a] = diff["joins"]["u"]["metas"]
        assert set(meta_a) == {"n", "phx_ref"}
        assert state == {"u": {"metas": [meta_a]}}
        diff, state = await _join(b, "u")
        [meta_b] = diff["joins"]["u"]["metas"]
        assert state == {"u": {"metas": [meta_a, meta_b]}}
        assert meta_a["phx_ref"] != meta_b["phx_ref"]
        assert (await recv_json(a))[4] == {
            "joins": {"u": {"metas": [meta_b]}},
            "leaves": {},
        }


async def test_untrack_and_crash_send_leaves(server):
    """untrack sends a leaves diff; a crash too, but never to the crashed
    channel's own client."""
    a, b = await connect(server), await connect(server)
    async with a, b:
        await _join(a, "a")
        await _join(b, "b")
        await recv_json(a)  # b's join diff
        await b.send(v2("1", "2", "p:t", "untrack", {"key": "b"}))
        leave = await recv_json(b)
        assert leave[3] == "presence_diff" and leave[4]["leaves"].keys() == {"b"}
        assert (await recv_json(b))[3] == "phx_reply"
        assert (await recv_json(a))[4]["leaves"].keys() == {"b"}
        await a.send(v2("1", "3", "p:t", "crash"))
        assert await recv_json(a) == ["1", "1", "p:t", "phx_error", {}]
        await heartbeat(a)
        assert (await recv_json(b))[4]["leaves"].keys() == {"a"}
        assert server.presence.list("p:t") == {}


async def test_tracking_a_key_twice_crashes(server):
    """One channel cannot track the same key twice (Phoenix: already_tracked);
    the crash's leave diff does not reach the crashed channel's client."""
    ws = await connect(server)
    async with ws:
        await _join(ws, "k")
        await ws.send(v2("1", "2", "p:t", "track_again", {"key": "k"}))
        assert await recv_json(ws) == ["1", "1", "p:t", "phx_error", {}]
        await heartbeat(ws)
    assert server.presence.list("p:t") == {}


class TrackInJoin(ServerChannel):
    async def join(self, topic: str, payload: Any, socket: ChannelSocket):
        socket.presence.track(socket, payload["key"], {})
        return ok() if payload.get("ok") else error({"refused": True})


async def test_presence_tracked_by_a_refused_join_is_removed():
    """A join that tracks and then refuses leaves no presence behind."""
    async with Server({"p:*": Tracked, "q:*": TrackInJoin}, port=0) as server:
        member, joiner = await connect(server), await connect(server)
        async with member, joiner:
            await member.send(v2("1", "1", "q:t", "phx_join", {"key": "m", "ok": True}))
            assert (await recv_json(member))[3] == "phx_reply"
            await joiner.send(v2("1", "1", "q:t", "phx_join", {"key": "j"}))
            assert (await recv_json(joiner))[4]["status"] == "error"
            assert (await recv_json(member))[4]["joins"].keys() == {"j"}
            assert (await recv_json(member))[4]["leaves"].keys() == {"j"}
            assert set(server.presence.list("q:t")) == {"m"}
