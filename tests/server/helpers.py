"""Raw-client helpers for the server tests: no Phoenix client logic here.

Every wait is bounded by :data:`TIMEOUT`; nothing sleeps for a set time to
synchronise (:func:`until` waits for a condition).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from phoenix_channels.server import Server

TIMEOUT = 5.0


def J(value: Any) -> str:
    """Compact JSON as a client sends it (key order kept, raw UTF-8)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def v2(join_ref: Any, ref: Any, topic: Any, event: Any, payload: Any = None) -> str:
    """A vsn 2.0.0 text frame."""
    return J([join_ref, ref, topic, event, {} if payload is None else payload])


def v1(topic: Any, event: Any, payload: Any, ref: Any, **extra: Any) -> str:
    """A vsn 1.0.0 text frame (keys in the order the recorder sent them)."""
    return J({"topic": topic, "event": event, "payload": payload, "ref": ref, **extra})


def binary_push(join_ref: str, ref: str, topic: str, event: str, data: bytes) -> bytes:
    """A client binary push (kind 0), PROTOCOL §6.3."""
    fields = [s.encode() for s in (join_ref, ref, topic, event)]
    return bytes([0, *(len(f) for f in fields)]) + b"".join(fields) + data


async def connect(
    server: Server, query: str = "vsn=2.0.0", **kwargs: Any
) -> ClientConnection:
    """Open a raw websocket to ``server`` (no size limit, no pings)."""
    url = server.websocket_url + (f"?{query}" if query else "")
    return await asyncio.wait_for(
        websockets.connect(
            url,
            max_size=None,
            ping_interval=None,
            compression=None,
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
            **kwargs,
        ),
        TIMEOUT,
    )


async def recv(ws: ClientConnection, timeout: float = TIMEOUT) -> str | bytes:
    """The next frame, within ``timeout`` seconds."""
    return await asyncio.wait_for(ws.recv(), timeout)


async def recv_json(ws: ClientConnection) -> Any:
    """The next frame, decoded from JSON."""
    frame = await recv(ws)
    assert isinstance(frame, str), frame
    return json.loads(frame)


async def expect_close(ws: ClientConnection) -> tuple[int, str]:
    """Wait for the server to close; returns the close code and reason it sent."""
    try:
        frame = await recv(ws)
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, "TCP closed without a close frame"
        return exc.rcvd.code, exc.rcvd.reason
    raise AssertionError(f"expected a close, got frame {frame!r}")


async def heartbeat(ws: ClientConnection, ref: str = "hb", vsn: str = "2.0.0") -> None:
    """Send a heartbeat and assert its reply is the very next frame.

    A barrier: the socket handles frames in order, so any frame the socket
    sent before the heartbeat reply would show up here first.
    """
    if vsn == "2.0.0":
        await ws.send(v2(None, ref, "phoenix", "heartbeat"))
        expected = v2(
            None, ref, "phoenix", "phx_reply", {"response": {}, "status": "ok"}
        )
    else:
        await ws.send(v1("phoenix", "heartbeat", {}, ref))
        expected = J(
            {
                "event": "phx_reply",
                "payload": {"response": {}, "status": "ok"},
                "ref": ref,
                "topic": "phoenix",
            }
        )
    got = await recv(ws)
    assert got == expected, f"barrier: expected {expected!r}, got {got!r}"


async def join(
    ws: ClientConnection, topic: str, join_ref: str = "1", payload: Any = None
) -> Any:
    """Join ``topic`` on a vsn 2.0.0 connection; returns the reply payload."""
    await ws.send(v2(join_ref, join_ref, topic, "phx_join", payload))
    reply = await recv_json(ws)
    assert reply[:4] == [join_ref, join_ref, topic, "phx_reply"], reply
    return reply[4]


async def raw_http(
    server: Server, request: bytes, read_body: bool = True
) -> tuple[str, dict[str, str], bytes]:
    """Send raw bytes; returns the status line, headers (lower-case) and body."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(server.host, server.port), TIMEOUT
    )
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = b""
        length = int(headers.get("content-length", "0"))
        if read_body and length:
            body = await asyncio.wait_for(reader.readexactly(length), TIMEOUT)
        return lines[0], headers, body
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
        except (ConnectionError, asyncio.TimeoutError):
            pass


def upgrade_request(
    server: Server, target: str, extra: list[tuple[str, str]] | None = None
) -> bytes:
    """A hand-made websocket upgrade request, as the transcript recorder sent."""
    headers = [
        ("Host", f"{server.host}:{server.port}"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
        *(extra or []),
    ]
    lines = [f"GET {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers), "", ""]
    return "\r\n".join(lines).encode()


async def until(predicate: Any, timeout: float = TIMEOUT) -> None:
    """Wait until ``predicate()`` holds, checking at every loop turn.

    For server-side state no client can observe (a frame sitting in the
    backlog); bounded, and it waits for a condition, never for a duration.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.001)
