"""Fuzzing the server's inbound side: any input, no crash, nothing stuck.

``test_bad_input.py`` sends short random websocket messages to a fresh
server per example. Here one server (in a loop of its own, on a thread)
takes hundreds of examples at every layer a client can reach:

- Phoenix-shaped websocket messages (real topics, events and refs; wrong
  types and values), vsn 1.0.0 and 2.0.0;
- raw bytes after a successful upgrade (broken websocket framing);
- long-poll POST bodies to a live session, under every content type;
- raw bytes and mangled HTTP heads to a fresh TCP connection (the sniffer).

The properties, for every example: nothing reaches the loop's exception
handler and nothing is logged at ERROR (but the crash reports of channels
told to ``crash``); every connection answers or ends within a bound (the
fuzz server's ``handshake_timeout`` and ``idle_timeout`` are short); a
client connected before the fuzzing began, and a fresh one after, are
served; and once the fuzz clients are gone the server holds no connection,
session or task.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from websockets.exceptions import ConnectionClosed

from phoenix_channels.server import Server, demo_server

from .helpers import J, connect, heartbeat, join, recv, upgrade_request

BOUND = 5.0  # seconds any single answer may take
# The raw-heads test wants incomplete heads cut fast; every other test makes
# ordinary connections, which a loop stall on a busy CI machine must not cut
# mid-handshake (a 0.1 s timeout once did).
HANDSHAKE_TIMEOUT = 0.3
ORDINARY_HANDSHAKE_TIMEOUT = 3.0
IDLE_TIMEOUT = 1.0
LONGPOLL_WINDOW = 0.05

FUZZ = settings(
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)


class ServerThread:
    """The demo server in an event loop on its own thread, for many examples.

    ``run(coro)`` runs a client coroutine on that loop and returns its result.
    """

    def __init__(self, handshake_timeout: float) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._loop_error)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.problems: list[str] = []
        self._handler = _ErrorLog(self.problems)
        self.server: Server = demo_server(
            port=0,
            handshake_timeout=handshake_timeout,
            idle_timeout=IDLE_TIMEOUT,
            longpoll_window=LONGPOLL_WINDOW,
        )

    def __enter__(self) -> ServerThread:
        logging.getLogger("phoenix_channels").addHandler(self._handler)
        self.thread.start()
        self.run(self.server.start())
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.run(self.server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(BOUND)
            self.loop.close()
            logging.getLogger("phoenix_channels").removeHandler(self._handler)

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 4 * BOUND) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def _loop_error(self, loop: Any, context: dict[str, Any]) -> None:
        self.problems.append(f"{context.get('message')} {context.get('exception')!r}")

    def check(self) -> None:
        """No problem so far, and the server keeps serving: an old client and
        a new one both get a heartbeat answered."""
        assert self.problems == []
        self.run(self._survivors())

    async def _survivors(self) -> None:
        self.keepalive.cancel()
        await asyncio.gather(self.keepalive, return_exceptions=True)
        fresh = await connect(self.server)
        for ws in (self.survivor, fresh):
            await heartbeat(ws)
        await fresh.close()

    async def open_survivor(self) -> None:
        self.survivor = await connect(self.server)
        await join(self.survivor, "room:survivor", "9")
        self.keepalive = asyncio.ensure_future(self._keep_alive())

    async def _keep_alive(self) -> None:
        # The survivor heartbeats like a client does; the fuzz server's idle
        # timeout would close it otherwise (this paces, it does not wait).
        while True:
            await heartbeat(self.survivor, "keepalive")
            await asyncio.sleep(IDLE_TIMEOUT / 3)

    async def drained(self) -> None:
        """Once the fuzz clients are gone nothing of theirs is left."""
        await self.survivor.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * BOUND
        server = self.server
        while server._tracked or server.longpoll_sessions or server._tasks:
            assert loop.time() < deadline, (
                server._tracked,
                server.longpoll_sessions,
                server._tasks,
            )
            await asyncio.sleep(0.01)


class _ErrorLog(logging.Handler):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.problems = problems

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if str(exc) == "crash requested by the client":
            return  # the demo's crash event does what it says
        self.problems.append(f"{record.levelname}: {record.getMessage()} {exc!r}")


@pytest.fixture
def fuzz_server(request: pytest.FixtureRequest) -> Iterator[ServerThread]:
    timeout = getattr(request, "param", ORDINARY_HANDSHAKE_TIMEOUT)
    with ServerThread(timeout) as st_:
        st_.run(st_.open_survivor())
        yield st_
        st_.check()
        st_.run(st_.drained())
        assert st_.problems == []


# -- strategies ------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
topics = st.sampled_from(
    ["room:fuzz", "room:private", "presence:fuzz", "phoenix", "nope", ""]
)
events = st.sampled_from(
    [
        "phx_join",
        "phx_leave",
        "heartbeat",
        "echo",
        "fail",
        "noreply",
        "crash",
        "stop",
        "count",
        "broadcast",
        "push_me",
        "binary_echo",
        "slow",
    ]
)
refs = st.none() | st.sampled_from(["1", "2", "3"]) | json_values
# Payloads that keep delays short: the fuzzing is about shapes, not waiting.
payloads = (
    json_values
    | st.fixed_dictionaries({"ms": st.integers(-5, 30)})
    | st.fixed_dictionaries({"delay_ms": st.integers(-5, 30), "user_id": json_values})
)
fields = st.tuples(refs, refs, topics | json_values, events | json_values, payloads)


def _v2(f: tuple[Any, ...]) -> str:
    return J(list(f))


def _v1(f: tuple[Any, ...]) -> str:
    join_ref, ref, topic, event, payload = f
    return J({"topic": topic, "event": event, "payload": payload, "ref": ref})


def _binary(parts: tuple[bytes, bytes, bytes, bytes, bytes, bool]) -> bytes:
    *names, data, lie = parts
    lengths = [len(n) for n in names]
    if lie:
        lengths = [(x * 7 + 3) % 256 for x in lengths]
    return bytes([0, *lengths]) + b"".join(names) + data


short_bytes = st.text(max_size=6).map(str.encode) | st.sampled_from([b"room:fuzz"])
binary_pushes = st.tuples(
    short_bytes,
    short_bytes,
    short_bytes,
    short_bytes,
    st.binary(max_size=8),
    st.booleans(),
).map(_binary)


def messages(vsn: str) -> st.SearchStrategy[str | bytes]:
    shaped = fields.map(_v2 if vsn == "2.0.0" else _v1)
    deep = st.integers(900, 5000).map(lambda n: "[" * n)  # past the recursion limit
    return shaped | binary_pushes | st.text(max_size=30) | st.binary(max_size=30) | deep


# -- websocket messages -------------------------------------------------------------


@pytest.mark.parametrize("vsn", ["2.0.0", "1.0.0"])
@settings(FUZZ, max_examples=250)
@given(data=st.data())
def test_websocket_messages(fuzz_server, vsn, data):
    """Phoenix-shaped messages and garbage on one connection: it ends or keeps
    answering heartbeats, within the bound, and everyone else is served."""
    frames = data.draw(st.lists(messages(vsn), min_size=1, max_size=6))
    fuzz_server.run(_send_messages(fuzz_server.server, vsn, frames))
    assert fuzz_server.problems == []


async def _send_messages(server: Server, vsn: str, frames: list[str | bytes]) -> None:
    ws = await connect(server, f"vsn={vsn}")
    try:
        for frame in frames:
            await ws.send(frame)
        await _answers_or_ends(ws, vsn)
    finally:
        await ws.close()


async def _answers_or_ends(ws: Any, vsn: str) -> None:
    """A heartbeat gets its reply (other frames may come first), or the
    server closes the connection; either within the bound."""
    ref = "fuzz-barrier"
    barrier = (
        J([None, ref, "phoenix", "heartbeat", {}])
        if vsn == "2.0.0"
        else J({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": ref})
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    try:
        await ws.send(barrier)
        while loop.time() < deadline:
            frame = await recv(ws, BOUND)
            if isinstance(frame, str) and f'"{ref}"' in frame:
                return
    except ConnectionClosed:
        return
    raise AssertionError("the server neither answered nor closed")


# -- raw websocket framing ---------------------------------------------------------


def _masked_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([0x80 | size])
    else:
        head += bytes([0x80 | 126]) + size.to_bytes(2, "big")
    return head + b"\0\0\0\0" + payload


frame_parts = st.one_of(
    st.binary(min_size=1, max_size=24),  # anything at all
    st.tuples(st.integers(0, 15), st.binary(max_size=20), st.booleans()).map(
        lambda t: _masked_frame(*t)
    ),  # well-framed, any opcode and fin
    st.just(_masked_frame(1, J([None, "x", "phoenix", "heartbeat", {}]).encode())),
)


@settings(FUZZ, max_examples=200)
@given(st.lists(frame_parts, min_size=1, max_size=5), st.booleans())
def test_raw_bytes_after_the_upgrade(fuzz_server, parts, half_close):
    """Broken websocket framing after a good upgrade: the server closes the
    connection (1002 and friends; the idle timeout for a frame that never
    completes; our half-close) or keeps answering; never a crash, never
    stuck."""
    data = b"".join(parts)
    fuzz_server.run(_send_raw_frames(fuzz_server.server, data, half_close))


async def _send_raw_frames(server: Server, data: bytes, half_close: bool) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(upgrade_request(server, "/socket/websocket?vsn=2.0.0"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
        assert head.startswith(b"HTTP/1.1 101 ")
        writer.write(data)
        end = J([None, "end", "phoenix", "heartbeat", {}]).encode()
        writer.write(_masked_frame(1, end))
        if half_close:
            writer.write_eof()
        # The heartbeat's reply, a close frame, or the end of the connection
        # (a half frame waits for the idle timeout, which closes it).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + IDLE_TIMEOUT + BOUND
        received = b""
        while loop.time() < deadline:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), BOUND)
            except ConnectionError:
                return
            received += chunk
            if not chunk or b'"end"' in received or _has_close_frame(received):
                return
        raise AssertionError("the server neither answered nor closed")
    finally:
        writer.transport.abort()


def _has_close_frame(data: bytes) -> bool:
    """Whether the server's frames in ``data`` include a close frame."""
    pos = 0
    while pos + 2 <= len(data):
        opcode, size = data[pos] & 0x0F, data[pos + 1] & 0x7F
        pos += 2
        if size == 126:
            size, pos = int.from_bytes(data[pos : pos + 2], "big"), pos + 2
        elif size == 127:
            size, pos = int.from_bytes(data[pos : pos + 8], "big"), pos + 8
        if opcode == 8:
            return True
        pos += size
    return False


