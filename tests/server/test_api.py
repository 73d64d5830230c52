"""The handler API: what user channels can do, and what clients then see."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from phoenix_channels.server import (
    ChannelSocket,
    ConnectInfo,
    Server,
    ServerChannel,
    accept,
    error,
    noreply,
    ok,
    refuse,
    reply,
    stop,
)
from phoenix_channels.server.router import Router

from .helpers import (
    connect,
    expect_close,
    heartbeat,
    join,
    raw_http,
    recv,
    recv_json,
    until,
    upgrade_request,
    v2,
)


class Probe(ServerChannel):
    """A channel whose behaviour each test scripts through class attributes."""

    terminated: list[Any] = []

    async def join(self, topic: str, payload: Any, socket: ChannelSocket):
        action = payload.get("join") if isinstance(payload, dict) else None
        if action == "raise":
            raise ValueError("join failed")
        if action == "none":
            return None
        if action == "push":
            socket.push("early", {})
        if action == "info":
            socket.send_info("hello")
        if action == "after":
            socket.send_after(0.01, "later")
        if action == "refuse":
            return error({"no": True})
        return ok({"assigns": dict(socket.assigns), "join_ref": socket.join_ref})

    async def handle_in(self, event: str, payload: Any, socket: ChannelSocket):
        if event == "status":
            return reply(payload["status"], payload.get("response"))
        if event == "stop":
            return stop(payload["reason"], reply=ok() if payload.get("reply") else None)
        if event == "none":
            return None
        if event == "assign":
            socket.assigns["x"] = payload
            return ok(dict(socket.assigns))
        if event == "from":
            socket.broadcast_from("shout", payload)
            return noreply()
        if event == "later":
            ref = socket.ref
            asyncio.get_running_loop().call_soon(
                socket.send_reply, ref, "ok", {"late": 1}
            )
            return noreply()
        if event == "info_reply":
            socket.send_info("reply")
            return noreply()
        return await super().handle_in(event, payload, socket)

    async def handle_info(self, message: Any, socket: ChannelSocket):
        if message == "reply":
            return ok()  # not allowed: handle_info cannot reply
        socket.push("info", {"message": message})
        return noreply()

    async def terminate(self, reason: Any, socket: ChannelSocket) -> None:
        Probe.terminated.append(reason)


@pytest.fixture
async def server():
    Probe.terminated = []
    async with Server({"probe:*": Probe}, port=0) as server:
        yield server


async def test_reply_with_any_status(server):
    """A reply may carry any status string."""
    ws = await connect(server)
    async with ws:
        await join(ws, "probe:a")
        await ws.send(v2("1", "2", "probe:a", "status", {"status": "pending"}))
        assert await recv_json(ws) == [
            "1",
            "2",
            "probe:a",
            "phx_reply",
            {"response": {}, "status": "pending"},
        ]


@pytest.mark.parametrize(
    ("reason", "reply_first", "event"),
    [
        ("normal", False, "phx_close"),
        ("shutdown", True, "phx_close"),
        ("shutdown:bye", False, "phx_close"),
        ("boom", True, "phx_error"),
    ],
)
async def test_stop_reasons(server, reason, reply_first, event):
    """Clean stop reasons close the channel; others error it (after the reply)."""
    ws = await connect(server)
    async with ws:
        await join(ws, "probe:a")
        await ws.send(
            v2("1", "2", "probe:a", "stop", {"reason": reason, "reply": reply_first})
        )
        if reply_first:
            assert (await recv_json(ws))[:4] == ["1", "2", "probe:a", "phx_reply"]
        assert await recv_json(ws) == ["1", "1", "probe:a", event, {}]
        await heartbeat(ws)
    assert Probe.terminated == [reason]


async def test_invalid_return_crashes_the_channel(server, caplog):
    """Returning None from handle_in is a crash: phx_error, and a log line
    that says what to return."""
    ws = await connect(server)
    async with ws:
        await join(ws, "probe:a")
        await ws.send(v2("1", "2", "probe:a", "none"))
        assert await recv_json(ws) == ["1", "1", "probe:a", "phx_error", {}]
    assert "must return reply(...), noreply() or stop(...)" in caplog.text
    assert isinstance(Probe.terminated[0], TypeError)


async def test_handle_info_cannot_reply(server):
    """handle_info returning a reply is a crash too."""
    ws = await connect(server)
    async with ws:
        await join(ws, "probe:a")
        await ws.send(v2("1", "2", "probe:a", "info_reply"))
        assert await recv_json(ws) == ["1", "1", "probe:a", "phx_error", {}]


async def test_missing_handle_in_crashes_the_channel(server):
    """The default handle_in raises, as a missing Phoenix clause does."""
    ws = await connect(server)
    async with ws:
        await join(ws, "probe:a")
        await ws.send(v2("1", "2", "probe:a", "whatever"))
        assert await recv_json(ws) == ["1", "1", "probe:a", "phx_error", {}]


@pytest.mark.parametrize("action", ["raise", "none", "push"])
async def test_a_join_that_fails_is_join_crashed(server, action):
    """A join that raises (pushing during join included) or returns garbage
    is answered error {"reason": "join crashed"}; nothing is joined."""
    ws = await connect(server)
    async with ws:
        await ws.send(v2("1", "1", "probe:a", "phx_join", {"join": action}))
        assert await recv_json(ws) == [
            "1",
            "1",
            "probe:a",
            "phx_reply",
            {"response": {"reason": "join crashed"}, "status": "error"},
        ]
        await ws.send(v2("1", "2", "probe:a", "status", {"status": "ok"}))
        assert (await recv_json(ws))[4]["response"] == {"reason": "unmatched topic"}
    assert Probe.terminated == []  # a channel that never joined is not terminated


async def test_refused_join_is_not_terminated(server):
    """error(...) from join refuses with that payload."""
    ws = await connect(server)
    async with ws:
        await ws.send(v2("1", "1", "probe:a", "phx_join", {"join": "refuse"}))
        assert (await recv_json(ws))[4] == {"response": {"no": True}, "status": "error"}
    assert Probe.terminated == []


async def test_send_info_from_join_runs_after_the_reply(server):
    """Messages posted in join reach handle_info after the join reply."""
    ws = await connect(server)
    async with ws:
        await ws.send(v2("1", "1", "probe:a", "phx_join", {"join": "info"}))
        assert (await recv_json(ws))[3] == "phx_reply"
        assert await recv_json(ws) == [
            "1",
            None,
            "probe:a",
            "info",
            {"message": "hello"},
        ]


async def test_send_after(server):
    """send_after posts later."""
    ws = await connect(server)
    async with ws:
        await ws.send(v2("1", "1", "probe:a", "phx_join", {"join": "after"}))
        assert (await recv_json(ws))[3] == "phx_reply"
        assert (await recv_json(ws))[4] == {"message": "later"}


async def test_send_reply_answers_later(server):
    """send_reply answers a push after its handler returned noreply."""
    ws = await connect(server)
    async with ws:
        await join(ws, "probe:a")
        await ws.send(v2("1", "7", "probe:a", "later"))
        assert await recv_json(ws) == [
            "1",
            "7",
            "probe:a",
            "phx_reply",
            {"response": {"late": 1}, "status": "ok"},
        ]


async def test_broadcast_from_skips_the_sender(server):
    """broadcast_from reaches the other members only."""
    a, b = await connect(server), await connect(server)
    async with a, b:
        await join(a, "probe:room")
        await join(b, "probe:room", "5")
        await a.send(v2("1", "2", "probe:room", "from", {"hi": 1}))
        assert await recv_json(b) == [None, None, "probe:room", "shout", {"hi": 1}]
        await heartbeat(a)


async def test_server_broadcast_reaches_members(server):
    """Server.broadcast is Endpoint.broadcast: every member gets it."""
    ws = await connect(server)
    async with ws:
        await join(ws, "probe:room")
        assert server.broadcast("probe:room", "news", {"n": 1}) == 1
        assert await recv_json(ws) == [None, None, "probe:room", "news", {"n": 1}]
        assert server.broadcast("probe:empty", "news") == 0


async def test_join_ref_null_uses_the_ref(server):
    """A join with join_ref null gives the channel the join's ref (fact 8)."""
    ws = await connect(server)
    async with ws:
        await ws.send(v2(None, "7", "probe:a", "phx_join"))
        reply_ = await recv_json(ws)
        assert reply_[:2] == [None, "7"]
        assert reply_[4]["response"]["join_ref"] == "7"


