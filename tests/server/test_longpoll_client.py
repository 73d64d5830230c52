"""Our client's long-poll transport against the bundled server, end to end.

``Socket(server.url, transport="longpoll")`` over real loopback HTTP, next to
websocket clients of the same server. Windows are short (0.3 s), so idle
polls come back 204 several times per test; every wait is bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from phoenix_channels import (
    Channel,
    ConnectError,
    Presence,
    PushError,
    PushTimeout,
    Socket,
)
from phoenix_channels.server import (
    Accepted,
    ConnectInfo,
    Refused,
    Server,
    accept,
    refuse,
)
from phoenix_channels.server.demo import DEMO_CHANNELS
from phoenix_channels.transports.base import ConnectOptions, TransportListener
from phoenix_channels.transports.longpoll import LongPollTransport
from tests.e2e.conftest import FAST, Calls, joined

from .helpers import TIMEOUT, until

WINDOW = 0.3


def connect_hook(info: ConnectInfo) -> Accepted | Refused:
    """The demo's hook, plus a connection id from the ``user`` param."""
    if info.params.get("token") == "bad":
        return refuse()
    user = info.params.get("user")
    return accept(id=None if user is None else f"user:{user}")


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """The demo channels with a 0.3 s long-poll window."""
    channels = DEMO_CHANNELS
    async with Server(
        channels, port=0, connect=connect_hook, longpoll_window=WINDOW
    ) as server:
        yield server


SocketFactory = Callable[..., Awaitable[Socket]]


@pytest.fixture
async def connect(server: Server) -> AsyncIterator[SocketFactory]:
    """``await connect(**options)``: a connected long-poll Socket (by default);
    every socket made is disconnected at the end."""
    sockets: list[Socket] = []

    async def make(**options: Any) -> Socket:
        options.setdefault("transport", "longpoll")
        socket = Socket(server.url, **{**FAST, **options})
        sockets.append(socket)
        await asyncio.wait_for(socket.connect(), TIMEOUT)
        return socket

    try:
        yield make
    finally:
        for socket in sockets:
            await asyncio.wait_for(socket.disconnect(), TIMEOUT)


async def push(channel: Channel, event: str, payload: Any = None) -> Any:
    return await asyncio.wait_for(channel.push(event, payload), TIMEOUT)


@pytest.mark.parametrize("vsn", ["2.0.0", "1.0.0"])
async def test_join_echo_and_push_me(server, connect, vsn):
    """Join, echo and push_me work over long-poll with both serializers, and
    the socket stays up across idle 204 polls."""
    probe = Probe()
    socket = await connect(vsn=vsn, transport=probe)
    channel = socket.channel("room:lobby", {"n": 1})
    pushed = Calls()
    channel.on("pushed", pushed)
    reply = await asyncio.wait_for(channel.join(), TIMEOUT)
    assert reply == {"joined": "room:lobby", "params": {"n": 1}}
    (session,) = server.longpoll_sessions
    assert (session.info.vsn, session.topics) == (vsn, ["room:lobby"])
    assert await push(channel, "echo", {"body": "é✓"}) == {"body": "é✓"}
    assert await push(channel, "push_me", {"x": 1}) == {"x": 1}
    assert pushed.first_args == [{"x": 1}]
    polls = probe.polls
    await until(lambda: probe.polls >= polls + 3)  # two idle windows: 204s
    assert socket.is_connected() and server.longpoll_sessions == [session]
    assert await push(channel, "count") == {"count": 1}


async def test_pushes_of_one_tick_go_in_one_post(server, connect):
    """A batch of pushes is pipelined (one ndjson POST) and answered in order."""
    socket = await connect()
    channel = await joined(socket, "room:lobby")
    replies = await asyncio.wait_for(
        asyncio.gather(*(channel.push("count") for _ in range(150))), TIMEOUT
    )
    assert [r["count"] for r in replies] == list(range(1, 151))


