"""Plain HTTP on the websocket's port, through h11: what long-poll runs on.

Every request that is not a websocket upgrade of ``<mount>/websocket`` comes
here. A handler is an ``async`` function from :class:`HttpRequest` to
:class:`HttpResponse`, registered for an exact path with
:meth:`Server.route_http`; unrouted paths get ``404`` with an empty body.
``<mount>/longpoll`` is routed to the long-poll transport (:mod:`.longpoll`):
the request body is read whole before the handler runs (a body larger than
``max_message_size`` is answered ``413`` and the connection closed), and a
handler may take as long as it likes (a held poll), since each request runs
in its own task. Keep-alive works as h11 allows.

Limits (:class:`~.server.Server` options): each request must arrive whole,
head and body, within ``handshake_timeout`` of the connection becoming ready
for it (opened, or the previous response sent), or the connection is closed
with ``408`` (silently if nothing of the request came); bytes a client sends
while its request is served are read up to ``MAX_PIPELINED``, then reading
pauses until the response is out; past ``max_write_buffer`` unread response
bytes the connection is aborted.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import h11

from .connect import fold_headers, parse_params

if TYPE_CHECKING:
    from .server import Server

__all__ = ["HttpConnection", "HttpHandler", "HttpRequest", "HttpResponse", "not_found"]

logger = logging.getLogger("phoenix_channels.server")

#: Bytes read from a client while its request is served, before pausing.
MAX_PIPELINED = 64 * 1024
#: What a connection whose request head did not arrive in time gets.
REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
)


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request, body included.

    Attributes:
        method: ``"GET"``, ``"POST"``, ...
        target: the request target (path and query).
        path: the path alone.
        params: the query params, last value winning.
        headers: names lower-cased, repeated headers joined with ``", "``.
        body: the whole request body.
        peer: the client address, if known.
    """

    method: str
    target: str
    path: str
    params: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes = b""
    peer: Any = None


@dataclass(frozen=True)
class HttpResponse:
    """An HTTP response; ``content-length`` and ``date`` are added."""

    status: int
    headers: Sequence[tuple[str, str]] = field(default_factory=tuple)
    body: bytes = b""


HttpHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]


async def not_found(request: HttpRequest) -> HttpResponse:
    """The default handler: ``404``, empty body."""
    return HttpResponse(404)


class HttpConnection(asyncio.Protocol):
    """One HTTP/1.1 connection, served one request at a time."""

    def __init__(
        self, server: Server, transport: asyncio.Transport, conn: h11.Connection
    ) -> None:
        self.server = server
        self.transport = transport
        self._h11 = conn
        self._request: h11.Request | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._received = False  # bytes of the next request have arrived
        self._unread = 0  # bytes received while a request is being served
        self._paused = False
        self._writing_paused = False
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        self._received = True
        if self._task is not None:
            # Pipelined input waits in h11's buffer until the response is out:
            # bound it (TCP backpressure), but keep reading a little so that
            # a client going away still cancels a held poll.
            self._unread += len(data)
            if self._unread > MAX_PIPELINED and not self._paused:
                self._paused = True
                self.transport.pause_reading()
        self._h11.receive_data(data)
        self._advance()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False

    def eof_received(self) -> bool | None:
        self._h11.receive_data(b"")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if self._task is not None:
            self._task.cancel()
        self.server._connection_lost(self)

    def _advance(self) -> None:
        while self._task is None and not self.transport.is_closing():
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._reject(exc.error_status_hint)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._request, self._body, self._size = event, [], 0
            elif isinstance(event, h11.Data):
                self._size += len(event.data)
                limit = self.server.max_message_size
                if limit is not None and self._size > limit:
                    self._reject(413)
                    return
                self._body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self._cancel_timer()
                request = self._make_request()
                self._unread = 0
                self._task = self.server.spawn(self._serve(request))
            elif isinstance(event, h11.ConnectionClosed):
                self.transport.close()
                return

    def _make_request(self) -> HttpRequest:
        event = self._request
        assert event is not None
        target = event.target.decode("ascii", "replace")
        return HttpRequest(
            method=event.method.decode("ascii", "replace"),
            target=target,
            path=urlsplit(target).path,
            params=parse_params(target),
            headers=fold_headers(
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers
            ),
            body=b"".join(self._body),
            peer=self.transport.get_extra_info("peername"),
        )

    async def _serve(self, request: HttpRequest) -> None:
        handler = self.server.http_handler(request.path)
        try:
            response = await handler(request)
        except Exception:
            logger.exception("! HTTP handler for %s raised", request.path)
            response = HttpResponse(500)
        self._task = None
        if self.transport.is_closing():
            return
        self._send(response)
        if (
            self._h11.our_state is h11.MUST_CLOSE
            or self._h11.their_state is h11.MUST_CLOSE
        ):
            self.transport.close()
            return
        try:
            self._h11.start_next_cycle()
        except h11.LocalProtocolError:
            self.transport.close()
            return
        self._received = bool(self._unread)
        self._arm_timer()
        if self._paused:
            self._paused = False
            self.transport.resume_reading()
        self._advance()

    def _send(self, response: HttpResponse) -> None:
        headers = [(k, v) for k, v in response.headers if k.lower() != "content-length"]
        if not any(k.lower() == "date" for k, _ in headers):
            headers.append(("date", email.utils.formatdate(usegmt=True)))
        headers.append(("content-length", str(len(response.body))))
        data = self._h11.send(
            h11.Response(status_code=response.status, headers=headers)
        )
        if response.body:
            data = (data or b"") + (self._h11.send(h11.Data(data=response.body)) or b"")
        data = (data or b"") + (self._h11.send(h11.EndOfMessage()) or b"")
        self.transport.write(data)
        limit = self.server.max_write_buffer
        if self._writing_paused and limit is not None:
            size = self.transport.get_write_buffer_size()
            if size > limit:
                logger.warning(
                    "! HTTP client does not read: %d bytes wait to be sent "
                    "(max_write_buffer %d): aborting",
                    size,
                    limit,
                )
                self.transport.abort()

    # --- request timeout ------------------------------------------------------

    def _arm_timer(self) -> None:
        timeout = self.server.handshake_timeout
        if timeout is not None and not self.transport.is_closing():
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(timeout, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self._task is not None or self.transport.is_closing():
            return
        if not self._received:  # an idle keep-alive connection
            self.transport.close()
            return
        logger.info(
            "! HTTP request not complete within %g s: 408",
            self.server.handshake_timeout,
        )
        if self._h11.their_state is h11.SEND_BODY:
            self._reject(408)
        else:  # the head is not complete: h11 cannot answer yet
            self.transport.write(REQUEST_TIMEOUT_RESPONSE)
            self.transport.close()

    def _reject(self, status: int) -> None:
        """Answer a request h11 could not accept, then close."""
        try:
            self._send(HttpResponse(status))
        except h11.LocalProtocolError:
            pass
        self.transport.close()
