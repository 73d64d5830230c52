"""The websocket transport: websockets' sans-I/O ``ServerProtocol``, driven by
hand from an ``asyncio.Protocol``.

No task per frame: :meth:`WebSocketConnection.data_received` feeds the
protocol, hands every complete message to the :class:`SocketConnection`
synchronously, and writes whatever the protocol wants to send. Frames sent
while a batch of received data is processed are written with one
``transport.write``. Broadcast frames arrive already encoded
(:class:`~.pubsub.PreparedFrame`) and are framed once for every subscriber:
server frames are unmasked and no extension is negotiated (Phoenix's
websocket ``compress`` defaults to false), so the bytes are the same for all.
Frames sent from elsewhere (channel tasks, broadcasts) are corked until the
end of the current loop iteration, so a burst costs one write per connection.

Wire behaviour of Bandit that clients can observe (transcripts README):

- the upgrade answers ``101`` with ``cache-control`` like Phoenix, and no
  ``Sec-WebSocket-Protocol`` unless ``Server(subprotocols=...)`` (fact 13);
- a refused connect or an unsupported ``vsn`` answers ``403`` with an empty
  body;
- a client close frame is answered with ``1000`` and an empty reason, never
  echoed (fact 4), or ``1002`` for codes a client may not send;
- a text frame that is not UTF-8 closes with ``1007`` and no reason;
- unlike Bandit (no limit), a message larger than ``max_message_size``
  (default 8 MiB) closes with ``1009``: a test server should not let one
  frame take all memory;
- also unlike Bandit, more than ``max_write_buffer`` bytes waiting for a
  client that does not read closes with ``1008`` (policy violation), after
  a logged warning; the close frame waits behind the unread bytes, so a
  client that stopped reading is aborted ``close_timeout`` later.

Reading pauses while an asynchronous connect hook runs, and while a join
holds ``max_mailbox`` messages back (:mod:`.connection`): a flood waits in
the client's TCP buffers, not in ours.
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Literal, cast

from websockets.datastructures import Headers
from websockets.exceptions import ProtocolError
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event, State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from ..redact import SILENT_LOGGER, redact_json_text
from .connect import (
    Accepted,
    ConnectInfo,
    ConnectResult,
    decode_auth_token,
    fold_headers,
    parse_params,
)
from .connection import SocketConnection
from .pubsub import PreparedFrame
from .recorder import ConnectionRecord, RecordedFrame
from .wire import DEFAULT_VSN, negotiate_vsn, wire_for

if TYPE_CHECKING:
    from .server import Server

__all__ = ["WebSocketConnection"]

logger = logging.getLogger("phoenix_channels.server")

# Phoenix sets this on every response, the upgrade included.
CACHE_CONTROL = "max-age=0, private, must-revalidate"


class _PhoenixServerProtocol(ServerProtocol):
    """``ServerProtocol`` that answers a client close like Bandit does."""

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE and self.state is State.OPEN:
            code = _bandit_close_answer(frame.data)
            if code is not None:
                # Having sent ours first, the base class will not echo.
                self.send_close(code, "")
        super().recv_frame(frame)

    def fail(self, code: int, reason: str = "") -> None:
        # Bandit's close frames never carry a reason (1002, 1007, 1009...).
        if reason and self.state is State.OPEN:
            logger.info("! closing with %d: %s", code, reason)
        super().fail(code, "")

    def process_subprotocol(self, headers: Headers) -> Subprotocol | None:
        # phoenix.js puts its authToken in this header as standard base64,
        # whose '+' and '/' are not valid header tokens: websockets would
        # fail the handshake (400), Bandit does not look. Split leniently.
        offered = [
            Subprotocol(item.strip())
            for value in headers.get_all("Sec-WebSocket-Protocol")
            for item in value.split(",")
            if item.strip()
        ]
        return self.select_subprotocol(offered)


class WebSocketConnection(asyncio.Protocol):
    """One websocket connection, from the upgrade request to the TCP close.

    Attributes:
        server: the owning server.
        socket: the Phoenix socket, once the upgrade succeeded.
        record: the frame record, when the server records frames.
        info: what the connect hook saw, once the request arrived.
    """

    def __init__(self, server: Server, transport: asyncio.Transport) -> None:
        self.server = server
        self.transport = transport
        self.socket: SocketConnection | None = None
        self.record: ConnectionRecord | None = None
        self.info: ConnectInfo | None = None
        self._ws = _PhoenixServerProtocol(
            logger=SILENT_LOGGER,  # it would log request lines: query tokens
            max_size=server.max_message_size,
            select_subprotocol=_subprotocol_selector(server.subprotocols),
        )
        self._out: list[bytes] = []
        self._eof = False
        self._eof_written = False
        self._batching = False
        self._lost = False
        self._pending: list[bytes] | None = None  # data during an async connect
        self._deferred: list[Event] = []
        self._fragments: list[bytes] = []
        self._fragment_opcode = Opcode.TEXT
        self._close_timer: asyncio.TimerHandle | None = None
        self._handshake: asyncio.Task[None] | None = None
        self._close_recorded = False
        self._flush_scheduled = False
        self._loop = asyncio.get_running_loop()
        self._debug = logger.isEnabledFor(logging.DEBUG)
        self._last_data = self._loop.time()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._writing_paused = False
        self._reading_paused = False

    # --- views for tests ------------------------------------------------------

    @property
    def frames(self) -> list[RecordedFrame]:
        """Recorded frames of this connection (empty when not recording)."""
        return self.record.frames if self.record is not None else []

    @property
    def params(self) -> dict[str, str]:
        """The connect params."""
        return dict(self.info.params) if self.info is not None else {}

    @property
    def topics(self) -> list[str]:
        """The topics joined right now."""
        return list(self.socket.channels) if self.socket is not None else []

    @property
    def is_open(self) -> bool:
        """Whether the websocket is open (handshake done, no close yet)."""
        return self._ws.state is State.OPEN and not self._lost

    # --- asyncio.Protocol -----------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._last_data = self._loop.time()
        if self._pending is not None:
            self._pending.append(data)
            return
        self._ws.receive_data(data)
        self._process(self._ws.events_received())

    def eof_received(self) -> bool | None:
        self._ws.receive_eof()
        self._collect()
        self._flush()
        return None  # let the transport close

    def pause_writing(self) -> None:
        # The transport's buffer passed its high-water mark: from now on
        # every write checks max_write_buffer.
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._debug:
            logger.debug("= closed %r", self)
        if self._close_timer is not None:
            self._close_timer.cancel()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self._handshake is not None:
            self._handshake.cancel()
        if self.socket is not None:
            self.socket.transport_closed()
        self.server._connection_lost(self)

    # --- inbound --------------------------------------------------------------

    def _process(self, events: Sequence[Event]) -> None:
        self._batching = True
        try:
            for index, event in enumerate(events):
                if isinstance(event, Request):
                    self._on_request(event)
                    if self._pending is not None:  # waiting for an async hook
                        self._deferred = list(events[index + 1 :])
                        break
                elif isinstance(event, Frame):
                    self._on_frame(event)
        finally:
            self._batching = False
            self._collect()
            self._flush()

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._on_message(opcode, bytes(frame.data))
            else:
                self._fragment_opcode = opcode
                self._fragments = [bytes(frame.data)]
        elif opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), []
                self._on_message(self._fragment_opcode, data)
        elif opcode is Opcode.CLOSE and self.record is not None:
            received = self._ws.close_rcvd
            if received is not None:
                self.record.add("in", "close", received.reason, received.code)
            self._record_close_sent()  # our answer, if this close started it

    def _on_message(self, opcode: Opcode, data: bytes) -> None:
        socket = self.socket
        if socket is None or self._ws.state is not State.OPEN:
            return
        if opcode is Opcode.BINARY:
            if self._debug:
                logger.debug("< %s", _preview(data))
            if self.record is not None:
                self.record.add("in", "binary", data)
            socket.receive(data)
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            if self.record is not None:
                self.record.add("in", "text", data)
            # Bandit validates text frames itself: 1007, no reason (fact 4).
            self._ws.fail(CloseCode.INVALID_DATA, "")
            self._record_close_sent()
            return
        if self.record is not None:
            self.record.add("in", "text", text)
        if self._debug:
            logger.debug("< %s", _preview(text))
        socket.receive(text)

    # --- handshake ------------------------------------------------------------

    def _on_request(self, request: Request) -> None:
        if self._ws.eof_sent:
            # The bytes that came with the request were not websocket frames:
            # websockets has failed the connection already (EOF sent), and
            # there is nobody left to answer (a client must not send before
            # the 101 anyway, RFC 6455 §4.1).
            logger.info("! garbage after the upgrade request: closing")
            return
        params = parse_params(request.path)
        headers = fold_headers(request.headers.raw_items())
        vsn = negotiate_vsn(params.get("vsn"))
        self.info = ConnectInfo(
            params=params,
            headers=headers,
            path=request.path,
            transport="websocket",
            peer=self.transport.get_extra_info("peername"),
            auth_token=decode_auth_token(headers.get("sec-websocket-protocol")),
            vsn=vsn or DEFAULT_VSN,
        )
        if vsn is None:
            # Phoenix refuses a vsn no serializer matches, like a refused connect.
            logger.info("! unsupported vsn %r: 403", params.get("vsn"))
            self._ws.send_response(_forbidden())
            return
        try:
            result = self.server.connect_hook(self.info)
        except Exception:
            logger.exception("! connect hook raised")
            self._ws.send_response(_plain_response(500, "Internal Server Error"))
            return
        if inspect.isawaitable(result):
            self._pending = []
            self.pause_reading()  # what arrives meanwhile waits in TCP buffers
            self._handshake = self.server.spawn(self._await_hook(request, result))
        else:
            self._finish_handshake(request, result)

    async def _await_hook(
        self, request: Request, pending: Awaitable[ConnectResult]
    ) -> None:
        try:
            result = await pending
        except Exception:
            logger.exception("! connect hook raised")
            self._ws.send_response(_plain_response(500, "Internal Server Error"))
        else:
            self._finish_handshake(request, result)
        self._handshake = None
        self.resume_reading()
        deferred, self._deferred = self._deferred, []
        data, self._pending = self._pending or [], None
        self._process(deferred)
        for chunk in data:
            if self._lost:
                break
            self.data_received(chunk)

    def _finish_handshake(self, request: Request, result: object) -> None:
        if not isinstance(result, Accepted):
            self._ws.send_response(_forbidden())
            return
        response = self._ws.accept(request)
        if response.status_code != 101:
            # Phoenix answers a failed upgrade 400 with the reason as body.
            logger.info("! websocket handshake failed: %s", self._ws.handshake_exc)
            body = bytes(response.body)
            failed = _plain_response(400, "Bad Request", body)
            self._ws.send_response(failed)
            return
        response.headers["cache-control"] = CACHE_CONTROL
        self._ws.send_response(response)
        info = cast(ConnectInfo, self.info)
        recorder = self.server.recorder
        if recorder is not None:
            self.record = recorder.open(request.path)
        self.socket = SocketConnection(
            self.server, self, wire_for(info.vsn), info, result.assigns, result.id
        )
        self.server._connection_opened(self)
        if self.server.idle_timeout is not None:
            self._watch_idle()
        if self._debug:
            logger.debug("= open %s (vsn %s)", _redact(request.path), info.vsn)

    def _watch_idle(self) -> None:
        # One timer per connection, re-armed lazily: a frame only stores the
        # time it arrived (PROTOCOL §9: the server idle timeout is 60 s).
        timeout = self.server.idle_timeout
        if timeout is None or self._lost or self._ws.state is not State.OPEN:
            return
        idle = self._loop.time() - self._last_data
        if idle >= timeout:
            logger.info("! no data for %.1f s, closing with 1002", idle)
            self.close(CloseCode.PROTOCOL_ERROR)  # what Bandit sends on timeout
            return
        self._idle_timer = self._loop.call_later(timeout - idle, self._watch_idle)

    # --- outbound (Transport) -------------------------------------------------

    def send_frame(self, data: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) frame."""
        if self._ws.state is not State.OPEN:
            return
        kind: Literal["text", "binary"]
        if isinstance(data, str):
            self._ws.send_text(data.encode("utf-8"))
            kind = "text"
        else:
            self._ws.send_binary(data)
            kind = "binary"
        if self.record is not None:
            self.record.add("out", kind, data)
        if self._debug:
            logger.debug("> %s", _preview(data))
        self._collect()
        if not self._batching:
            self._cork()

    def send_prepared(self, frame: PreparedFrame) -> None:
        """Send a broadcast frame, framing it once for all connections."""
        if self._ws.state is not State.OPEN:
            return
        wire = frame.wire
        if wire is None:
            data = frame.data
            if isinstance(data, str):
                wire = Frame(Opcode.TEXT, data.encode("utf-8")).serialize(mask=False)
            else:
                wire = Frame(Opcode.BINARY, data).serialize(mask=False)
            frame.wire = wire
        if self.record is not None:
            kind: Literal["text", "binary"] = (
                "text" if isinstance(frame.data, str) else "binary"
            )
            self.record.add("out", kind, frame.data)
        if self._debug:
            logger.debug("> %s", _preview(frame.data))
        self._collect()  # keep order with anything the protocol queued
        self._out.append(wire)
        if not self._batching:
            self._cork()

    def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake (the client has ``close_timeout``)."""
        if self._ws.state is State.OPEN:
            self._ws.send_close(code, reason)
            self._record_close_sent()
        elif self._ws.state is State.CONNECTING:
            self.transport.close()
            return
        self._collect()
        if not self._batching:
            self._flush()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.transport.abort()

    def pause_reading(self) -> None:
        """Stop reading from the client until :meth:`resume_reading`."""
        if not self._reading_paused and not self._lost:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read from the client again."""
        if self._reading_paused and not self._lost:
            self._reading_paused = False
            self.transport.resume_reading()

    def _record_close_sent(self) -> None:
        sent = self._ws.close_sent
        if self.record is not None and sent is not None and not self._close_recorded:
            self._close_recorded = True
            self.record.add("out", "close", sent.reason, sent.code)

    # --- writing --------------------------------------------------------------

    def _collect(self) -> None:
        for chunk in self._ws.data_to_send():
            if chunk:
                self._out.append(chunk)
            else:
                self._eof = True

    def _cork(self) -> None:
        # Frames sent outside a receive batch (channel tasks, broadcasts) are
        # written at the end of this loop iteration: a burst of broadcasts
        # then costs one write per connection, not one per frame.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._uncork)

    def _uncork(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        out = self._out
        if out:
            self._out = []
            if not self.transport.is_closing():
                self.transport.write(out[0] if len(out) == 1 else b"".join(out))
                if self._writing_paused:
                    self._check_write_buffer()
        if self._eof and not self._eof_written:
            self._eof_written = True
            if self.transport.can_write_eof():
                self.transport.write_eof()
            else:
                self.transport.close()
        if (
            self._eof_written or self._ws.close_expected()
        ) and self._close_timer is None:
            if not self._lost:
                self._close_timer = self._loop.call_later(
                    self.server.close_timeout, self.transport.abort
                )

    def _check_write_buffer(self) -> None:
        limit = self.server.max_write_buffer
        if limit is None or self._ws.state is not State.OPEN:
            return
        size = self.transport.get_write_buffer_size()
        if size > limit:
            logger.warning(
                "! client does not read: %d bytes wait to be sent "
                "(max_write_buffer %d), closing with 1008",
                size,
                limit,
            )
            self.close(CloseCode.POLICY_VIOLATION)

    def __repr__(self) -> str:
        path = self.info.path if self.info is not None else "?"
        return f"<WebSocketConnection {_redact(path)} state={self._ws.state.name}>"


def _bandit_close_answer(data: bytes | bytearray | memoryview) -> int | None:
    """The close code Bandit answers a client close frame with.

    Bandit never echoes (transcripts fact 4, ``4001 "bye"`` gets ``1000 ""``):
    it answers 1000, except 1002 for codes a client may not send (below 1000,
    1004-1006, 1012-2999). ``None``: the frame is malformed and websockets
    fails the connection with 1002 itself.
    """
    if len(data) == 0:
        return CloseCode.NORMAL_CLOSURE
    try:
        code = Close.parse(data).code
    except ProtocolError:
        return None
    if code < 1000 or 1004 <= code <= 1006 or 1012 <= code <= 2999:
        return CloseCode.PROTOCOL_ERROR
    return CloseCode.NORMAL_CLOSURE


def _subprotocol_selector(
    names: Sequence[str],
) -> Callable[[ServerProtocol, Sequence[Subprotocol]], Subprotocol | None]:
    # A plain function: websockets binds it to the protocol as a method.
    def select(
        protocol: ServerProtocol, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        # Unlike websockets' default, never fail the handshake over this.
        for name in names:
            if name in offered:
                return Subprotocol(name)
        return None

    return select


def _preview(data: str | bytes, limit: int = 200) -> str:
    text = redact_json_text(data) if isinstance(data, str) else data.hex()
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _redact(target: str) -> str:
    """The request target with query values hidden (tokens live there)."""
    path, _, query = target.partition("?")
    if not query:
        return path
    items = [
        item if item.startswith("vsn=") else item.partition("=")[0] + "=..."
        for item in query.split("&")
    ]
    return path + "?" + "&".join(items)


def _forbidden() -> Response:
    # Exactly Phoenix's refusal (transcript v2_token_bad_websocket).
    return _plain_response(403, "Forbidden")


def _plain_response(status: int, reason: str, body: bytes = b"") -> Response:
    headers = Headers(
        [
            ("date", email.utils.formatdate(usegmt=True)),
            ("content-length", str(len(body))),
            ("vary", "accept-encoding"),
            ("cache-control", CACHE_CONTROL),
        ]
    )
    return Response(status, reason, headers, body)
