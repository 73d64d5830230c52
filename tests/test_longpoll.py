"""The long-poll transport against a scripted HTTP peer (httpx.MockTransport).

Ports the client side of phoenix.js ``longpoll_test.js`` (PROTOCOL §12.6)
and the status rules of §8.2; the bundled server's long-poll has its own
end-to-end tests.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import httpx
import pytest

from phoenix_channels.transports.base import ConnectOptions
from phoenix_channels.transports.longpoll import (
    LongPollTransport,
    _auth_token,
    poll_endpoint,
)
from tests.fakes import make_socket

WAIT = 5.0
URL = "ws://example.com/socket/websocket?vsn=2.0.0"


class Listener:
    """Records transport events; ``next()`` awaits the next one."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def transport_open(self) -> None:
        self.events.put_nowait(("open", None))

    def transport_message(self, data: str | bytes) -> None:
        self.events.put_nowait(("message", data))

    def transport_error(self, error: BaseException) -> None:
        self.events.put_nowait(("error", error))

    def transport_close(self, code: int, reason: str) -> None:
        self.events.put_nowait(("close", (code, reason)))

    async def next(self) -> tuple[str, Any]:
        return await asyncio.wait_for(self.events.get(), WAIT)


class Peer:
    """Answers GETs from a queue of bodies and acks POSTs, recording both."""

    def __init__(self) -> None:
        self.polls: asyncio.Queue[Any] = asyncio.Queue()
        self.gets: list[httpx.Request] = []
        self.posts: list[httpx.Request] = []
        self.post_arrived: asyncio.Queue[httpx.Request] = asyncio.Queue()
        self.post_answer: Any = {"status": 200}
        self.hold_posts = asyncio.Event()
        self.hold_posts.set()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            self.gets.append(request)
            body = await self.polls.get()
        else:
            self.posts.append(request)
            self.post_arrived.put_nowait(request)
            await self.hold_posts.wait()
            body = self.post_answer
        if isinstance(body, Exception):
            raise body
        if isinstance(body, (bytes, str)):
            return httpx.Response(200, content=body)
        return httpx.Response(200, json=body)


def make(
    peer: Peer, protocols: list[str] | None = None, vsn: str = "2.0.0"
) -> tuple[LongPollTransport, Listener]:
    listener = Listener()
    options = ConnectOptions(
        url=URL,
        safe_url=URL,
        protocols=protocols,
        headers={},
        ssl=None,
        open_timeout=WAIT,
        logger=logging.getLogger("test"),
        extra={"http_transport": httpx.MockTransport(peer.handle), "vsn": vsn},
    )
    return LongPollTransport(options, listener), listener


async def opened(peer: Peer, **kwargs: Any) -> tuple[LongPollTransport, Listener]:
    transport, listener = make(peer, **kwargs)
    peer.polls.put_nowait({"status": 410, "token": "T1", "messages": []})
    assert await listener.next() == ("open", None)
    return transport, listener


def test_poll_endpoint_swaps_scheme_and_path() -> None:
    """ws -> http, wss -> https, /websocket -> /longpoll, query kept."""
    assert poll_endpoint(URL) == "http://example.com/socket/longpoll?vsn=2.0.0"
    assert poll_endpoint("wss://h/s/websocket") == "https://h/s/longpoll"


async def test_handshake_410_opens_and_later_requests_carry_the_token() -> None:
    """The first GET has no token; the 410's token rides on every later one."""
    peer = Peer()
    transport, _ = await opened(peer)
    await asyncio.wait_for(_until(lambda: len(peer.gets) == 2), WAIT)
    assert str(peer.gets[0].url) == "http://example.com/socket/longpoll?vsn=2.0.0"
    assert str(peer.gets[1].url).endswith("?vsn=2.0.0&token=T1")
    assert "x-phoenix-longpoll-token" not in peer.gets[0].headers
    assert peer.gets[1].headers["x-phoenix-longpoll-token"] == "T1"
    transport.close(1000, "")


async def test_auth_token_is_sent_in_header_when_present() -> None:
    """The token recovered from the subprotocols goes in X-Phoenix-AuthToken."""
    peer = Peer()
    encoded = base64.b64encode(b"s3cret").decode().rstrip("=")
    transport, _ = make(peer, protocols=["phoenix", "base64url.bearer.phx." + encoded])
    await asyncio.wait_for(_until(lambda: peer.gets), WAIT)
    assert peer.gets[0].headers["x-phoenix-authtoken"] == "s3cret"
    assert peer.gets[0].headers["accept"] == "application/json"
    transport.close(1000, "")


