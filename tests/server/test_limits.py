"""Bounded resources: no single client can take the server down or starve
the others.

Each limit is a ``Server`` option with a documented default; each test shows
the limit at work on one client while another client, on the same server,
keeps being served. Limits are set low here so that the tests are quick.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator

import pytest
import trustme

from phoenix_channels import Socket
from phoenix_channels.server import HttpRequest, HttpResponse, Server, demo_server
from phoenix_channels.server.server import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_MAILBOX,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_WRITE_BUFFER,
)

from .helpers import (
    TIMEOUT,
    connect,
    expect_close,
    heartbeat,
    join,
    recv_json,
    until,
    upgrade_request,
    v2,
)


async def _survivor_echoes(server: Server, topic: str = "room:survivor") -> None:
    """A well-behaved client of our own connects, joins and gets an echo."""
    async with Socket(server.url) as client:
        channel = client.channel(topic)
        await asyncio.wait_for(channel.join(), TIMEOUT)
        reply = await asyncio.wait_for(channel.push("echo", {"alive": 1}), TIMEOUT)
        assert reply == {"alive": 1}


async def _open_raw(server: Server, **kwargs):
    """A raw TCP connection to the server (no client logic at all)."""
    return await asyncio.wait_for(
        asyncio.open_connection(server.host, server.port, **kwargs), TIMEOUT
    )


async def _close_raw(writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()
    await asyncio.sleep(0)  # let the transport run its connection_lost


async def _read_to_eof(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything the server sends until it closes, within ``timeout``."""
    chunks = []
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), timeout):
            chunks.append(chunk)
    except ConnectionError:
        pass
    return b"".join(chunks)


def test_defaults_are_documented_values():
    """The defaults are the values docs/reliability.md lists."""
    server = Server({})
    assert server.max_channels == 100
    assert server.max_message_size == DEFAULT_MAX_MESSAGE_SIZE == 8 * 2**20
    assert server.max_write_buffer == DEFAULT_MAX_WRITE_BUFFER == 16 * 2**20
    assert server.max_mailbox == DEFAULT_MAX_MAILBOX == 10_000
    assert server.handshake_timeout == DEFAULT_HANDSHAKE_TIMEOUT == 10.0
    assert server.idle_timeout == 60.0
    assert server.longpoll_max_queue == 10_000


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_write_buffer", 0),
        ("max_mailbox", 0),
        ("max_mailbox", True),
        ("handshake_timeout", 0),
        ("handshake_timeout", -1.0),
    ],
)
def test_invalid_limits_are_refused_at_once(option, value):
    """A limit that could never be met raises ValueError naming the option."""
    with pytest.raises(ValueError, match=option):
        Server({}, **{option: value})


def test_limits_can_be_switched_off():
    """``None`` means no limit, as in Phoenix and Bandit."""
    server = Server({}, max_write_buffer=None, max_mailbox=None, handshake_timeout=None)
    assert (server.max_write_buffer, server.max_mailbox) == (None, None)
    assert server.handshake_timeout is None


# -- max_channels -----------------------------------------------------------------


async def test_a_client_joining_thousands_of_topics_gets_max_channels(demo):
    """3,000 joins sent at once: the first 100 join, every other one gets
    "too many channels joined", the connection stays up, and another client
    joins and pushes meanwhile."""
    ws = await connect(demo)
    async with ws:
        frames = [v2(str(i), str(i), f"room:t{i}", "phx_join") for i in range(3000)]
        for frame in frames:
            await ws.send(frame)
        await _survivor_echoes(demo)
        statuses = []
        for _ in frames:
            reply = await recv_json(ws)
            statuses.append((reply[2], reply[4]["status"], reply[4]["response"]))
        await heartbeat(ws)
        assert [s for s in statuses if s[1] == "ok"] == [
            (f"room:t{i}", "ok", {"joined": f"room:t{i}", "params": {}})
            for i in range(100)
        ]
        refused = [s for s in statuses if s[1] == "error"]
        assert len(refused) == 2900
        assert {json.dumps(s[2]) for s in refused} == {
            '{"reason": "too many channels joined"}'
        }
        assert max(len(c.topics) for c in demo.connections) == 100


