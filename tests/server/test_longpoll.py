"""The long-poll transport with a raw HTTP client: what the transcripts do not
show (the idle 204, expiry, limits, the connect hook, stop), all with short
windows. ``test_longpoll_transcripts.py`` holds the genuine exchanges."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from phoenix_channels.server import (
    ChannelSocket,
    ConnectInfo,
    Server,
    ServerChannel,
    TerminateReason,
    accept,
    demo_server,
    ok,
    refuse,
)
from phoenix_channels.server.demo import DEMO_CHANNELS

from .helpers import TIMEOUT, binary_push, connect, join, recv_json, until, v1, v2

NDJSON = "application/x-ndjson"
JSON_TYPE = "application/json; charset=utf-8"


class LongPoll:
    """A raw long-poll client: one session, no Phoenix client logic."""

    def __init__(
        self, server: Server, client: httpx.AsyncClient, query: str = "vsn=2.0.0"
    ) -> None:
        self.server = server
        self.client = client
        self.query = query
        self.token: str | None = None

    @property
    def url(self) -> str:
        token = f"&token={self.token}" if self.token else ""
        return f"{self.server.longpoll_url}?{self.query}{token}"

    async def handshake(self) -> str:
        body = await self.get_json(self.url)
        assert body["status"] == 410 and body["messages"] == [], body
        self.token = body["token"]
        return self.token

    async def get(self, url: str | None = None, **kwargs: Any) -> httpx.Response:
        return await asyncio.wait_for(
            self.client.get(url or self.url, **kwargs), TIMEOUT
        )

    async def get_json(self, url: str | None = None, **kwargs: Any) -> Any:
        response = await self.get(url, **kwargs)
        assert response.status_code == 200, response
        assert response.headers["content-type"] == JSON_TYPE
        return response.json()

    async def post(
        self, *frames: str | bytes, content_type: str = NDJSON, **kwargs: Any
    ) -> httpx.Response:
        body = b"\n".join(f if isinstance(f, bytes) else f.encode() for f in frames)
        headers = {"content-type": content_type, **kwargs.pop("headers", {})}
        return await asyncio.wait_for(
            self.client.post(
                kwargs.pop("url", self.url), content=body, headers=headers, **kwargs
            ),
            TIMEOUT,
        )

    async def post_status(self, *frames: str | bytes, **kwargs: Any) -> int:
        response = await self.post(*frames, **kwargs)
        assert response.status_code == 200, response
        status: int = response.json()["status"]
        return status

    async def poll(self, count: int = 1) -> list[str]:
        """Wait until ``count`` frames are queued, then poll them (status 200)."""
        session = self.session
        await until(lambda: session.queued >= count)
        body = await self.get_json()
        assert body["status"] == 200 and body["token"] == self.token, body
        messages: list[str] = body["messages"]
        assert len(messages) == count, messages
        return messages

    async def poll_json(self, count: int = 1) -> list[Any]:
        return [json.loads(m) for m in await self.poll(count)]

    @property
    def session(self) -> Any:
        assert self.token is not None
        return self.server.longpoll.sessions[self.token]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """The demo server with a 0.3 s long-poll window."""
    async with demo_server(port=0, longpoll_window=0.3) as server:
        yield server


def reply(join_ref: Any, ref: Any, topic: str, response: Any = None) -> list[Any]:
    return [
        join_ref,
        ref,
        topic,
        "phx_reply",
        {"response": response or {}, "status": "ok"},
    ]


# --- polling --------------------------------------------------------------------


async def test_idle_poll_is_held_for_the_window_then_204(server, client):
    """A poll with nothing queued waits the window, then answers 204 with the
    token (transcript lp_v2_idle_poll_204's description; 0.3 s here)."""
    lp = LongPoll(server, client)
    token = await lp.handshake()
    started = time.monotonic()
    body = await lp.get_json()
    assert time.monotonic() - started >= 0.3 * 0.95
    assert body == {"messages": [], "status": 204, "token": token}
    response = await lp.get()
    assert response.content == b'{"messages":[],"status":204,"token":"%s"}' % (
        token.encode()
    )


async def test_polling_keeps_a_session_alive(server, client):
    """A session whose client keeps polling outlives 1.5 windows."""
    lp = LongPoll(server, client)
    await lp.handshake()
    for _ in range(3):  # 0.9 s of 204s, three times the expiry time
        assert (await lp.get_json())["status"] == 204
    assert lp.session.socket is not None and not lp.session.closed


async def test_a_held_poll_is_woken_with_every_frame_sent_together(client):
    """A held poll returns as soon as frames come, with all of them: push_me
    sends ``pushed`` and its reply in one go."""
    async with demo_server(port=0, longpoll_window=3.0) as server:
        lp = LongPoll(server, client)
        await lp.handshake()
        assert await lp.post_status(v2("1", "1", "room:lobby", "phx_join")) == 200
        await lp.poll()
        poll = asyncio.create_task(lp.get_json())
        await until(lambda: lp.session.is_polling)
        started = time.monotonic()
        assert (
            await lp.post_status(v2("1", "2", "room:lobby", "push_me", {"x": 1})) == 200
        )
        body = await poll
        assert time.monotonic() - started < 1.0
        assert [json.loads(m) for m in body["messages"]] == [
            ["1", None, "room:lobby", "pushed", {"x": 1}],
            reply("1", "2", "room:lobby", {"x": 1}),
        ]


async def test_a_newer_poll_takes_over_a_held_one(client):
    """A second poll of the same session answers the first one 204 at once."""
    async with demo_server(port=0, longpoll_window=3.0) as server:
        lp = LongPoll(server, client)
        await lp.handshake()
        first = asyncio.create_task(lp.get_json())
        await until(lambda: lp.session.is_polling)
        second = asyncio.create_task(lp.get_json())
        assert (await asyncio.wait_for(first, 1.0))["status"] == 204
        await until(lambda: lp.session.is_polling)
        await lp.post_status(v2(None, "h", "phoenix", "heartbeat"))
        body = await second
        assert [json.loads(m) for m in body["messages"]] == [
            reply(None, "h", "phoenix")
        ]


async def test_the_session_token_header_works_like_the_param(server, client):
    """phoenix.js 1.9 sends the token as ``X-Phoenix-Longpoll-Token`` only."""
    lp = LongPoll(server, client)
    token = await lp.handshake()
    plain = f"{server.longpoll_url}?vsn=2.0.0"
    headers = {"x-phoenix-longpoll-token": token}
    hb = v2(None, "h", "phoenix", "heartbeat")
    assert await lp.post_status(hb, url=plain, headers=headers) == 200
    await until(lambda: lp.session.queued == 1)
    body = await lp.get_json(plain, headers=headers)
    assert body["status"] == 200 and body["token"] == token


async def test_binary_frames_are_escaped_as_jason_does(server, client):
    """A binary frame goes out as its raw bytes in a JSON string; control
    bytes are escaped with upper-case hex (``\\u000B``), as Jason writes them."""
    lp = LongPoll(server, client)
    await lp.handshake()
    topic = "room:lobby2"  # 11 bytes: the length byte is 0x0b
    await lp.post_status(v2("1", "1", topic, "phx_join"))
    await lp.poll()
    frame = binary_push("1", "2", topic, "binary_push", b"\x1f\x7f\xc3\xa9")
    await lp.post_status(base64.b64encode(frame))
    session = lp.session
    await until(lambda: session.queued == 2)
    response = await lp.get()
    assert (
        b'"\\u0000\\u0001\\u000B\\r1room:lobby2binary_pushed\\u001F\x7f\xc3\xa9"'
        in (response.content)
    )
    pushed = response.json()["messages"][0].encode()
    assert pushed == b"\x00\x01\x0b\x0d1room:lobby2binary_pushed\x1f\x7f\xc3\xa9"


async def test_vsn_1_is_the_default_and_frames_are_objects(server, client):
    """Without a vsn param the session speaks 1.0.0, as Phoenix defaults."""
    lp = LongPoll(server, client, query="")
    await lp.handshake()
    assert lp.session.info.vsn == "1.0.0"
    frame = v1("phoenix", "heartbeat", {}, "1")
    assert await lp.post_status(frame, content_type="application/json") == 200
    assert await lp.poll_json() == [
        {
            "event": "phx_reply",
            "payload": {"response": {}, "status": "ok"},
            "ref": "1",
            "topic": "phoenix",
        }
    ]


# --- posting ----------------------------------------------------------------------


async def test_a_post_is_acknowledged_after_its_join(server, client):
    """A join delays the POST's answer, and later frames of the batch, until
    it is done: Phoenix handles one frame at a time."""
    lp = LongPoll(server, client)
    await lp.handshake()
    started = time.monotonic()
    status = await lp.post_status(
        v2("1", "1", "room:lobby", "phx_join", {"delay_ms": 150}),
        v2(None, "h", "phoenix", "heartbeat"),
    )
    assert status == 200 and time.monotonic() - started >= 0.15 * 0.95
    messages = await lp.poll_json(2)
    assert [m[1] for m in messages] == ["1", "h"]


async def test_a_join_longer_than_the_window_times_the_post_out(server, client):
    """A join that outlasts the window makes the POST answer 408, and the rest
    of the batch is dropped, as Phoenix stops dispatching; the join goes on."""
    lp = LongPoll(server, client)
    await lp.handshake()
    polled: list[Any] = []

    async def keep_polling() -> None:  # as a client does, or the session expires
        while True:
            polled.extend(json.loads(m) for m in (await lp.get_json())["messages"])

    poller = asyncio.create_task(keep_polling())
    try:
        status = await lp.post_status(
            v2("1", "1", "room:lobby", "phx_join", {"delay_ms": 500}),
            v2(None, "dropped", "phoenix", "heartbeat"),
        )
        assert status == 408
        await until(lambda: len(polled) == 1)  # the join reply, 0.2 s later
        await lp.post_status(v2(None, "h", "phoenix", "heartbeat"))
        await until(lambda: len(polled) == 2)
        assert [m[1] for m in polled] == ["1", "h"]
    finally:
        poller.cancel()


async def test_only_the_first_100_lines_are_read(server, client, caplog):
    """An ndjson body of 101 lines: 100 frames are handled, one dropped."""
    lp = LongPoll(server, client)
    await lp.handshake()
    frames = [v2(None, str(n), "phoenix", "heartbeat") for n in range(101)]
    assert await lp.post_status(*frames) == 200
    messages = await lp.poll_json(100)
    assert [m[1] for m in messages] == [str(n) for n in range(100)]
    assert "only the first 100 are read" in caplog.text


async def test_a_line_that_is_not_base64_fails_the_whole_post(server, client):
    """A line not starting with ``[`` must be base64: otherwise HTTP 500 and
    no frame of the body is handled (lp_v1_handshake_batch_poll)."""
    lp = LongPoll(server, client)
    await lp.handshake()
    response = await lp.post(v2("1", "1", "room:lobby", "phx_join"), "not base64!")
    assert (response.status_code, response.content) == (500, b"")
    assert lp.session.topics == [] and lp.session.queued == 0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'[null,"h","phoenix","heartbeat",{}]\n', id="trailing-newline"),
        pytest.param(b'["1","1","room:lobby","phx_join",{"a":"\xff"}]', id="not-utf8"),
        pytest.param(b"[not json", id="not-json"),
    ],
)
async def test_an_undecodable_frame_kills_the_session(server, client, body):
    """A frame Phoenix cannot decode (an empty last line is an empty binary
    frame) crashes the session: 408, and the token starts a new session."""
    lp = LongPoll(server, client)
    token = await lp.handshake()
    response = await client.post(lp.url, content=body, headers={"content-type": NDJSON})
    assert response.json() == {"status": 408}
    await until(lambda: token not in server.longpoll.sessions)
    body = await lp.get_json()
    assert body["status"] == 410 and body["token"] != token


