"""Start, stop, crash simulation, heartbeats, recording, and plain HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from websockets.exceptions import ConnectionClosed

from phoenix_channels.server import (
    HttpRequest,
    HttpResponse,
    Server,
    ServerChannel,
    demo_server,
    ok,
    serve_forever,
)

from .helpers import (
    TIMEOUT,
    connect,
    expect_close,
    heartbeat,
    join,
    raw_http,
    recv,
    recv_json,
    upgrade_request,
    v2,
)


async def test_url_and_port_after_start():
    """Port 0 picks a free port; url is the endpoint a client is given."""
    server = demo_server(port=0)
    await server.start()
    try:
        assert server.port > 0
        assert server.url == f"ws://127.0.0.1:{server.port}/socket"
        assert server.websocket_url == server.url + "/websocket"
        with pytest.raises(RuntimeError):
            await server.start()
    finally:
        await server.stop()
    await server.stop()  # idempotent


async def test_stop_closes_clients_with_1001_and_cancels_everything():
    """stop() sends 1001 to every client, ends every task, and the port stops
    listening."""
    server = demo_server(port=0)
    await server.start()
    try:
        ws = await connect(server)
        await join(ws, "room:a")
        await ws.send(v2("1", "2", "room:a", "slow", {"ms": 10_000}))
        await heartbeat(ws)
    finally:
        await server.stop()
    assert await expect_close(ws) == (1001, "")
    assert server.connections == []
    assert not server._tasks
    with pytest.raises(OSError):
        await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", server.port), TIMEOUT
        )


async def test_stop_aborts_clients_that_do_not_answer_the_close():
    """A client that never answers the close frame is aborted after
    close_timeout."""
    async with demo_server(port=0, close_timeout=0.2) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(upgrade_request(server, "/socket/websocket?vsn=2.0.0"))
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    # The server stopped: it sent a close frame and then dropped the socket.
    data = await asyncio.wait_for(reader.read(), TIMEOUT)
    assert data[:1] == b"\x88"
    writer.close()


async def test_drop_connections_looks_like_a_crash(demo):
    """drop_connections() aborts TCP with no close frame; the server keeps
    accepting, and the dropped channels are cleaned up (presence leaves)."""
    watcher, victim = await connect(demo), await connect(demo)
    async with watcher:
        await watcher.send(v2("1", "1", "presence:p", "phx_join", {"user_id": "w"}))
        for _ in range(3):
            await recv(watcher)
        await victim.send(v2("1", "1", "presence:p", "phx_join", {"user_id": "v"}))
        for _ in range(3):
            await recv(victim)
        assert json.loads(await recv(watcher))[4]["joins"].keys() == {"v"}
        victim_conn = demo.connections[1]
        victim_conn.abort()
        with pytest.raises(ConnectionClosed) as closed:
            await recv(victim)
        assert closed.value.rcvd is None  # no close frame: 1006
        diff = json.loads(await recv(watcher))
        assert diff[4]["leaves"].keys() == {"v"}
    assert demo.drop_connections() >= 0
    fresh = await connect(demo)
    async with fresh:
        await heartbeat(fresh)
        assert demo.drop_connections() == 1
        with pytest.raises(ConnectionClosed):
            await recv(fresh)


async def test_pause_heartbeats(demo):
    """While heartbeats are paused they go unanswered; then they work again."""
    ws = await connect(demo)
    async with ws:
        await join(ws, "room:a")
        demo.pause_heartbeats()
        await ws.send(v2(None, "2", "phoenix", "heartbeat"))
        await ws.send(v2("1", "3", "room:a", "echo"))
        # The echo reply comes from the channel after the socket handled the
        # heartbeat: had it been answered, its reply would be first.
        assert (await recv_json(ws))[1] == "3"
        demo.resume_heartbeats()
        await heartbeat(ws)


async def test_async_with_and_serve_forever():
    """serve_forever serves until cancelled, then stops."""
    ready: asyncio.Future[Server] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve_forever(port=0, ready=ready.set_result))
    try:
        server = await asyncio.wait_for(ready, TIMEOUT)
        ws = await connect(server)
        async with ws:
            await heartbeat(ws)
            task.cancel()
            assert await expect_close(ws) == (1001, "")
    finally:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=TIMEOUT)
    assert task in done and task.cancelled()


async def test_recorder_keeps_every_frame_in_order(recorded_demo):
    """The recorder keeps both directions, in wire order, closed connections
    included."""
    ws = await connect(recorded_demo, "vsn=2.0.0&x=1")
    async with ws:
        await join(ws, "room:rec")
        await ws.send(v2("1", "2", "room:rec", "push_me", {"p": 1}))
        await recv(ws), await recv(ws)
        assert recorded_demo.connections[0].frames[0].data == v2(
            "1", "1", "room:rec", "phx_join"
        )
    [record] = recorded_demo.recorder.connections
    assert record.path == "/socket/websocket?vsn=2.0.0&x=1"
    assert [(f.direction, f.kind) for f in record.frames] == [
        ("in", "text"),
        ("out", "text"),
        ("in", "text"),
        ("out", "text"),
        ("out", "text"),
        ("in", "close"),
        ("out", "close"),
    ]
    assert record.sent_by_client() == [
        v2("1", "1", "room:rec", "phx_join"),
        v2("1", "2", "room:rec", "push_me", {"p": 1}),
    ]
    assert record.sent_by_server()[1] == '["1",null,"room:rec","pushed",{"p":1}]'
    times = [f.time for f in record.frames]
    assert times == sorted(times)
    assert (record.frames[-2].code, record.frames[-1].code) == (1000, 1000)


async def test_recorder_records_broadcasts_and_binary(recorded_demo):
    """Broadcast (fastlane) and binary frames are recorded too."""
    ws = await connect(recorded_demo)
    async with ws:
        await join(ws, "room:rec")
        recorded_demo.broadcast("room:rec", "news", b"\x01")
        assert await recv(ws) == bytes([2, 8, 4]) + b"room:recnews\x01"
    frames = recorded_demo.recorder.connections[0].frames
    assert (frames[2].direction, frames[2].kind, frames[2].data) == (
        "out",
        "binary",
        bytes([2, 8, 4]) + b"room:recnews\x01",
    )


async def test_recorder_is_off_by_default(demo):
    """No recorder unless asked for."""
    ws = await connect(demo)
    async with ws:
        await heartbeat(ws)
        assert demo.recorder is None
        assert demo.connections[0].frames == []


async def test_other_http_requests_get_404(demo):
    """Anything but the websocket upgrade is plain HTTP: 404, empty body."""
    status, headers, body = await raw_http(
        demo, b"GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status == "HTTP/1.1 404 " and body == b""
    assert headers["content-length"] == "0"


async def test_websocket_path_with_another_method_gets_400(demo):
    """Phoenix answers 400 to a non-GET on the websocket path."""
    request = (
        b"POST /socket/websocket HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    )
    status, _, body = await raw_http(demo, request)
    assert status.startswith("HTTP/1.1 400") and body == b""


async def test_plain_get_of_websocket_path(demo):
    """A GET without upgrade headers runs the connect hook first (403 for
    token=bad), then fails the upgrade with 400, as Phoenix does."""
    status, _, _ = await raw_http(
        demo, b"GET /socket/websocket?token=bad HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert status == "HTTP/1.1 403 Forbidden"
    status, _, body = await raw_http(
        demo, b"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert status == "HTTP/1.1 400 Bad Request"
    assert b"Failed to open a WebSocket connection" in body


async def test_route_http_serves_requests_with_keep_alive():
    """A routed handler gets method, params, headers and body; a connection
    serves several requests (the seam for long-poll)."""
    seen: list[HttpRequest] = []

    async def handler(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse(
            200, [("content-type", "application/json")], b'{"status":200}'
        )

    async with demo_server(port=0) as server:
        server.route_http("/socket/longpoll", handler)
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            post = (
                b"POST /socket/longpoll?vsn=2.0.0&token=t HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/x-ndjson\r\nContent-Length: 5\r\n\r\n[1]\n2"
            )
            for _ in range(2):
                writer.write(post)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
                assert head.startswith(b"HTTP/1.1 200 ")
                assert b"content-length: 14" in head.lower()
                assert await reader.readexactly(14) == b'{"status":200}'
        finally:
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
    assert len(seen) == 2
    request = seen[0]
    assert (request.method, request.path, request.body) == (
        "POST",
        "/socket/longpoll",
        b"[1]\n2",
    )
    assert dict(request.params) == {"vsn": "2.0.0", "token": "t"}
    assert request.headers["content-type"] == "application/x-ndjson"


async def test_http_handler_errors_give_500(caplog):
    """A handler that raises answers 500 and is logged."""

    async def handler(request: HttpRequest) -> HttpResponse:
        raise RuntimeError("handler bug")

    async with demo_server(port=0) as server:
        server.route_http("/boom", handler)
        status, _, _ = await raw_http(server, b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status.startswith("HTTP/1.1 500")
    assert "handler bug" in caplog.text


async def test_garbage_and_huge_heads(demo):
    """A garbage request line gets 400; a head over 64 KiB gets 431."""
    status, _, _ = await raw_http(demo, b"NONSENSE\r\n\r\n")
    assert status.startswith("HTTP/1.1 400")
    status, _, _ = await raw_http(demo, b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000)
    assert status.startswith("HTTP/1.1 431")


async def test_custom_mount():
    """mount moves the websocket to <mount>/websocket."""

    class Hello(ServerChannel):
        async def join(self, topic, payload, socket):
            return ok({"hi": topic})

    async with Server({"hi": Hello}, port=0, mount="/ws") as server:
        assert server.url.endswith("/ws")
        ws = await connect(server)
        async with ws:
            assert (await join(ws, "hi"))["response"] == {"hi": "hi"}
    with pytest.raises(ValueError):
        Server({}, mount="socket")


async def test_root_mount_urls_have_one_slash():
    """mount="/" serves /websocket and /longpoll, and says so in its URLs."""
    async with Server({}, port=0, mount="/") as server:
        origin = f"127.0.0.1:{server.port}"
        assert server.websocket_url == f"ws://{origin}/websocket"
        assert server.longpoll_url == f"http://{origin}/longpoll"
        ws = await connect(server)
        async with ws:
            await heartbeat(ws)


async def test_debug_log_shows_frames_but_not_tokens(demo, caplog):
    """At DEBUG, frames are logged with < and >; query values are hidden."""
    caplog.set_level(logging.DEBUG, logger="phoenix_channels.server")
    ws = await connect(demo, "vsn=2.0.0&token=s3cret")
    async with ws:
        await heartbeat(ws)
    assert '< [null,"hb","phoenix","heartbeat",{}]' in caplog.text
    assert '> [null,"hb","phoenix","phx_reply"' in caplog.text
    assert "token=..." in caplog.text
    assert "s3cret" not in caplog.text


async def test_idle_connections_are_closed_with_1002():
    """Like Bandit with Phoenix's 60 s timeout, a client that sends nothing
    for idle_timeout seconds is closed with 1002; any data resets the clock."""
    async with demo_server(port=0, idle_timeout=0.3) as server:
        assert demo_server().idle_timeout == 60.0
        active, idle = await connect(server), await connect(server)
        async with active, idle:
            started = time.monotonic()
            # Keep one client talking for longer than the timeout (this
            # sleep paces the traffic; it synchronises nothing).
            while time.monotonic() - started < 0.5:
                await heartbeat(active)
                await asyncio.sleep(0.05)
            assert await expect_close(idle) == (1002, "")
            assert time.monotonic() - started >= 0.3
            await heartbeat(active)