async def test_terminate_reasons(server):
    """terminate gets "left", "duplicate_join" and "closed"."""
    ws = await connect(server)
    async with ws:
        await join(ws, "probe:a", "1")
        await ws.send(v2("1", "2", "probe:a", "phx_leave"))
        await recv(ws), await recv(ws)
        await join(ws, "probe:b", "3")
        await join(ws, "probe:b", "4")
        assert (await recv_json(ws))[3] == "phx_close"
        await heartbeat(ws)
    await until(lambda: len(Probe.terminated) == 3)  # the server's own tasks
    assert Probe.terminated == ["left", "duplicate_join", "closed"]


async def test_assigns_are_copied_per_channel():
    """Connect assigns seed every channel; changes stay in the channel."""

    def connect_hook(info: ConnectInfo):
        return accept({"user": info.params.get("user")})

    async with Server({"probe:*": Probe}, port=0, connect=connect_hook) as server:
        ws = await connect(server, "vsn=2.0.0&user=ann")
        async with ws:
            assert (await join(ws, "probe:a"))["response"]["assigns"] == {"user": "ann"}
            await ws.send(v2("1", "2", "probe:a", "assign", 5))
            assert (await recv_json(ws))[4]["response"] == {"user": "ann", "x": 5}
            assert (await join(ws, "probe:b", "3"))["response"]["assigns"] == {
                "user": "ann"
            }