async def test_no_auth_token_header_without_protocols() -> None:
    """Without an auth token no X-Phoenix-AuthToken header is sent."""
    peer = Peer()
    transport, _ = make(peer)
    await asyncio.wait_for(_until(lambda: peer.gets), WAIT)
    assert "x-phoenix-authtoken" not in peer.gets[0].headers
    transport.close(1000, "")


async def test_status_200_delivers_each_message_in_order() -> None:
    """Messages of a 200 poll are delivered one by one, in order."""
    peer = Peer()
    transport, listener = await opened(peer)
    frames = ['["1","1","t","phx_reply",{}]', '[null,null,"t","e",{}]']
    peer.polls.put_nowait({"status": 200, "token": "T1", "messages": frames})
    assert await listener.next() == ("message", frames[0])
    assert await listener.next() == ("message", frames[1])
    transport.close(1000, "")


async def test_binary_frames_arrive_as_raw_strings() -> None:
    """A non-JSON message is a binary frame, its bytes as a JSON string."""
    peer = Peer()
    transport, listener = await opened(peer)
    raw = "\u0000\u0001\n\r1room:lobbybinary_pushedhi!"
    peer.polls.put_nowait({"status": 200, "token": "T1", "messages": [raw]})
    assert await listener.next() == ("message", raw.encode())
    transport.close(1000, "")


async def test_status_204_polls_again() -> None:
    """An idle window (204) is followed by another poll."""
    peer = Peer()
    transport, _ = await opened(peer)
    peer.polls.put_nowait({"status": 204, "token": "T1", "messages": []})
    await asyncio.wait_for(_until(lambda: len(peer.gets) == 3), WAIT)
    transport.close(1000, "")


async def test_410_when_a_token_exists_is_session_gone() -> None:
    """A 410 after the handshake reports an error and closes with 3410."""
    peer = Peer()
    _, listener = await opened(peer)
    peer.polls.put_nowait({"status": 410, "token": "T2"})
    kind, _ = await listener.next()
    assert kind == "error"
    assert await listener.next() == ("close", (3410, "session_gone"))


async def test_403_is_an_error_then_close_1008() -> None:
    """A refused connect (403 in the body) closes with 1008 "forbidden"."""
    peer = Peer()
    _, listener = make(peer)
    peer.polls.put_nowait({"status": 403})
    kind, error = await listener.next()
    assert kind == "error" and "403" in str(error)
    assert await listener.next() == ("close", (1008, "forbidden"))


@pytest.mark.parametrize("body", [b"not json", b"", {"status": 500}])
async def test_unreadable_or_500_closes_with_1011(body: Any) -> None:
    """An empty, non-JSON or 500 answer closes with 1011 (status 0/500)."""
    peer = Peer()
    _, listener = await opened(peer)
    peer.polls.put_nowait(body)
    assert (await listener.next())[0] == "error"
    assert await listener.next() == ("close", (1011, "internal server error"))


async def test_network_error_closes_with_1011() -> None:
    """A failed request is reported and closes with 1011."""
    peer = Peer()
    _, listener = await opened(peer)
    peer.polls.put_nowait(httpx.ConnectError("refused"))
    assert (await listener.next())[0] == "error"
    assert await listener.next() == ("close", (1011, "internal server error"))


async def test_poll_timeout_closes_with_1005() -> None:
    """A poll that times out is reported and closes with 1005 "timeout"."""
    peer = Peer()
    _, listener = await opened(peer)
    peer.polls.put_nowait(httpx.ReadTimeout("slow"))
    assert (await listener.next())[0] == "error"
    assert await listener.next() == ("close", (1005, "timeout"))


async def test_sends_in_one_tick_are_one_ndjson_post() -> None:
    """Frames sent in the same tick go out as one ndjson POST."""
    peer = Peer()
    transport, _ = await opened(peer)
    for frame in ("a", "b", "c"):
        transport.send(frame)
    post = await asyncio.wait_for(peer.post_arrived.get(), WAIT)
    assert post.content == b"a\nb\nc"
    assert post.headers["content-type"] == "application/x-ndjson"
    assert str(post.url).endswith("token=T1")
    assert post.headers["x-phoenix-longpoll-token"] == "T1"
    assert "x-phoenix-authtoken" not in post.headers
    transport.close(1000, "")