async def test_a_post_body_over_the_size_limit_gets_413(client):
    """POST bodies are bounded by max_message_size (Phoenix: 400 over 8 MB)."""
    async with demo_server(port=0, max_message_size=1000) as server:
        lp = LongPoll(server, client)
        await lp.handshake()
        frame = v2(None, "h", "phoenix", "heartbeat", {"pad": "x" * 1000})
        response = await lp.post(frame)
        assert response.status_code == 413
        assert lp.session.queued == 0


# --- sessions -----------------------------------------------------------------------


async def test_an_unpolled_session_expires_and_its_channels_end(server, client):
    """1.5 windows without a poll end the session: its presence leaves, the
    old token starts a new session and a POST with it gets 410."""
    lp = LongPoll(server, client)
    token = await lp.handshake()
    await lp.post_status(v2("1", "1", "presence:x", "phx_join", {"user_id": "lp"}))
    await lp.poll(3)  # reply, own diff, state
    last_poll = time.monotonic()
    ws = await connect(server)
    async with ws:
        await join(ws, "presence:x", payload={"user_id": "ws"})
        for _ in range(2):  # own join diff, state
            await recv_json(ws)
        leave = await recv_json(ws)
        assert leave[3] == "presence_diff" and list(leave[4]["leaves"]) == ["lp"]
        assert time.monotonic() - last_poll >= 0.45 * 0.95
    assert server.longpoll_sessions == []
    assert await lp.post_status(v2("1", "2", "presence:x", "echo")) == 410
    body = await lp.get_json()
    assert body["status"] == 410 and body["token"] != token