# -- long-poll POST bodies -------------------------------------------------------------

lp_lines = st.one_of(
    fields.map(_v2),
    st.just("[" * 3000),
    binary_pushes.map(lambda b: base64.b64encode(b).decode()),
    st.text(max_size=20).filter(lambda t: "\n" not in t and "\r" not in t),
)
content_types = st.sampled_from(
    ["application/x-ndjson", "application/json", "text/plain", ""]
)


@settings(FUZZ, max_examples=60)
@given(
    st.lists(lp_lines, min_size=0, max_size=6),
    content_types,
    st.booleans(),
    st.binary(max_size=30),
)
def test_longpoll_post_bodies(fuzz_server, lines, content_type, raw, junk):
    """Whatever a POST carries, it is answered in time (200 with a status,
    or 500 for a body Phoenix cannot decode), and a poll still works."""
    body = junk if raw else "\n".join(lines).encode()
    fuzz_server.run(_post(fuzz_server.server, body, content_type))


async def _post(server: Server, body: bytes, content_type: str) -> None:
    url = server.longpoll_url + "?vsn=2.0.0"
    async with httpx.AsyncClient(timeout=BOUND) as http:
        token = (await http.get(url)).json()["token"]
        live = f"{url}&token={token}"
        headers = {"content-type": content_type} if content_type else {}
        answer = await http.post(live, content=body, headers=headers)
        if answer.status_code == 200:
            assert answer.json()["status"] in (200, 408, 410)
        else:
            assert answer.status_code == 500 and answer.content == b""
        poll = (await http.get(live)).json()  # answered at once or in a window
        assert poll["status"] in (200, 204, 410)


