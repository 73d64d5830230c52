"""The long-poll transport: ``<mount>/longpoll`` as Phoenix 1.7.24 serves it.

A session is one :class:`~.connection.SocketConnection` whose outbound frames
wait in a queue until the client polls. Everything Phoenix-specific (joins,
channels, pubsub, presence, heartbeats) is the websocket's code; only the
HTTP framing lives here. The genuine exchanges are the ``lp_*`` transcripts
(README fact 10); every status is HTTP 200 with the real one in the body:

- ``GET`` without a token naming a live session connects: the connect hook
  sees the query params (minus a stale session token of ours) and the
  ``X-Phoenix-AuthToken`` header as ``auth_token``; refused (or an
  unsupported ``vsn``) gives ``{"status":403}``, accepted a new session and
  ``{"messages":[],"status":410,"token":T}``. A garbage or expired token is
  such a fresh connect too, as in Phoenix.
- ``GET`` with a live token (the ``token`` query param, or the
  ``X-Phoenix-Longpoll-Token`` header of phoenix.js 1.9) answers the queued
  frames at once, ``{"messages":[...],"status":200,"token":T}``, or holds
  the request until a frame is queued or the window (``longpoll_window``,
  Phoenix's ``window_ms`` 10 s) passes: ``{"messages":[],"status":204,...}``.
  Text frames are JSON strings; a binary frame is its raw bytes in a JSON
  string, and bytes that are not UTF-8 make the poll fail with HTTP 500,
  losing every frame it carried, as Jason makes Phoenix do.
- ``POST`` with a live token: ``application/x-ndjson`` is one frame a line
  (``[`` starts a text frame, anything else is base64 of a binary frame; a
  line that is not base64 fails the whole request with HTTP 500 before any
  frame is handled, which is why vsn 1.0.0 frames must be POSTed one per
  request as another content type: that body is one text frame). Frames are
  handled one at a time, each after the previous one was handled, joins
  included, and ``{"status":200}`` answers. A frame the serializer cannot
  decode kills the session: ``{"status":408}``. Phoenix answers the same
  status only after its window, because its crashed session never
  acknowledges; here it comes at once, since nothing can arrive in between.
  No live token: ``{"status":410}``.
- ``OPTIONS`` answers 200 with CORS headers; other methods 400, empty body.

Sessions end after 1.5 windows without a poll (Phoenix checks every 1.5
windows, so it takes 1.5 to 3 there), when the socket closes itself
(undecodable frame), on :meth:`Server.disconnect`, on :meth:`Server.stop`, or
when more than ``longpoll_max_queue`` frames wait for a poll (Phoenix has no
limit; a client that stopped polling must not take all memory). Ending a
session ends its channels as a closed websocket does (presence leaves); a
poll pending at that moment answers 204 at once (Phoenix lets it wait out
its window), and the next one gets a new session.

Deviations, all for robustness: a POST body over ``max_message_size`` gets
HTTP 413 from the HTTP layer (Phoenix's ``read_body`` limit, 8 MB, raises
``Plug.BadRequestError``: HTTP 400); a dead token is recognised at once
(Phoenix waits ``pubsub_timeout_ms``, 2 s, for a session that never
answers); only the first 100 lines of an ndjson body are read (phoenix.js
sends at most 100), the rest are dropped with a warning.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import inspect
import logging
import re
import secrets
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl, urlsplit

from .connect import Accepted, ConnectInfo
from .connection import SocketConnection
from .http import HttpRequest, HttpResponse
from .pubsub import PreparedFrame
from .recorder import ConnectionRecord, RecordedFrame
from .websocket import CACHE_CONTROL
from .wire import DEFAULT_VSN, negotiate_vsn, wire_for

if TYPE_CHECKING:
    from .server import Server

__all__ = [
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_WINDOW",
    "MAX_LINES",
    "LongPollEndpoint",
    "LongPollSession",
]

logger = logging.getLogger("phoenix_channels.server")

#: Seconds a poll is held (Phoenix's ``window_ms`` default, 10 000).
DEFAULT_WINDOW = 10.0
#: Frames that may wait for a poll before the session is dropped.
DEFAULT_MAX_QUEUE = 10_000
#: Lines of an ndjson POST that are read (phoenix.js batches at most 100).
MAX_LINES = 100
#: A session ends after this many windows without a poll (Phoenix: 1.5).
EXPIRY_WINDOWS = 1.5

NDJSON = "application/x-ndjson"
JSON_TYPE = "application/json; charset=utf-8"
TOKEN_PARAM = "token"
TOKEN_HEADER = "x-phoenix-longpoll-token"
AUTH_TOKEN_HEADER = "x-phoenix-authtoken"

_LINE_BREAK = re.compile(rb"\r\n|\n")
_Frame = tuple[Literal["text", "binary", "invalid"], str | bytes]


class LongPollSession:
    """One long-poll session: a Phoenix socket whose frames wait for polls.

    It is the :class:`~.connection.Transport` of its socket.

    Attributes:
        token: the session token the client sends back.
        info: what the connect hook saw.
        socket: the Phoenix socket of the session.
        record: the frame record, when the server records frames.
        closed: set as soon as the session is ending; it no longer resumes.
    """

    def __init__(
        self,
        endpoint: LongPollEndpoint,
        token: str,
        info: ConnectInfo,
        accepted: Accepted,
    ) -> None:
        server = endpoint.server
        self.token = token
        self.info = info
        self.closed = False
        self.record: ConnectionRecord | None = None
        if server.recorder is not None:
            self.record = server.recorder.open(info.path, "longpoll")
        self.socket = SocketConnection(
            server, self, wire_for(info.vsn), info, accepted.assigns, accepted.id
        )
        self._endpoint = endpoint
        self._window = server.longpoll_window
        self._max_queue = server.longpoll_max_queue
        self._queue: list[str | bytes] = []
        self._waiter: asyncio.Future[bool] | None = None
        self._wake_scheduled = False
        self._ended = False
        self._loop = asyncio.get_running_loop()
        self._last_poll = self._loop.time()
        self._expiry = self._window * EXPIRY_WINDOWS
        self._timer = self._loop.call_later(self._expiry, self._check_expiry)

    # --- views for tests ------------------------------------------------------

    @property
    def frames(self) -> list[RecordedFrame]:
        """Recorded frames of this session (empty when not recording)."""
        return self.record.frames if self.record is not None else []

    @property
    def params(self) -> dict[str, str]:
        """The connect params."""
        return dict(self.info.params)

    @property
    def topics(self) -> list[str]:
        """The topics joined right now."""
        return list(self.socket.channels)

    @property
    def queued(self) -> int:
        """How many frames wait for a poll."""
        return len(self._queue)

    @property
    def is_polling(self) -> bool:
        """Whether a poll is being held."""
        return self._waiter is not None and not self._waiter.done()

    # --- Transport (what the socket writes to) --------------------------------

    def send_frame(self, data: str | bytes) -> None:
        """Queue a text (``str``) or binary (``bytes``) frame for the next poll."""
        if self.closed:
            return
        if len(self._queue) >= self._max_queue:
            logger.warning(
                "! long-poll session has %d frames waiting for a poll "
                "(longpoll_max_queue): dropping the session",
                len(self._queue),
            )
            self.close(1011)
            return
        self._queue.append(data)
        if self.record is not None:
            kind: Literal["text", "binary"] = (
                "text" if isinstance(data, str) else "binary"
            )
            self.record.add("out", kind, data)
        if self._waiter is not None and not self._wake_scheduled:
            # Wake the poll at the end of this loop turn, so that frames
            # sent together go out together (Phoenix's :now_available).
            self._wake_scheduled = True
            self._loop.call_soon(self._wake)

    def send_prepared(self, frame: PreparedFrame) -> None:
        """Queue a broadcast frame."""
        self.send_frame(frame.data)

    def pause_reading(self) -> None:
        """Nothing to pause: a POST hands frames over one at a time."""

    def resume_reading(self) -> None:
        """Nothing to resume (see :meth:`pause_reading`)."""

    def close(self, code: int, reason: str = "") -> None:
        """End the session at the end of this loop turn (the socket closed)."""
        if self.closed:
            return
        self.closed = True
        if self.record is not None:
            self.record.add("out", "close", reason, code)
        self._loop.call_soon(self.end, f"closed with {code}")

    # --- requests -------------------------------------------------------------

    async def poll(self) -> HttpResponse:
        """Answer a GET: the queued frames now, or when some come, or 204."""
        self._last_poll = self._loop.time()
        if not self._queue:
            previous = self._waiter
            if previous is not None and not previous.done():
                previous.set_result(False)  # a newer poll takes over
            waiter = self._waiter = self._loop.create_future()
            available = False
            try:
                available = await asyncio.wait_for(waiter, self._window)
            except asyncio.TimeoutError:
                pass
            finally:
                if self._waiter is waiter:
                    self._waiter = None
                self._last_poll = self._loop.time()
            if self.closed or not available or not self._queue:
                return _messages_response(204, [], self.token)
        messages, self._queue = self._queue, []
        return _messages_response(200, messages, self.token)

    async def dispatch(self, frames: list[_Frame]) -> int:
        """Handle POSTed frames in order; the status to answer (200 or 408)."""
        socket = self.socket
        for kind, data in frames:
            if self.closed:
                return 408
            if self.record is not None:
                self.record.add("in", "binary" if kind == "binary" else "text", data)
            if kind == "invalid":
                socket.fail()  # Jason rejects the bytes: the socket crashes
            else:
                socket.receive(data)
            if socket.is_busy:
                try:
                    await asyncio.wait_for(socket.settled(), self._window)
                except asyncio.TimeoutError:
                    return 408  # Phoenix stops dispatching the batch too
            if self.closed:
                return 408  # the session died: Phoenix never acknowledges
            # Phoenix acknowledges each frame through a PubSub round trip, so
            # a channel that answers at once has answered before the next
            # frame is handled (lp_v2_handshake_batch_poll: the heartbeat
            # sent last is answered last).
            await asyncio.sleep(0)
        return 200

    # --- ending ---------------------------------------------------------------

    def end(self, why: str) -> None:
        """End the session now: its channels end as on a closed websocket."""
        if self._ended:
            return
        self._ended = self.closed = True
        logger.debug("= long-poll session ended (%s)", why)
        self._endpoint._forget(self)
        self._timer.cancel()
        self._queue.clear()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(False)
        self.socket.transport_closed()

    def _wake(self) -> None:
        self._wake_scheduled = False
        waiter = self._waiter
        if waiter is not None and not waiter.done() and self._queue:
            waiter.set_result(True)

    def _check_expiry(self) -> None:
        if self._ended:
            return
        if self.is_polling:
            self._timer = self._loop.call_later(self._expiry, self._check_expiry)
            return
        idle = self._loop.time() - self._last_poll
        if idle >= self._expiry:
            logger.info("- long-poll session expired: no poll for %.1f s", idle)
            self.end("expired")
        else:
            delay = self._expiry - idle
            self._timer = self._loop.call_later(delay, self._check_expiry)

    def __repr__(self) -> str:
        return f"<LongPollSession queued={self.queued} closed={self.closed}>"


class LongPollEndpoint:
    """The HTTP handler of ``<mount>/longpoll`` and the sessions it made."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.sessions: dict[str, LongPollSession] = {}
        self._secret = secrets.token_bytes(32)

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Serve one request (the :data:`~.http.HttpHandler`)."""
        if request.method == "GET":
            session = self._resume(request)
            if session is None:
                return await self._connect(request)
            return await session.poll()
        if request.method == "POST":
            session = self._resume(request)
            if session is None:
                return _status_response(410)
            frames = _read_frames(request)
            if frames is None:
                return HttpResponse(500)  # Base.decode64! raised
            return _status_response(await session.dispatch(frames))
        if request.method == "OPTIONS":
            return _preflight(request)
        return HttpResponse(400)

    def close_all(self) -> None:
        """End every session (server stop)."""
        for session in list(self.sessions.values()):
            session.end("server stopping")

    # --- sessions -------------------------------------------------------------

    def _resume(self, request: HttpRequest) -> LongPollSession | None:
        candidates = request.params.get(TOKEN_PARAM), request.headers.get(TOKEN_HEADER)
        for token in candidates:
            session = self.sessions.get(token) if token else None
            if session is not None and not session.closed:
                return session
        return None

    async def _connect(self, request: HttpRequest) -> HttpResponse:
        params = self._connect_params(request.target)
        vsn = negotiate_vsn(params.get("vsn"))
        info = ConnectInfo(
            params=params,
            headers=request.headers,
            path=request.target,
            transport="longpoll",
            peer=request.peer,
            auth_token=request.headers.get(AUTH_TOKEN_HEADER),
            vsn=vsn or DEFAULT_VSN,
        )
        if vsn is None:
            logger.info("! unsupported vsn %r: 403", params.get("vsn"))
            return _status_response(403)
        try:
            result = self.server.connect_hook(info)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            logger.exception("! connect hook raised")
            return HttpResponse(500)
        if not isinstance(result, Accepted):
            return _status_response(403)
        if self.server._stopping:
            return HttpResponse(503)
        token = self._new_token()
        self.sessions[token] = LongPollSession(self, token, info, result)
        logger.debug("= long-poll session opened (vsn %s)", info.vsn)
        return _messages_response(410, [], token)

    def _forget(self, session: LongPollSession) -> None:
        if self.sessions.get(session.token) is session:
            del self.sessions[session.token]

    # --- tokens ---------------------------------------------------------------

    def _new_token(self) -> str:
        sid = secrets.token_urlsafe(24)
        return f"{sid}.{self._sign(sid)}"

    def _sign(self, sid: str) -> str:
        digest = hmac.digest(self._secret, sid.encode(), "sha256")[:18]
        return base64.urlsafe_b64encode(digest).decode("ascii")

    def _is_ours(self, token: str) -> bool:
        """Whether ``token`` is a session token this server made (live or not)."""
        sid, dot, signature = token.partition(".")
        return bool(dot) and hmac.compare_digest(self._sign(sid), signature)

    def _connect_params(self, target: str) -> dict[str, str]:
        # Phoenix passes every query param to connect/3, its own stale session
        # token included; ours is left out, so that a connect param named
        # "token" (the client puts the session token last) is seen instead.
        pairs = parse_qsl(urlsplit(target).query, keep_blank_values=True)
        return {k: v for k, v in pairs if not (k == TOKEN_PARAM and self._is_ours(v))}


def _read_frames(request: HttpRequest) -> list[_Frame] | None:
    """The frames of a POST body; ``None`` when a line is not base64."""
    body = request.body
    if request.headers.get("content-type") != NDJSON:
        return [_text(body)]  # the whole body is one text frame
    lines = _LINE_BREAK.split(body)
    if len(lines) > MAX_LINES:
        logger.warning(
            "! long-poll POST of %d lines: only the first %d are read",
            len(lines),
            MAX_LINES,
        )
        lines = lines[:MAX_LINES]
    frames: list[_Frame] = []
    for line in lines:
        if line.startswith(b"["):
            frames.append(_text(line))
            continue
        try:
            frames.append(("binary", base64.b64decode(line, validate=True)))
        except binascii.Error:
            logger.info("! long-poll POST line is not base64: 500")
            return None
    return frames


def _text(data: bytes) -> _Frame:
    try:
        return ("text", data.decode("utf-8"))
    except UnicodeDecodeError:
        return ("invalid", data)


# --- responses ----------------------------------------------------------------

_ESCAPES = {chr(c): f"\\u{c:04X}" for c in range(0x20)}  # Jason: upper-case hex
_ESCAPES.update({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"})
_ESCAPES.update({'"': '\\"', "\\": "\\\\"})
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')


def _json_string(text: str) -> str:
    """``text`` as a JSON string exactly as Jason writes it (raw UTF-8)."""
    return '"' + _NEEDS_ESCAPE.sub(lambda m: _ESCAPES[m.group()], text) + '"'


def _messages_response(
    status: int, messages: list[str | bytes], token: str
) -> HttpResponse:
    try:
        items = ",".join(
            _json_string(m if isinstance(m, str) else m.decode("utf-8"))
            for m in messages
        )
        body = (
            f'{{"messages":[{items}],"status":{status},"token":{_json_string(token)}}}'
        ).encode()
    except UnicodeError:
        logger.warning(
            "! a long-poll frame is not valid UTF-8: the poll fails with 500 "
            "and its %d frames are lost, as in Phoenix",
            len(messages),
        )
        return HttpResponse(500)
    return _json_response(body)


def _status_response(status: int) -> HttpResponse:
    return _json_response(b'{"status":%d}' % status)


def _json_response(body: bytes) -> HttpResponse:
    headers = [("content-type", JSON_TYPE), ("cache-control", CACHE_CONTROL)]
    return HttpResponse(200, headers, body)


def _preflight(request: HttpRequest) -> HttpResponse:
    headers = [
        ("access-control-allow-origin", "*"),
        (
            "access-control-allow-headers",
            request.headers.get("access-control-request-headers", ""),
        ),
        ("access-control-allow-methods", "get, post, options"),
        ("access-control-max-age", "3600"),
        ("cache-control", CACHE_CONTROL),
    ]
    return HttpResponse(200, headers)