async def test_max_queue_drops_a_session_nobody_polls(client, caplog):
    """Past ``longpoll_max_queue`` waiting frames the session is dropped with
    a warning (the POST that overflowed it gets 408)."""
    async with demo_server(port=0, longpoll_max_queue=3) as server:
        lp = LongPoll(server, client)
        await lp.handshake()
        frames = [v2(None, str(n), "phoenix", "heartbeat") for n in range(5)]
        assert await lp.post_status(*frames) == 408
        await until(lambda: server.longpoll_sessions == [])
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert any("longpoll_max_queue" in r.getMessage() for r in warnings)


async def test_disconnect_ends_sessions_with_that_id(client):
    """Server.disconnect(id) ends long-poll sessions too; a held poll is
    answered 204 at once and the next poll starts a new session."""

    def hook(info: ConnectInfo) -> Any:
        return accept(id=f"user:{info.params.get('user')}")

    async with Server(DEMO_CHANNELS, port=0, connect=hook) as server:
        lp = LongPoll(server, client, query="vsn=2.0.0&user=7")
        token = await lp.handshake()
        poll = asyncio.create_task(lp.get_json())
        await until(lambda: lp.session.is_polling)
        assert server.disconnect("user:7") == 1
        assert (await asyncio.wait_for(poll, 1.0))["status"] == 204
        body = await lp.get_json()
        assert body["status"] == 410 and body["token"] != token


