"""The server: one listening port, websocket and plain HTTP on it.

Each TCP connection starts with a small protocol that buffers the request
head. A ``GET`` of ``<mount>/websocket`` becomes a
:class:`~.websocket.WebSocketConnection` (websockets' sans-I/O protocol,
driven by hand); anything else becomes an :class:`~.http.HttpConnection`
(h11), whose ``<mount>/longpoll`` route is the long-poll transport
(:mod:`.longpoll`). One port serves both ``/socket/websocket`` and
``/socket/longpoll``.

Usage::

    async with Server({"room:*": RoomChannel}) as server:   # port 0: a free port
        print(server.url)            # ws://127.0.0.1:PORT/socket
        ...

Every task the server makes (joins, channel mailboxes, HTTP handlers) is
tracked, and :meth:`Server.stop` ends them all.

Resource limits. No single client can take the server down or starve the
others; each limit is a :class:`Server` option (``docs/reliability.md`` has
the table):

- ``handshake_timeout``: a connection must deliver a whole request head
  (and an HTTP request its body) in time, or it is closed (slowloris);
- ``max_message_size``: one inbound message (1009 on a websocket, HTTP 413);
- ``max_write_buffer``: bytes waiting for a client that does not read (1008);
- ``max_mailbox``: client messages waiting for a slow channel (1013);
- ``max_channels``: topics per connection (a join error, as Phoenix);
- ``idle_timeout``, ``longpoll_max_queue``: silent websockets, unpolled
  long-poll sessions.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import h11

from .channel import ChannelFactory
from .connect import ConnectHook, accept_all
from .http import (
    REQUEST_TIMEOUT_RESPONSE,
    HttpConnection,
    HttpHandler,
    HttpRequest,
    HttpResponse,
    not_found,
)
from .longpoll import (
    DEFAULT_MAX_QUEUE,
    DEFAULT_WINDOW,
    LongPollEndpoint,
    LongPollSession,
)
from .presence import PresenceTracker
from .pubsub import PubSub
from .recorder import FrameRecorder
from .router import Router
from .websocket import WebSocketConnection

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_MAX_MAILBOX",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_WRITE_BUFFER",
    "Server",
]

logger = logging.getLogger("phoenix_channels.server")

#: Largest inbound websocket message; Bandit has no limit (transcripts fact 14).
DEFAULT_MAX_MESSAGE_SIZE = 8 * 1024 * 1024
#: Outbound bytes that may wait for one client: twice the largest message,
#: so that echoing a maximum message back always fits.
DEFAULT_MAX_WRITE_BUFFER = 2 * DEFAULT_MAX_MESSAGE_SIZE
#: Client messages that may wait in one channel's mailbox.
DEFAULT_MAX_MAILBOX = 10_000
#: Seconds a new connection has to send a whole request head.
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
MAX_HEAD_SIZE = 64 * 1024
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-length: 0\r\nconnection: close\r\n\r\n"
)


class Server:
    """A Phoenix-protocol server for the given channels.

    Args:
        channels: topic pattern (``"room:*"`` or an exact topic) to channel
            class (or any zero-argument factory of a ``ServerChannel``).
        host: interface to listen on.
        port: port to listen on; ``0`` picks a free one (see :attr:`port`).
        mount: the socket path; the websocket is at ``<mount>/websocket``.
        connect: the connect hook (:mod:`.connect`); default accepts all.
        max_channels: topics one connection may join; past that a join gets
            error ``{"reason": "too many channels joined"}`` (Phoenix's
            ``max_channels_per_transport``, default 100).
        max_message_size: largest inbound message in bytes; a larger one
            closes the websocket with 1009 (Bandit has no limit).
        max_write_buffer: bytes that may wait to be sent to one client
            (the transport's write buffer); past that the client is not
            reading what it is sent, and the websocket is closed with 1008
            (policy violation) after a logged warning. The close frame queues
            behind the unread bytes, so a client that stopped reading is
            aborted ``close_timeout`` later. An HTTP connection is aborted.
            ``None``: no limit (Bandit has none).
        max_mailbox: client messages (pushes, leaves) that may wait for one
            channel whose handler is slow; one more closes the connection
            with 1013 (try again later: the server cannot keep up) after a
            logged warning. Also the size past which a websocket stops
            reading while a join runs (TCP backpressure, no close).
            ``None``: no limit (Phoenix has none).
        handshake_timeout: seconds a new connection gets to send its whole
            request head (websocket upgrade or HTTP request), and an HTTP
            request its body, counted again from each response on a
            keep-alive connection. Past it the connection is closed, with
            HTTP 408 if part of a request had arrived (a slowloris). Also the
            TLS handshake timeout. ``None``: wait forever for the request
            (asyncio's 60 s still bound a TLS handshake).
        subprotocols: subprotocols the server may select; ``None`` (the
            default, like Phoenix 1.7.24) never sends ``Sec-WebSocket-Protocol``.
        record_frames: record every frame of every connection (:attr:`recorder`).
        idle_timeout: seconds without any data from a websocket client
            before the server closes it with 1002, as Bandit does with
            Phoenix's ``timeout: 60_000`` (clients heartbeat every 30 s);
            ``None`` never closes idle connections.
        close_timeout: seconds a closing client gets before the TCP
            connection is aborted, and that :meth:`stop` waits for clients.
        backlog: listen backlog.
        longpoll: serve the long-poll transport at ``<mount>/longpoll``.
        longpoll_window: seconds a long-poll GET is held when nothing is
            queued (Phoenix's ``window_ms``, 10 s); a session ends after 1.5
            windows without a poll.
        longpoll_max_queue: frames that may wait for a poll; past that the
            session is dropped with a logged warning (Phoenix has no limit).
        ssl: serve TLS (``wss://``/``https://``) with this context.
    """

    def __init__(
        self,
        channels: Mapping[str, ChannelFactory],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        mount: str = "/socket",
        connect: ConnectHook | None = None,
        max_channels: int = 100,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_write_buffer: int | None = DEFAULT_MAX_WRITE_BUFFER,
        max_mailbox: int | None = DEFAULT_MAX_MAILBOX,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
        subprotocols: Sequence[str] | None = None,
        record_frames: bool = False,
        idle_timeout: float | None = 60.0,
        close_timeout: float = 2.0,
        backlog: int = 1024,
        longpoll: bool = True,
        longpoll_window: float = DEFAULT_WINDOW,
        longpoll_max_queue: int = DEFAULT_MAX_QUEUE,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        if not mount.startswith("/") or (len(mount) > 1 and mount.endswith("/")):
            raise ValueError(f"mount must look like '/socket', got {mount!r}")
        if longpoll_window <= 0:
            raise ValueError(f"longpoll_window must be > 0, got {longpoll_window!r}")
        if longpoll_max_queue < 1:
            raise ValueError(
                f"longpoll_max_queue must be >= 1, got {longpoll_max_queue!r}"
            )
        _check_limit("max_write_buffer", max_write_buffer)
        _check_limit("max_mailbox", max_mailbox)
        if handshake_timeout is not None and not handshake_timeout > 0:
            raise ValueError(
                f"handshake_timeout must be > 0 or None, got {handshake_timeout!r}"
            )
        self.router = Router(channels)
        self.host = host
        self.port = port
        self.mount = mount
        self.connect_hook: ConnectHook = connect or accept_all
        self.max_channels = max_channels
        self.max_message_size = max_message_size
        self.max_write_buffer = max_write_buffer
        self.max_mailbox = max_mailbox
        self.handshake_timeout = handshake_timeout
        self.subprotocols: tuple[str, ...] = tuple(subprotocols or ())
        self.idle_timeout = idle_timeout
        self.close_timeout = close_timeout
        self.backlog = backlog
        self.ssl = ssl
        self.longpoll_window = longpoll_window
        self.longpoll_max_queue = longpoll_max_queue
        self.pubsub = PubSub()
        self.presence = PresenceTracker(self.pubsub)
        self.recorder: FrameRecorder | None = FrameRecorder() if record_frames else None
        #: Answer heartbeats; see :meth:`pause_heartbeats`.
        self.heartbeats_enabled = True
        self.websocket_path = mount.rstrip("/") + "/websocket"
        self.longpoll_path = mount.rstrip("/") + "/longpoll"
        self._http_routes: dict[str, HttpHandler] = {
            self.websocket_path: _websocket_not_get
        }
        #: The long-poll transport and its sessions.
        self.longpoll = LongPollEndpoint(self)
        if longpoll:
            self._http_routes[self.longpoll_path] = self.longpoll.handle
        self._listener: asyncio.Server | None = None
        self._tracked: set[asyncio.Protocol] = set()
        self._open: dict[WebSocketConnection, None] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle: asyncio.Event | None = None
        self._stopping = False

    # --- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Start listening; afterwards :attr:`port` is the real port."""
        if self._listener is not None:
            raise RuntimeError("the server is already started")
        loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._listener = await loop.create_server(
            lambda: _HeadSniffer(self),
            self.host,
            self.port,
            backlog=self.backlog,
            ssl=self.ssl,
            # A TLS handshake is part of the handshake a client must finish.
            ssl_handshake_timeout=(
                self.handshake_timeout if self.ssl is not None else None
            ),
        )
        self.port = self._listener.sockets[0].getsockname()[1]
        logger.info("= listening on %s", self.url)

    async def stop(self) -> None:
        """Close every connection (1001 "going away"), then the listener.

        Clients get ``close_timeout`` seconds to answer the close frame;
        stragglers are aborted. Long-poll sessions end at once, and so do
        the requests they hold. Every task the server made is cancelled.
        """
        listener, self._listener = self._listener, None
        if listener is None:
            return
        self._stopping = True
        listener.close()
        self.longpoll.close_all()
        for conn in list(self._tracked):
            _shutdown(conn)
        await self._wait_idle(self.close_timeout)
        for conn in list(self._tracked):
            _abort(conn)
        await self._wait_idle(1.0)
        if self._tasks:  # channel teardowns finish; anything else is cancelled
            await asyncio.wait(set(self._tasks), timeout=self.close_timeout)
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await listener.wait_closed()
        logger.info("= stopped")

    async def serve_forever(self) -> None:
        """Start if needed, serve until cancelled, then stop."""
        if self._listener is None:
            await self.start()
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            await self.stop()

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _wait_idle(self, timeout: float) -> None:
        if self._idle is None or self._idle.is_set():
            return
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    # --- addresses ------------------------------------------------------------

    @property
    def url(self) -> str:
        """The socket endpoint a client is given, e.g. ``ws://127.0.0.1:4000/socket``."""
        return self._origin("ws") + self.mount

    @property
    def websocket_url(self) -> str:
        """The full websocket URL, e.g. ``ws://127.0.0.1:4000/socket/websocket``."""
        return self._origin("ws") + self.websocket_path

    @property
    def longpoll_url(self) -> str:
        """The long-poll URL, e.g. ``http://127.0.0.1:4000/socket/longpoll``."""
        return self._origin("http") + self.longpoll_path

    def _origin(self, scheme: str) -> str:
        """``scheme://host:port``, ``scheme`` + ``s`` over TLS."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        tls = "s" if self.ssl is not None else ""
        return f"{scheme}{tls}://{host}:{self.port}"

    # --- connections ----------------------------------------------------------

    @property
    def connections(self) -> list[WebSocketConnection]:
        """Open websocket connections, oldest first."""
        return list(self._open)

    @property
    def longpoll_sessions(self) -> list[LongPollSession]:
        """Live long-poll sessions (not ending), oldest first."""
        return [s for s in self.longpoll.sessions.values() if not s.closed]

    def broadcast(self, topic: str, event: str, payload: Any = None) -> int:
        """Broadcast to every channel joined on ``topic`` (Endpoint.broadcast).

        Returns:
            How many channels it was delivered to.
        """
        return self.pubsub.broadcast(topic, event, {} if payload is None else payload)

    def disconnect(self, id: str, code: int = 1001) -> int:
        """Close every websocket whose connect hook gave it ``id``, as a
        ``"disconnect"`` broadcast to the socket id does in Phoenix; 1001 makes
        clients reconnect (PROTOCOL §9). Long-poll sessions with that ``id``
        end; their clients find out at their next poll (a new session).

        Returns:
            How many connections (and sessions) were closed.
        """
        closed = 0
        for conn in self.connections:
            if conn.socket is not None and conn.socket.id == id:
                conn.close(code)
                closed += 1
        for session in self.longpoll_sessions:
            if session.socket.id == id:
                session.close(code)
                closed += 1
        return closed

    def drop_connections(self) -> int:
        """Abort every TCP connection without a close frame (a crash, as the
        clients see it). The listener keeps accepting.

        Returns:
            How many connections were dropped.
        """
        conns = list(self._tracked)
        for conn in conns:
            _abort(conn)
        return len(conns)

    def pause_heartbeats(self) -> None:
        """Stop answering heartbeats (clients will time out and reconnect)."""
        self.heartbeats_enabled = False

    def resume_heartbeats(self) -> None:
        """Answer heartbeats again."""
        self.heartbeats_enabled = True

    # --- HTTP -----------------------------------------------------------------

    def route_http(self, path: str, handler: HttpHandler) -> None:
        """Serve plain HTTP requests for ``path`` (exact match) with ``handler``."""
        self._http_routes[path] = handler

    def http_handler(self, path: str) -> HttpHandler:
        """The handler for ``path`` (``404`` when none is routed)."""
        return self._http_routes.get(path, not_found)

    # --- tasks ----------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` in a task the server tracks and cancels on stop."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("! server task failed", exc_info=task.exception())

    # --- bookkeeping (called by the connection protocols) ---------------------

    def _track(self, conn: asyncio.Protocol) -> None:
        self._tracked.add(conn)
        if self._idle is not None:
            self._idle.clear()

    def _replace(self, old: asyncio.Protocol, new: asyncio.Protocol) -> None:
        self._tracked.discard(old)
        self._tracked.add(new)

    def _connection_opened(self, conn: WebSocketConnection) -> None:
        self._open[conn] = None

    def _connection_lost(self, conn: asyncio.Protocol) -> None:
        self._tracked.discard(conn)
        if isinstance(conn, WebSocketConnection):
            self._open.pop(conn, None)
        if not self._tracked and self._idle is not None:
            self._idle.set()


class _HeadSniffer(asyncio.Protocol):
    """Buffers the request head, then hands the connection over for good.

    A connection that has not sent a whole head within ``handshake_timeout``
    (one that says nothing, or a slowloris trickling its headers) is closed:
    with HTTP 408 if it sent something, silently if not.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.server._stopping:
            transport.abort()
            return
        self.server._track(self)
        timeout = self.server.handshake_timeout
        if timeout is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(timeout, self._timed_out)

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        buffer = self._buffer = self._buffer + data
        if b"\r\n\r\n" not in buffer:
            if len(buffer) > MAX_HEAD_SIZE:
                self._cancel_timer()
                transport.write(_HEAD_TOO_LARGE)
                transport.close()
            return
        self._cancel_timer()
        request_line = buffer.split(b"\r\n", 1)[0].split(b" ")
        is_websocket = (
            len(request_line) == 3
            and request_line[0] == b"GET"
            and urlsplit(request_line[1].decode("latin-1")).path
            == self.server.websocket_path
        )
        new: WebSocketConnection | HttpConnection
        if is_websocket:
            new = WebSocketConnection(self.server, transport)
        else:
            new = HttpConnection(self.server, transport, h11.Connection(h11.SERVER))
        self.server._replace(self, new)
        transport.set_protocol(new)
        new.data_received(buffer)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.server._connection_lost(self)

    def _timed_out(self) -> None:
        self._timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        logger.info(
            "! no request head within %g s (%d bytes): closing",
            self.server.handshake_timeout,
            len(self._buffer),
        )
        if self._buffer:
            transport.write(REQUEST_TIMEOUT_RESPONSE)
        transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _shutdown(conn: asyncio.Protocol) -> None:
    if isinstance(conn, WebSocketConnection):
        # 1001 "going away": clients reconnect (PROTOCOL §9).
        conn.close(1001)
    elif isinstance(conn, (HttpConnection, _HeadSniffer)) and conn.transport:
        conn.transport.close()


def _abort(conn: asyncio.Protocol) -> None:
    if isinstance(conn, (WebSocketConnection, HttpConnection, _HeadSniffer)):
        if conn.transport is not None:
            conn.transport.abort()


async def _websocket_not_get(request: HttpRequest) -> HttpResponse:
    # Phoenix.Transports.WebSocket answers any other method with 400, empty body.
    return HttpResponse(400)


def _check_limit(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or value < 1):
        raise ValueError(f"{name} must be >= 1 or None, got {value!r}")