async def test_connect_hook_sees_params_headers_and_auth_token():
    """ConnectInfo carries params, headers, the decoded auth token and vsn;
    the token subprotocol is not echoed."""
    seen: list[ConnectInfo] = []

    async def connect_hook(info: ConnectInfo):
        seen.append(info)
        await asyncio.sleep(0)
        return accept()

    async with Server({"probe:*": Probe}, port=0, connect=connect_hook) as server:
        ws = await connect(
            server,
            "vsn=2.0.0&a=1&a=2&b=",
            subprotocols=["phoenix", "base64url.bearer.phx.czNjcmV0LVRvaw"],
            additional_headers={"X-Test": "yes"},
        )
        async with ws:
            assert ws.subprotocol is None
            await heartbeat(ws)
    [info] = seen
    assert dict(info.params) == {"vsn": "2.0.0", "a": "2", "b": ""}
    assert info.headers["x-test"] == "yes"
    assert info.auth_token == "s3cret-Tok"
    assert info.vsn == "2.0.0"
    assert info.path == "/socket/websocket?vsn=2.0.0&a=1&a=2&b="


async def test_auth_token_in_standard_base64_is_accepted():
    """phoenix.js encodes the token with btoa: '+' and '/' may appear, which
    are not header tokens; the upgrade still succeeds, as with Bandit."""
    seen: list[ConnectInfo] = []

    def connect_hook(info: ConnectInfo):
        seen.append(info)
        return accept()

    token = base64.b64encode("s3cret+Tok/é".encode()).decode().rstrip("=")
    assert "/" in token or "+" in token
    protocols = f"phoenix, base64url.bearer.phx.{token}"
    async with Server({"probe:*": Probe}, port=0, connect=connect_hook) as server:
        request = upgrade_request(
            server,
            "/socket/websocket?vsn=2.0.0",
            [("Sec-WebSocket-Protocol", protocols)],
        )
        status, headers, _ = await raw_http(server, request)
        assert status == "HTTP/1.1 101 Switching Protocols"
        assert "sec-websocket-protocol" not in headers
    assert seen[0].auth_token == "s3cret+Tok/é"