async def test_stop_ends_sessions_and_held_polls_promptly(client):
    """stop() ends every session (channels terminate) and drops held polls,
    without waiting for the window."""
    terminated: list[TerminateReason] = []

    class Probe(ServerChannel):
        async def join(self, topic: str, payload: Any, socket: ChannelSocket) -> Any:
            return ok()

        async def terminate(
            self, reason: TerminateReason, socket: ChannelSocket
        ) -> None:
            terminated.append(reason)

    server = Server({"probe:*": Probe}, port=0, longpoll_window=30.0)
    await server.start()
    try:
        lp = LongPoll(server, client)
        await lp.handshake()
        await lp.post_status(v2("1", "1", "probe:a", "phx_join"))
        await lp.poll()
        poll = asyncio.create_task(lp.get())
        await until(lambda: lp.session.is_polling)
        started = time.monotonic()
        await asyncio.wait_for(server.stop(), TIMEOUT)
        assert time.monotonic() - started < 2.0
        with pytest.raises(httpx.HTTPError):
            await asyncio.wait_for(poll, TIMEOUT)
        assert terminated == ["closed"] and server.longpoll_sessions == []
    finally:
        await server.stop()


# --- connecting ---------------------------------------------------------------------


async def test_the_connect_hook_sees_longpoll_params_and_auth_token(client):
    """The hook gets the query params without our own stale session token,
    the X-Phoenix-AuthToken header as auth_token, and transport longpoll."""
    seen: list[ConnectInfo] = []

    async def hook(info: ConnectInfo) -> Any:  # a coroutine hook works too
        seen.append(info)
        return accept({"user": info.params.get("user")})

    async with Server(DEMO_CHANNELS, port=0, connect=hook) as server:
        lp = LongPoll(server, client, query="vsn=2.0.0&user=bob")
        old = await lp.handshake()
        server.longpoll.sessions[old].end("test")
        url = f"{server.longpoll_url}?vsn=2.0.0&token=mine&token={old}"
        body = await lp.get_json(url, headers={"x-phoenix-authtoken": "s3cret"})
        assert body["status"] == 410
        info = seen[-1]
        assert dict(info.params) == {"vsn": "2.0.0", "token": "mine"}
        assert (info.transport, info.auth_token, info.vsn) == (
            "longpoll",
            "s3cret",
            "2.0.0",
        )
        assert info.path == url.removeprefix(f"http://{server.host}:{server.port}")
        assert server.longpoll.sessions[body["token"]].socket.assigns == {"user": None}
        assert seen[0].auth_token is None