# -- max_write_buffer ---------------------------------------------------------------


async def test_a_client_that_does_not_read_is_closed_with_1008(caplog):
    """A client that keeps pushing but never reads its replies is closed once
    max_write_buffer bytes wait for it: a warning, a 1008 close frame behind
    the unread bytes, and an abort close_timeout later; meanwhile another
    client is served."""
    limit = 256 * 1024
    async with demo_server(port=0, max_write_buffer=limit, close_timeout=0.2) as server:
        # A tiny read buffer: the client's own asyncio stops reading at once.
        reader, writer = await _open_raw(server, limit=1024)
        try:
            writer.write(upgrade_request(server, "/socket/websocket?vsn=2.0.0"))
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            writer.write(_masked(v2("1", "1", "room:slow", "phx_join")))
            await until(lambda: server.connections and server.connections[0].topics)
            [stalled] = server.connections
            echo = _masked(v2("1", "2", "room:slow", "echo", {"d": "x" * 65536}))
            pushed = 0
            while stalled.is_open and pushed < 2000:
                writer.write(echo)  # ~64 KiB reply each, never read
                pushed += 1
                await writer.drain()
                if pushed % 16 == 0:
                    await _survivor_echoes(server)
            await until(lambda: stalled not in server.connections)
        finally:
            await _close_raw(writer)
        assert pushed < 2000, "the server never closed the client"
        assert stalled._ws.close_sent is not None
        assert stalled._ws.close_sent.code == 1008
        warnings = [r for r in caplog.records if "max_write_buffer" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
        await _survivor_echoes(server)


async def test_a_slow_reader_below_the_limit_gets_everything():
    """Under max_write_buffer a client that reads late loses nothing."""
    async with demo_server(port=0, max_write_buffer=4 * 2**20) as server:
        ws = await connect(server)
        async with ws:
            await join(ws, "room:late")
            payload = {"d": "y" * 16384}
            for i in range(100):  # 1.6 MiB of replies before the first read
                await ws.send(v2("1", str(i), "room:late", "echo", payload))
            refs = [(await recv_json(ws))[1] for _ in range(100)]
            assert refs == [str(i) for i in range(100)]
            await heartbeat(ws)


async def test_an_http_client_that_does_not_read_is_aborted(caplog):
    """Pipelined HTTP requests whose responses are never read: the
    connection is aborted once max_write_buffer bytes wait, with a warning."""

    async def big(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, body=b"z" * 262144)

    async with demo_server(port=0, max_write_buffer=512 * 1024) as server:
        server.route_http("/big", big)
        reader, writer = await _open_raw(server, limit=1024)
        try:
            request = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n"
            for _ in range(400):  # 100 MiB of responses, if they were read
                writer.write(request)
            await writer.drain()
            await until(lambda: "max_write_buffer" in caplog.text, 2 * TIMEOUT)
            await until(lambda: not server._tracked)
        finally:
            await _close_raw(writer)
        await _survivor_echoes(server)


async def test_pipelined_input_during_a_held_poll_is_not_buffered_unbounded():
    """Bytes a client sends while its long-poll is held wait in TCP buffers
    past MAX_PIPELINED: the server stops reading instead of buffering them."""
    import httpx

    from phoenix_channels.server.http import MAX_PIPELINED, HttpConnection

    async with demo_server(port=0, longpoll_window=0.5) as server:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            url = server.longpoll_url + "?vsn=2.0.0"
            token = (await http.get(url)).json()["token"]
        reader, writer = await _open_raw(server)
        try:
            target = f"/socket/longpoll?vsn=2.0.0&token={token}"
            writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            junk = b"x" * 65536
            for _ in range(64):  # 4 MiB, sent while the poll is held
                writer.write(junk)

            def held() -> list[HttpConnection]:
                return [
                    c
                    for c in server._tracked
                    if isinstance(c, HttpConnection) and c._paused
                ]

            await until(held)
            buffered = len(held()[0]._h11.trailing_data[0])
            # The limit, plus the read that crossed it and the read that
            # carried the request head (asyncio reads at most 256 KiB).
            assert buffered <= MAX_PIPELINED + 2 * 256 * 1024
            received = await _read_to_eof(reader, TIMEOUT)
        finally:
            await _close_raw(writer)
        assert received.startswith(b"HTTP/1.1 200")  # the poll, then 400
        await _survivor_echoes(server)


# -- max_mailbox ----------------------------------------------------------------------


async def test_a_flood_into_a_slow_channel_closes_with_1013(caplog):
    """A channel busy with a slow handler takes max_mailbox more pushes; the
    next one closes the connection with 1013, after a warning. A client on
    the same topic, another connection, is not affected."""
    async with demo_server(port=0, max_mailbox=50) as server:
        flood, survivor = await connect(server), await connect(server)
        async with flood, survivor:
            await join(flood, "room:busy")
            await join(survivor, "room:busy", "9")
            await _start_slow(server, flood, "room:busy")
            for i in range(50):
                await flood.send(v2("1", str(i), "room:busy", "echo", {"i": i}))
            await heartbeat(flood)  # still open with a full mailbox
            await flood.send(v2("1", "50", "room:busy", "echo", {"i": 50}))
            assert await expect_close(flood) == (1013, "")
            await survivor.send(v2("9", "10", "room:busy", "echo", {"ok": 1}))
            reply = await recv_json(survivor)
            assert reply[4] == {"response": {"ok": 1}, "status": "ok"}
        warnings = [r for r in caplog.records if "max_mailbox" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
        await _survivor_echoes(server)


async def test_a_full_mailbox_that_drains_takes_more():
    """The bound is on what waits, not on a total: max_mailbox pushes behind
    a slow one are all answered, in order, and so are as many again."""
    async with demo_server(port=0, max_mailbox=20) as server:
        ws = await connect(server)
        async with ws:
            await join(ws, "room:drain")
            for batch in range(2):
                await _start_slow(server, ws, "room:drain", f"s{batch}")
                for i in range(20):
                    await ws.send(v2("1", f"{batch}.{i}", "room:drain", "echo"))
                refs = [(await recv_json(ws))[1] for _ in range(21)]
                assert refs == [f"s{batch}"] + [f"{batch}.{i}" for i in range(20)]


async def _start_slow(server, ws, topic, ref="slow"):
    """Push ``slow`` and wait until its handler runs (out of the mailbox)."""
    await ws.send(v2("1", ref, topic, "slow", {"ms": 300}))
    [process] = [
        c.socket.channels[topic]
        for c in server.connections
        if c.socket is not None and topic in c.socket.channels
    ][:1]
    await until(lambda: process._from_client == 0 and process.socket.ref == ref)


async def test_server_messages_do_not_count_against_the_mailbox():
    """send_info is the channel's own doing: it is never refused."""
    from phoenix_channels.server import ServerChannel, noreply, ok

    class Chatty(ServerChannel):
        async def join(self, topic, payload, socket):
            for i in range(10):
                socket.send_info(i)
            return ok()

        async def handle_info(self, message, socket):
            if message == 9:
                socket.push("done", {})
            return noreply()

    async with Server({"chatty": Chatty}, port=0, max_mailbox=2) as server:
        ws = await connect(server)
        async with ws:
            await join(ws, "chatty")
            assert (await recv_json(ws))[3] == "done"


async def test_longpoll_flood_into_a_slow_channel_ends_the_session():
    """The same bound holds on long-poll: the session ends (its POST gets
    408) and a new session works."""
    import httpx

    async with demo_server(port=0, max_mailbox=5) as server:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            url = server.longpoll_url + "?vsn=2.0.0"
            token = (await http.get(url)).json()["token"]
            post = f"{url}&token={token}"
            ndjson = {"content-type": "application/x-ndjson"}
            join_line = v2("1", "1", "room:lp", "phx_join")
            assert (
                await http.post(post, content=join_line, headers=ndjson)
            ).json() == {"status": 200}
            lines = [v2("1", "s", "room:lp", "slow", {"ms": 2000})]
            lines += [v2("1", str(i), "room:lp", "echo") for i in range(10)]
            answer = await http.post(post, content="\n".join(lines), headers=ndjson)
            assert answer.json() == {"status": 408}
            assert server.longpoll_sessions == []
            fresh = (await http.get(url)).json()
            assert fresh["status"] == 410
        await _survivor_echoes(server)


async def test_a_join_backlog_pauses_reading_instead_of_growing():
    """While a join runs, frames wait; past max_mailbox of them the server
    stops reading (TCP backpressure) instead of buffering the flood, and
    answers every frame, in order, once the join is done."""
    limit = 100
    async with demo_server(port=0, max_mailbox=limit) as server:
        ws = await connect(server)
        async with ws:
            await ws.send(v2("1", "1", "room:j", "phx_join", {"delay_ms": 300}))
            count = 20_000  # about 1 MiB of heartbeats
            sender = asyncio.ensure_future(
                _send_all(
                    ws, [v2(None, str(i), "phoenix", "heartbeat") for i in range(count)]
                )
            )
            await until(lambda: server.connections and _paused(server.connections[0]))
            backlog = len(server.connections[0].socket._backlog)
            # At most the limit, plus the frames of the read that crossed it.
            assert limit <= backlog <= limit + 256 * 1024 // 40
            assert (await recv_json(ws))[:4] == ["1", "1", "room:j", "phx_reply"]
            refs = [(await recv_json(ws))[1] for _ in range(count)]
            assert refs == [str(i) for i in range(count)]
            await asyncio.wait_for(sender, TIMEOUT)
            assert not _paused(server.connections[0])


def _paused(conn) -> bool:
    return conn.socket is not None and conn.socket._reading_paused


async def _send_all(ws, frames):
    for frame in frames:
        await ws.send(frame)


async def test_reading_pauses_while_an_async_connect_hook_runs():
    """Frames a client sends before its upgrade is answered wait in its own
    TCP buffers while the connect hook runs, then are all handled."""
    from phoenix_channels.server import WebSocketConnection, accept

    release = asyncio.Event()

    async def slow_hook(info):
        await asyncio.wait_for(release.wait(), TIMEOUT)
        return accept()

    async with demo_server(port=0, connect=slow_hook) as server:
        reader, writer = await _open_raw(server)
        try:
            writer.write(upgrade_request(server, "/socket/websocket?vsn=2.0.0"))
            count = 20_000  # about 1 MiB of heartbeats, sent at once
            frames = [v2(None, str(i), "phoenix", "heartbeat") for i in range(count)]
            writer.write(b"".join(_masked(f) for f in frames))

            def waiting():
                return [
                    c
                    for c in server._tracked
                    if isinstance(c, WebSocketConnection) and c._pending is not None
                ]

            await until(lambda: waiting() and waiting()[0]._reading_paused)
            held = sum(len(chunk) for chunk in waiting()[0]._pending)
            assert held <= 2 * 256 * 1024  # the reads before the pause took effect
            release.set()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            assert head.startswith(b"HTTP/1.1 101 ")
            last = f'"{count - 1}"'.encode()
            received = b""
            while last not in received:  # every heartbeat is answered
                received += await asyncio.wait_for(reader.read(65536), TIMEOUT)
        finally:
            await _close_raw(writer)


# -- handshake_timeout -----------------------------------------------------------------


@pytest.fixture
async def hurried() -> AsyncIterator[Server]:
    """The demo server with a 0.3 s handshake timeout."""
    async with demo_server(port=0, handshake_timeout=0.3) as server:
        yield server


@pytest.mark.parametrize(
    ("sent", "answer"),
    [
        (b"", b""),  # opens TCP and says nothing
        (b"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: x\r\n", b"408"),
        (b"G", b"408"),
        (b"POST /socket/longpoll HTTP/1.1\r\nHost: x\r\n", b"408"),
        (b"POST /x HTTP/1.1\r\nHost: x\r\ncontent-length: 100\r\n\r\nabc", b"408"),
    ],
    ids=["silent", "partial upgrade head", "one byte", "partial POST", "slow body"],
)
async def test_a_slowloris_is_closed_after_handshake_timeout(hurried, sent, answer):
    """A connection that does not finish its request in time is closed (408
    if it sent anything), no earlier than the timeout; a client connected
    meanwhile is served."""
    reader, writer = await _open_raw(hurried)
    try:
        started = time.monotonic()
        writer.write(sent)
        await _survivor_echoes(hurried)
        received = await _read_to_eof(reader, TIMEOUT)
        elapsed = time.monotonic() - started
    finally:
        await _close_raw(writer)
    assert elapsed >= 0.3 - 0.05
    if answer:
        assert received.startswith(b"HTTP/1.1 " + answer), received
    else:
        assert received == b""


async def test_a_trickled_head_is_cut_at_the_timeout_not_at_each_byte(hurried):
    """Sending one byte at a time does not reset the clock."""
    reader, writer = await _open_raw(hurried)
    try:
        started = time.monotonic()
        reading = asyncio.ensure_future(_read_to_eof(reader, TIMEOUT))
        head = b"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: localhost\r\n"
        for byte in head:  # paced below the timeout, as a slowloris does
            if reading.done() or writer.transport.is_closing():
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(0.02)
        received = await asyncio.wait_for(reading, TIMEOUT)
    finally:
        await _close_raw(writer)
    assert received.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 0.3 + 1.0


async def test_many_slowloris_connections_do_not_starve_others(hurried):
    """200 silent connections at once: a real client still connects, joins
    and pushes; then every one of them is closed."""
    conns = [await _open_raw(hurried) for _ in range(200)]
    try:
        await _survivor_echoes(hurried)
        for reader, _ in conns:
            assert await _read_to_eof(reader, TIMEOUT) == b""
    finally:
        for _, writer in conns:
            await _close_raw(writer)
    await until(lambda: not hurried._tracked)


async def test_an_idle_keep_alive_connection_is_closed_silently(hurried):
    """After a response, the next request must start in time too; an idle
    keep-alive connection is closed without a 408."""
    reader, writer = await _open_raw(hurried)
    try:
        writer.write(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 404")
        assert await _read_to_eof(reader, TIMEOUT) == b""
    finally:
        await _close_raw(writer)


async def test_a_held_long_poll_is_not_cut_by_the_handshake_timeout():
    """The timeout is for the request to arrive; a poll held for its window
    (longer than the timeout) is answered normally."""
    import httpx

    async with demo_server(
        port=0, handshake_timeout=0.2, longpoll_window=0.5
    ) as server:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            url = server.longpoll_url + "?vsn=2.0.0"
            token = (await http.get(url)).json()["token"]
            started = time.monotonic()
            poll = (await http.get(f"{url}&token={token}")).json()
            assert poll["status"] == 204
            assert time.monotonic() - started >= 0.5 - 0.05


async def test_an_open_websocket_is_not_cut_by_the_handshake_timeout(hurried):
    """Once upgraded, a websocket is governed by idle_timeout only."""
    ws = await connect(hurried)
    async with ws:
        started = time.monotonic()
        while time.monotonic() - started < 0.6:  # paces the traffic only
            await heartbeat(ws)
            await asyncio.sleep(0.05)
        await heartbeat(ws)


async def test_the_tls_handshake_has_the_same_timeout():
    """On a TLS server a client that opens TCP and never starts the TLS
    handshake is dropped after handshake_timeout too."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    async with demo_server(port=0, ssl=context, handshake_timeout=0.3) as server:
        reader, writer = await _open_raw(server)
        try:
            started = time.monotonic()
            assert await _read_to_eof(reader, TIMEOUT) == b""
            assert time.monotonic() - started >= 0.3 - 0.05
        finally:
            await _close_raw(writer)


# -- helpers ---------------------------------------------------------------------------


def _masked(text: str) -> bytes:
    """A masked client text frame (the mask is zero: the payload is as is)."""
    data = text.encode()
    size = len(data)
    if size < 126:
        head = bytes([0x81, 0x80 | size])
    elif size < 65536:
        head = bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big")
    return head + b"\0\0\0\0" + data
