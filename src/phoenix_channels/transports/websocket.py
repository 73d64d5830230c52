"""The websocket transport: websockets' sans-I/O protocol on an asyncio Protocol.

websockets' ``ClientProtocol`` does the RFC 6455 work (handshake, framing,
masking, ping/pong, the closing handshake, size limits); this module feeds it
bytes and hands complete messages to the listener *synchronously*, in the
loop callback that read them. No task or queue per message: that is what
keeps a Phoenix round trip as cheap as a raw websockets loop, or cheaper.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from typing import Any

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from ..errors import PhoenixError
from ..redact import SILENT_LOGGER
from .base import (
    ConnectOptions,
    Frame as Data,
    TransportListener,
    verification_disabled,
)

__all__ = ["WebSocketTransport"]

#: Corked frames are written once they add up to this many bytes.
CORK_BYTES = 65536

#: Seconds to wait for the server to finish the closing handshake.
CLOSE_TIMEOUT = 2.0


_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT


class HandshakeError(PhoenixError):
    """The server did not accept the websocket upgrade."""


class WebSocketTransport(asyncio.Protocol):
    name = "WebSocket"
    skip_heartbeat = False

    def __init__(self, options: ConnectOptions, listener: TransportListener) -> None:
        self._options = options
        self._listener = listener
        try:
            self._uri = parse_uri(options.url)
        except InvalidURI:
            raise ValueError(f"not a valid websocket URL: {options.safe_url}") from None
        self._proto = ClientProtocol(
            self._uri,
            subprotocols=[Subprotocol(p) for p in options.protocols]
            if options.protocols
            else None,
            max_size=options.max_size,
            logger=SILENT_LOGGER,  # it would log handshake headers: tokens
        )
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._handshake: asyncio.Future[None] = self._loop.create_future()
        self._opened = False
        self._flush_scheduled = False
        self._burst = False
        self._corked = 0  # bytes of frames waiting for the flush
        self._failed = False
        self._reported = False
        self._fragments: list[bytes] | None = None
        self._fragment_opcode = _TEXT
        self._close_timer: asyncio.TimerHandle | None = None
        self._open_task = self._loop.create_task(self._open())

    # -- Transport interface -----------------------------------------------

    def send(self, data: Data) -> None:
        if not self._opened or self._proto.state is not State.OPEN:
            return
        if isinstance(data, str):
            data = data.encode()
            self._proto.send_text(data)
        else:
            self._proto.send_binary(data)
        # The first frame since we last heard from the server leaves at once
        # (a lone push pays no extra loop turn); the ones that follow it in a
        # burst are corked and leave together, every CORK_BYTES or on the next
        # loop turn: a batch of pushes costs a few system calls, not one each,
        # and the server can start on it before the whole batch is made.
        if not self._burst:
            self._burst = True
            self._write_pending()
            return
        self._corked += len(data)
        if self._corked >= CORK_BYTES:
            self._write_pending()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._burst = False
        self._write_pending()

    def close(self, code: int | None = None, reason: str = "") -> None:
        if self._reported:
            return
        if not self._opened:
            self._open_task.cancel()
            return
        if self._proto.state is State.OPEN:
            try:
                self._proto.send_close(code, reason)
            except WebSocketException:
                self._proto.send_close(1000, "")
            self._write_pending()
        self._arm_close_timer()

    def abort(self) -> None:
        if not self._opened:
            self._open_task.cancel()
        self._abort()

    @property
    def buffered_amount(self) -> int:
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    # -- opening -------------------------------------------------------------

    async def _open(self) -> None:
        try:
            context = _ssl_context(self._uri.secure, self._options)
            await asyncio.wait_for(self._connect(context), self._options.open_timeout)
        except asyncio.CancelledError:
            self._abort()
        except Exception as exc:
            self._fail(exc)
            self._abort()

    def _fail(self, exc: BaseException) -> None:
        """Report why the opening failed, once, before the close report."""
        if not self._failed and not self._reported:
            self._failed = True
            self._listener.transport_error(self._explain(exc))

    async def _connect(self, context: ssl_module.SSLContext | None) -> None:
        await self._loop.create_connection(
            lambda: self,
            self._uri.host,
            self._uri.port,
            ssl=context,
            server_hostname=self._uri.host if context is not None else None,
        )
        request = self._proto.connect()
        for name, value in self._options.headers.items():
            request.headers[name] = value
        self._proto.send_request(request)
        self._write_pending()
        await self._handshake

    def _explain(self, exc: BaseException) -> BaseException:
        url = self._options.safe_url
        if isinstance(exc, TimeoutError | asyncio.TimeoutError):
            limit = self._options.open_timeout
            return TimeoutError(f"no websocket handshake with {url} within {limit:g} s")
        if isinstance(exc, InvalidStatus):
            status = exc.response.status_code
            return HandshakeError(f"{url} refused the websocket upgrade: HTTP {status}")
        if isinstance(exc, WebSocketException):
            return HandshakeError(f"websocket handshake with {url} failed: {exc}")
        return exc

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._burst = False
        proto = self._proto
        proto.receive_data(data)
        events = proto.events_received()
        self._write_pending()
        for event in events:
            if type(event) is Frame:
                self._on_frame(event)
            elif isinstance(event, Response):
                self._on_response()
        if proto.close_expected():
            self._arm_close_timer()

    def eof_received(self) -> None:
        self._proto.receive_eof()
        self._write_pending()

    def connection_lost(self, exc: Exception | None) -> None:
        self._proto.receive_eof()
        if self._close_timer is not None:
            self._close_timer.cancel()
        if not self._handshake.done():
            error = ConnectionError(
                f"{self._options.safe_url} closed the connection during the "
                "websocket handshake"
            )
            self._fail(error)
            self._handshake.set_exception(error)
        code = self._proto.close_code if self._proto.state is State.CLOSED else None
        reason = self._proto.close_reason or ""
        self._report_close(code or 1006, reason)

    # -- internals -----------------------------------------------------------

    def _on_response(self) -> None:
        if self._handshake.done():
            return
        if self._proto.handshake_exc is not None:
            self._fail(self._proto.handshake_exc)
            self._handshake.set_exception(self._proto.handshake_exc)
            return
        self._opened = True
        self._handshake.set_result(None)
        self._listener.transport_open()

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is _TEXT or opcode is _BINARY:
            if not frame.fin:
                self._fragments = [bytes(frame.data)]
                self._fragment_opcode = opcode
                return
            self._deliver(opcode, frame.data)
        elif opcode is _CONT and self._fragments is not None:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), None
                self._deliver(self._fragment_opcode, data)

    def _deliver(self, opcode: Opcode, data: Any) -> None:
        if opcode is _TEXT:
            try:
                text = bytes(data).decode()
            except UnicodeDecodeError:
                self._proto.fail(1007, "invalid UTF-8 in a text frame")
                self._write_pending()
                self._arm_close_timer()
                return
            self._listener.transport_message(text)
        else:
            self._listener.transport_message(bytes(data))

    def _write_pending(self) -> None:
        self._corked = 0
        transport = self._transport
        if transport is None:
            return
        chunks = self._proto.data_to_send()
        if not chunks:
            return
        if chunks[-1]:  # the common case: frames only, in one write
            transport.write(b"".join(chunks) if len(chunks) > 1 else chunks[0])
            return
        for chunk in chunks:
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()

    def _arm_close_timer(self) -> None:
        if self._close_timer is None:
            self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, self._abort)

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()  # connection_lost reports the close
        else:
            self._report_close(1006, "")

    def _report_close(self, code: int, reason: str) -> None:
        if not self._reported:
            self._reported = True
            self._listener.transport_close(code, reason)


def _ssl_context(secure: bool, options: ConnectOptions) -> ssl_module.SSLContext | None:
    """Verified TLS by default for wss; ``ssl=False`` disables checks, loudly."""
    if not secure:
        return None
    if isinstance(options.ssl, ssl_module.SSLContext):
        return options.ssl
    context = ssl_module.create_default_context()
    if verification_disabled(options):
        context.check_hostname = False
        context.verify_mode = ssl_module.CERT_NONE
    return context