async def test_a_refused_connect_or_bad_vsn_answers_403(client):
    """A refused connect and an unsupported vsn both give ``{"status":403}``."""
    async with Server(DEMO_CHANNELS, port=0, connect=lambda info: refuse()) as server:
        lp = LongPoll(server, client)
        assert await lp.get_json() == {"status": 403}
        lp.query = "vsn=3.0.0"
        assert await lp.get_json() == {"status": 403}
        assert server.longpoll_sessions == []


async def test_a_connect_hook_that_raises_gives_500(client, caplog):
    """A connect hook that raises answers HTTP 500 with an empty body."""

    def hook(info: ConnectInfo) -> Any:
        raise RuntimeError("hook bug")

    async with Server(DEMO_CHANNELS, port=0, connect=hook) as server:
        response = await LongPoll(server, client).get()
        assert (response.status_code, response.content) == (500, b"")
    assert "hook bug" in caplog.text


async def test_options_and_other_methods(server, client):
    """OPTIONS answers a CORS preflight; other methods get 400, empty body."""
    url = server.longpoll_url
    response = await client.options(
        url, headers={"access-control-request-headers": "content-type"}
    )
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-headers"] == "content-type"
    assert response.headers["access-control-allow-methods"] == "get, post, options"
    assert response.headers["access-control-max-age"] == "3600"
    for method in ("PUT", "DELETE", "PATCH"):
        response = await client.request(method, url)
        assert (response.status_code, response.content) == (400, b"")


async def test_longpoll_can_be_turned_off(client):
    """``Server(longpoll=False)`` answers 404 at <mount>/longpoll."""
    async with demo_server(port=0, longpoll=False) as server:
        response = await LongPoll(server, client).get()
        assert response.status_code == 404


def test_bad_longpoll_options_are_refused():
    """A window or a queue limit that cannot work raises ValueError."""
    with pytest.raises(ValueError, match="longpoll_window"):
        demo_server(longpoll_window=0)
    with pytest.raises(ValueError, match="longpoll_max_queue"):
        demo_server(longpoll_max_queue=0)


async def test_long_poll_frames_are_recorded(client):
    """The recorder keeps a long-poll session's frames in and out, and the
    close of a session that crashed."""
    async with demo_server(port=0, record_frames=True) as server:
        lp = LongPoll(server, client)
        await lp.handshake()
        join_frame = v2("1", "1", "room:lobby", "phx_join")
        await lp.post_status(join_frame)
        (reply_frame,) = await lp.poll()
        assert await lp.post_status("[oops") == 408
        assert server.recorder is not None
        (record,) = server.recorder.connections
        assert (
            record.transport == "longpoll"
            and record.path == "/socket/longpoll?vsn=2.0.0"
        )
        assert record.sent_by_client() == [join_frame, "[oops"]
        assert record.sent_by_server() == [reply_frame]
        assert (record.frames[-1].kind, record.frames[-1].code) == ("close", 1011)