async def test_configured_subprotocol_is_selected():
    """Server(subprotocols=[...]) selects an offered one; the token never."""
    async with Server({"probe:*": Probe}, port=0, subprotocols=["phoenix"]) as server:
        ws = await connect(server, subprotocols=["phoenix", "base64url.bearer.phx.eA"])
        async with ws:
            assert ws.subprotocol == "phoenix"
        ws = await connect(server)  # none offered: still accepted
        async with ws:
            assert ws.subprotocol is None


@pytest.mark.parametrize("query", ["vsn=2.0.0&token=no", "vsn=3.0.0", "vsn=2.1.0"])
async def test_refused_connections_get_403(query):
    """A refusing hook or an unsupported vsn answers 403, empty body."""

    def connect_hook(info: ConnectInfo):
        return refuse() if info.params.get("token") == "no" else accept()

    async with Server({"probe:*": Probe}, port=0, connect=connect_hook) as server:
        status, headers, body = await raw_http(
            server, upgrade_request(server, f"/socket/websocket?{query}")
        )
        assert status == "HTTP/1.1 403 Forbidden"
        assert body == b"" and headers["content-length"] == "0"


async def test_connect_hook_that_raises_gives_500(caplog):
    """A broken hook is logged and the upgrade answered 500."""

    def connect_hook(info: ConnectInfo):
        raise RuntimeError("hook bug")

    async with Server({"probe:*": Probe}, port=0, connect=connect_hook) as server:
        status, _, _ = await raw_http(
            server, upgrade_request(server, "/socket/websocket?vsn=2.0.0")
        )
        assert status == "HTTP/1.1 500 Internal Server Error"
    assert "hook bug" in caplog.text


async def test_connection_id_and_disconnect():
    """Server.disconnect(id) closes the connections the hook gave that id."""

    def connect_hook(info: ConnectInfo):
        return accept(id=f"user:{info.params.get('user')}")

    async with Server({"probe:*": Probe}, port=0, connect=connect_hook) as server:
        ann, bob = (
            await connect(server, "vsn=2.0.0&user=ann"),
            await connect(server, "vsn=2.0.0&user=bob"),
        )
        async with ann, bob:
            assert server.disconnect("user:ann") == 1
            assert await expect_close(ann) == (1001, "")
            await heartbeat(bob)


def test_router_patterns():
    """Splat patterns match prefixes, plain ones exact topics, first wins."""

    class A(ServerChannel):
        pass

    class B(ServerChannel):
        pass

    router = Router({"room:lobby": A, "room:*": B, "*": A})
    assert router.match("room:lobby") is A
    assert router.match("room:") is B
    assert router.match("room:x") is B
    assert router.match("other") is A
    assert router.patterns == ["room:lobby", "room:*", "*"]
    with pytest.raises(ValueError, match="must be the last character"):
        Router({"room:*:x": A})


async def test_channel_factory_that_raises_is_join_crashed():
    """A channel that cannot even be built answers 'join crashed'."""

    def broken() -> ServerChannel:
        raise RuntimeError("no channel for you")

    async with Server({"broken:*": broken}, port=0) as server:
        ws = await connect(server)
        async with ws:
            await ws.send(v2("1", "1", "broken:x", "phx_join"))
            assert (await recv_json(ws))[4] == {
                "response": {"reason": "join crashed"},
                "status": "error",
            }
            await heartbeat(ws)


def test_public_names():
    """The package exports exactly its documented API."""
    import phoenix_channels.server as server

    assert set(server.__all__) == {
        "DEFAULT_MAX_MESSAGE_SIZE",
        "Accepted",
        "ChannelFactory",
        "ChannelSocket",
        "ConnectHook",
        "ConnectInfo",
        "ConnectionRecord",
        "FrameRecorder",
        "HttpHandler",
        "HttpRequest",
        "HttpResponse",
        "LongPollSession",
        "NoReply",
        "PresenceTracker",
        "PubSub",
        "RecordedFrame",
        "Refused",
        "Reply",
        "Server",
        "ServerChannel",
        "Stop",
        "TerminateReason",
        "WebSocketConnection",
        "accept",
        "demo_server",
        "error",
        "noreply",
        "ok",
        "refuse",
        "reply",
        "serve_forever",
        "stop",
    }
    for name in server.__all__:
        assert getattr(server, name) is not None