async def test_sends_during_an_inflight_batch_wait_for_its_ack() -> None:
    """Frames sent while a POST is in flight go in the next POST, after the ack."""
    peer = Peer()
    transport, _ = await opened(peer)
    peer.hold_posts.clear()
    transport.send("a")
    await asyncio.wait_for(peer.post_arrived.get(), WAIT)
    transport.send("d")
    transport.send("e")
    assert transport.buffered_amount == 3
    peer.hold_posts.set()
    second = await asyncio.wait_for(peer.post_arrived.get(), WAIT)
    assert second.content == b"d\ne"
    await asyncio.wait_for(_until(lambda: transport.buffered_amount == 0), WAIT)
    transport.close(1000, "")


async def test_150_sends_split_into_100_then_50() -> None:
    """A batch holds at most 100 frames; the rest follow in order."""
    peer = Peer()
    transport, _ = await opened(peer)
    for i in range(150):
        transport.send(f"m{i}")
    first = await asyncio.wait_for(peer.post_arrived.get(), WAIT)
    second = await asyncio.wait_for(peer.post_arrived.get(), WAIT)
    assert first.content.decode().split("\n") == [f"m{i}" for i in range(100)]
    assert second.content.decode().split("\n") == [f"m{i}" for i in range(100, 150)]
    transport.close(1000, "")


async def test_binary_sends_are_base64_lines() -> None:
    """A binary frame goes in the batch as a base64 line."""
    peer = Peer()
    transport, _ = await opened(peer)
    transport.send(b"\x00\x01\xfe")
    post = await asyncio.wait_for(peer.post_arrived.get(), WAIT)
    assert post.content == base64.b64encode(b"\x00\x01\xfe")
    transport.close(1000, "")


async def test_vsn_1_posts_one_json_frame_per_request() -> None:
    """vsn 1.0.0 frames go one per POST as application/json."""
    peer = Peer()
    transport, _ = await opened(peer, vsn="1.0.0")
    transport.send('{"a":1}')
    transport.send('{"b":2}')
    first = await asyncio.wait_for(peer.post_arrived.get(), WAIT)
    second = await asyncio.wait_for(peer.post_arrived.get(), WAIT)
    assert (first.content, second.content) == (b'{"a":1}', b'{"b":2}')
    assert first.headers["content-type"] == "application/json"
    transport.close(1000, "")


async def test_failed_post_closes_with_1011() -> None:
    """A POST not acked with status 200 closes the transport with 1011."""
    peer = Peer()
    transport, listener = await opened(peer)
    peer.post_answer = {"status": 410}
    transport.send("x")
    assert (await listener.next())[0] == "error"
    assert await listener.next() == ("close", (1011, "internal server error"))


async def test_close_reports_once_and_stops_polling() -> None:
    """close() reports the close exactly once and cancels the pending poll."""
    peer = Peer()
    transport, listener = await opened(peer)
    transport.close(1000, "bye")
    transport.close(1000, "again")
    assert await listener.next() == ("close", (1000, "bye"))
    assert listener.events.empty()
    transport.send("ignored")
    assert peer.posts == []


async def _until(predicate: Any) -> None:
    """Yield to the loop until ``predicate()``; callers bound it with wait_for."""
    while not predicate():
        await asyncio.sleep(0)


# -- constructor and transportConnect (longpoll_test.js 1-4, 14-15) -----------


@pytest.mark.parametrize("protocols", [None, [], ["phoenix"]])
def test_no_auth_token_without_a_bearer_protocol(protocols: list[str] | None) -> None:
    """Undefined, null and empty protocols (or no bearer entry) mean no token."""
    assert _auth_token(protocols) is None


def test_extracts_the_auth_token_from_valid_protocols() -> None:
    """["phoenix", "base64url.bearer.phx.<b64 without =>"] gives the token back."""
    encoded = base64.b64encode(b"1234").decode().rstrip("=")
    assert _auth_token(["phoenix", "base64url.bearer.phx." + encoded]) == "1234"


def test_socket_sends_no_protocols_without_an_auth_token() -> None:
    """transportConnect passes protocols only when there is an auth token."""
    socket, _, _ = make_socket()
    assert socket._protocols() is None


def test_socket_protocols_carry_the_auth_token_without_padding() -> None:
    """The token rides as "base64url.bearer.phx." + standard base64 minus "="."""
    socket, _, _ = make_socket(auth_token="1234")
    assert socket._protocols() == ["phoenix", "base64url.bearer.phx.MTIzNA"]