async def test_broadcast_between_longpoll_and_websocket(server, connect):
    """A broadcast reaches long-poll and websocket members, both ways."""
    lp = await joined(await connect(), "room:lobby")
    ws = await joined(await connect(transport="websocket"), "room:lobby")
    got_lp, got_ws = Calls(), Calls()
    lp.on("broadcasted", got_lp)
    ws.on("broadcasted", got_ws)
    await push(lp, "broadcast", {"from": "lp"})
    await push(ws, "broadcast", {"from": "ws"})
    await got_lp.wait_count(2)
    await got_ws.wait_count(2)
    assert got_lp.first_args == got_ws.first_args == [{"from": "lp"}, {"from": "ws"}]


async def test_binary_over_longpoll(server, connect):
    """binary_echo and binary_push carry bytes both ways (base64 lines up,
    raw bytes in JSON strings down)."""
    channel = await joined(await connect(), "room:lobby")
    pushed = Calls()
    channel.on("binary_pushed", pushed)
    assert await push(channel, "binary_echo", b"\x00\x01hi\x7f") == b"\x00\x01hi\x7f"
    assert await push(channel, "binary_push", b"abc") == {"size": 3}
    assert pushed.first_args == [b"abc"]


async def test_presence_over_longpoll(server, connect):
    """A long-poll member sees a websocket member come and go, and is seen."""
    lp_socket = await connect()
    lp_channel = lp_socket.channel("presence:room", {"user_id": "lp"})
    lp_presence = Presence(lp_channel)
    await asyncio.wait_for(lp_channel.join(), TIMEOUT)
    await until(lambda: [key for key, _ in _keys(lp_presence)] == ["lp"])
    ws_socket = await connect(transport="websocket")
    ws_channel = ws_socket.channel("presence:room", {"user_id": "ws"})
    ws_presence = Presence(ws_channel)
    await asyncio.wait_for(ws_channel.join(), TIMEOUT)
    await until(lambda: sorted(k for k, _ in _keys(ws_presence)) == ["lp", "ws"])
    await until(lambda: sorted(k for k, _ in _keys(lp_presence)) == ["lp", "ws"])
    await asyncio.wait_for(ws_channel.leave(), TIMEOUT)
    await until(lambda: [key for key, _ in _keys(lp_presence)] == ["lp"])


def _keys(presence: Presence) -> list[tuple[str, Any]]:
    return presence.list(lambda key, value: (key, value))


async def test_crash_and_stop(server, connect):
    """crash errors the channel (phx_error) and it rejoins; stop closes it."""
    socket = await connect()
    crashy = await joined(socket, "room:crashy")
    errors = Calls()
    crashy.on_error(errors)
    crashy.push("crash")
    await errors.wait()
    await until(lambda: crashy.state == "joined")  # rejoined, a fresh channel
    assert await push(crashy, "count") == {"count": 1}
    stopping = await joined(socket, "room:stopping")
    closes = Calls()
    stopping.on_close(closes)
    assert await push(stopping, "stop") == {"bye": True}
    await closes.wait()
    assert stopping.state == "closed"


async def test_bad_token_is_a_connect_error(server):
    """Connect param token=bad: the server answers {"status":403}, and the
    first connect raises ConnectError."""
    socket = Socket(server.url, transport="longpoll", params={"token": "bad"})
    try:
        with pytest.raises(ConnectError):
            await asyncio.wait_for(socket.connect(), TIMEOUT)
    finally:
        await asyncio.wait_for(socket.disconnect(), TIMEOUT)
    assert server.longpoll_sessions == []


async def test_session_ended_by_the_server_reconnects_and_rejoins(server, connect):
    """When the server ends the session (Server.disconnect), the next poll
    gets a new session's 410: the client reconnects and its channels rejoin."""
    socket = await connect(params={"user": "7"})
    channel = await joined(socket, "room:lobby")
    (old,) = server.longpoll_sessions
    server.disconnect("user:7")
    await until(lambda: _live_topics(server) == [["room:lobby"]] and old.closed)
    await until(lambda: channel.state == "joined")
    assert await push(channel, "count") == {"count": 1}