# -- raw HTTP heads --------------------------------------------------------------------

methods = st.sampled_from(["GET", "POST", "OPTIONS", "PUT", "get", "", "G\x00T"])
targets = st.sampled_from(
    ["/socket/websocket", "/socket/websocket?vsn=2.0.0", "/socket/longpoll", "/", "*"]
) | st.text(max_size=12)
versions = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "", "HTTP/1.1 x"])
header_items = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "Host",
                "Upgrade",
                "Connection",
                "Sec-WebSocket-Key",
                "Sec-WebSocket-Version",
                "Content-Length",
                "Transfer-Encoding",
            ]
        )
        | st.text(max_size=8),
        st.sampled_from(
            [
                "websocket",
                "Upgrade",
                "dGhlIHNhbXBsZSBub25jZQ==",
                "13",
                "5",
                "chunked",
                "-1",
                "99999999999",
            ]
        )
        | st.text(max_size=12),
    ),
    max_size=6,
)


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    """A request head, often nearly right, sometimes with an end, a body
    or plain garbage."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=60))
    line = f"{draw(methods)} {draw(targets)} {draw(versions)}"
    lines = [line, *(f"{k}: {v}" for k, v in draw(header_items))]
    text = "\r\n".join(lines)
    head = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):  # complete, and maybe something after it
        head += b"\r\n\r\n" + draw(st.binary(max_size=20))
    return head


@pytest.mark.parametrize("fuzz_server", [HANDSHAKE_TIMEOUT], indirect=True)
@settings(FUZZ, max_examples=40)
@given(st.lists(heads(), min_size=1, max_size=6))
def test_raw_http_heads(fuzz_server, requests):
    """Each head on its own connection, all at once: each gets an answer or
    is closed, no later than the handshake timeout plus the bound."""
    fuzz_server.run(_heads(fuzz_server.server, requests))


async def _heads(server: Server, requests: list[bytes]) -> None:
    await asyncio.gather(*(_one_head(server, r) for r in requests))


async def _one_head(server: Server, request: bytes) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        # Wait for the first answer or the end; a 101 upgrade stays open
        # (its websocket has an idle timeout of its own).
        try:
            first = await asyncio.wait_for(
                reader.read(65536), HANDSHAKE_TIMEOUT + BOUND
            )
        except ConnectionError:
            return
        assert first == b"" or first.startswith(b"HTTP/1.1 "), first
    finally:
        writer.transport.abort()


@pytest.mark.parametrize(
    "target", ["/socket/websocket?vsn=2.0.0", "/socket/websocket?vsn=9.9.9"]
)
@pytest.mark.parametrize("tail", [b"\xff\xff\xff", b"\x81\x05hello"])
def test_garbage_in_the_same_read_as_an_upgrade_request(fuzz_server, target, tail):
    """Bytes that are not client frames right behind an upgrade request (found
    by this fuzzing: websockets had already failed the connection when the
    request was answered, and the server's answer raised in data_received).
    The connection is closed, nothing else happens."""
    server = fuzz_server.server
    assert (
        fuzz_server.run(_request_then(server, upgrade_request(server, target), tail))
        == b""
    )


async def _request_then(server: Server, request: bytes, tail: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request + tail)  # one write: one read on the server
        return await asyncio.wait_for(reader.read(65536), BOUND)
    finally:
        writer.transport.abort()


def test_no_example_sent_json_that_is_not_json():
    """The strategies above produce what they claim (sanity)."""
    assert json.loads(_v2((None, "1", "t", "e", {}))) == [None, "1", "t", "e", {}]