async def test_session_expiry_reconnects_and_rejoins(server, connect):
    """A client that could not poll for 1.5 windows finds its session expired
    (its presence left); once it polls again it reconnects and rejoins."""
    probe = Probe()
    socket = await connect(transport=probe)
    channel = await joined(socket, "room:lobby")
    (old,) = server.longpoll_sessions
    probe.gate.clear()  # polls stop reaching the server
    await until(lambda: old.closed and server.longpoll_sessions == [])
    probe.gate.set()
    await until(lambda: _live_topics(server) == [["room:lobby"]])
    await until(lambda: channel.state == "joined")
    assert await push(channel, "count") == {"count": 1}


def _live_topics(server: Server) -> list[list[str]]:
    return [s.topics for s in server.longpoll_sessions if s.topics]


class Probe:
    """A transport factory whose HTTP clients count polls and can hold them
    (a client that cannot reach the server for a while)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.polls = 0  # GETs answered

    def __call__(
        self, options: ConnectOptions, listener: TransportListener
    ) -> LongPollTransport:
        options.extra["http_transport"] = _ProbeTransport(self)
        return LongPollTransport(options, listener)


class _ProbeTransport(httpx.AsyncBaseTransport):
    def __init__(self, probe: Probe) -> None:
        self._probe = probe
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            return await self._inner.handle_async_request(request)
        await asyncio.wait_for(self._probe.gate.wait(), TIMEOUT)
        response = await self._inner.handle_async_request(request)
        self._probe.polls += 1
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_auth_token_reaches_the_connect_hook():
    """``Socket(auth_token=...)`` over long-poll sends X-Phoenix-AuthToken on
    the session-creating GET; the hook sees it as ``auth_token``."""
    seen: list[ConnectInfo] = []

    def hook(info: ConnectInfo) -> Accepted:
        seen.append(info)
        return accept()

    async with Server(DEMO_CHANNELS, port=0, connect=hook) as server:
        socket = Socket(server.url, transport="longpoll", auth_token="s3cret-Tok")
        try:
            await asyncio.wait_for(socket.connect(), TIMEOUT)
        finally:
            await asyncio.wait_for(socket.disconnect(), TIMEOUT)
    assert [(i.transport, i.auth_token) for i in seen] == [("longpoll", "s3cret-Tok")]


async def test_a_poll_that_fails_with_500_reconnects(server, connect):
    """A binary reply that is not UTF-8 makes the poll fail with HTTP 500, as
    in Phoenix: the reply is lost, the push fails, the client reconnects
    (1011) and rejoins."""
    socket = await connect()
    closes = Calls()
    socket.on_close(closes)
    channel = await joined(socket, "room:lobby")
    with pytest.raises((PushError, PushTimeout)):
        await asyncio.wait_for(
            channel.push("binary_echo", b"\xfe\xff", timeout=1.0), TIMEOUT
        )
    await closes.wait()
    assert closes.first_args[0].code == 1011
    await until(lambda: channel.state == "joined")
    assert await push(channel, "echo", {"back": True}) == {"back": True}


async def test_fallback_from_websocket_lands_on_longpoll(server, connect):
    """A websocket that does not answer its first heartbeat in time makes the
    socket fall back to long-poll, where joins and pushes work."""
    server.pause_heartbeats()
    socket = await connect(transport="websocket", longpoll_fallback_after=0.2)
    await until(lambda: socket.transport == "longpoll" and socket.is_connected())
    assert len(server.longpoll_sessions) == 1
    channel = await joined(socket, "room:lobby")
    assert await push(channel, "echo", {"via": "lp"}) == {"via": "lp"}


async def test_pushes_wait_for_a_slow_join(server, connect):
    """Pushes made while a slow join is acknowledged are sent after it and
    answered in order (the join's POST is held until the join is done)."""
    socket = await connect()
    channel = socket.channel("room:lobby", {"delay_ms": 150})
    join = channel.join()
    pushes = [channel.push("count") for _ in range(3)]
    await asyncio.wait_for(join, TIMEOUT)
    replies = await asyncio.wait_for(asyncio.gather(*pushes), TIMEOUT)
    assert [r["count"] for r in replies] == [1, 2, 3]
