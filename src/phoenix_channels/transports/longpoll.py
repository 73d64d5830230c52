"""The long-poll transport on httpx (PROTOCOL §8, transcripts ``lp_*``).

It shows the Socket the same face as the websocket transport. The cycle:

- the first ``GET <endpoint>/longpoll?...`` carries no session token; the
  server answers ``{"status": 410, "token": T}``: the transport is open;
- each later request carries ``token=T`` (query, last, as phoenix.js 1.8
  does, which every server version reads; plus the 1.9 header);
- a ``GET`` waits up to the server's window for ``{"status": 200,
  "messages": [...]}`` or ``{"status": 204}``, and polls again at once;
- frames sent in the same loop tick are POSTed together as ndjson, at most
  100 a request, one batch in flight at a time (vsn 1.0.0 frames go one per
  request as ``application/json``: an ndjson line not starting with ``[`` is
  read as base64 binary by Phoenix, transcript ``lp_v1_handshake_batch_poll``).

The status that counts is the JSON ``status`` field; HTTP is always 200.
``403`` closes with 1008, ``410`` once a token is known with 3410 (session
gone), anything unreadable or ``500`` with 1011, a request timeout with
1005. The Socket's reconnect makes a fresh transport each time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl as ssl_module
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from ..errors import PhoenixError
from ..message import AUTH_TOKEN_PREFIX
from ..redact import redact_url
from .base import ConnectOptions, Frame, TransportListener, verification_disabled

__all__ = ["LongPollError", "LongPollTransport", "poll_endpoint"]

MAX_BATCH = 100
#: Seconds a poll may take: twice the server's 10 s window, as phoenix.js.
DEFAULT_POLL_TIMEOUT = 20.0


class _RedactUrls(logging.Filter):
    """httpx logs every request URL at INFO; ours carry tokens in the query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(a, httpx.URL) for a in record.args
        ):
            record.args = tuple(
                redact_url(str(a)) if isinstance(a, httpx.URL) else a
                for a in record.args
            )
        return True


_HTTPX_FILTER = _RedactUrls()


class LongPollError(PhoenixError):
    """The long-poll server answered something that ends the session."""


def poll_endpoint(url: str) -> str:
    """``ws(s)://.../websocket?q`` -> ``http(s)://.../longpoll?q``."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    path = parts.path
    if path.endswith("/websocket"):
        path = path[: -len("/websocket")] + "/longpoll"
    return urlunsplit(parts._replace(scheme=scheme, path=path))


class LongPollTransport:
    name = "LongPoll"
    skip_heartbeat = True

    def __init__(self, options: ConnectOptions, listener: TransportListener) -> None:
        self._options = options
        self._listener = listener
        self._endpoint = poll_endpoint(options.url)
        self._safe_endpoint = poll_endpoint(options.safe_url)
        self._poll_timeout = float(
            options.extra.get("poll_timeout", DEFAULT_POLL_TIMEOUT)  # type: ignore[arg-type]
        )
        self._ndjson = options.extra.get("vsn", "2.0.0") != "1.0.0"
        # X-Phoenix-AuthToken goes on polls only, as phoenix.js sends it (§8.3).
        self._poll_headers = {"Accept": "application/json"}
        auth_token = _auth_token(options.protocols)
        if auth_token is not None:
            self._poll_headers["X-Phoenix-AuthToken"] = auth_token
        self._client = httpx.AsyncClient(
            headers=dict(options.headers),
            verify=_verify(options),
            transport=options.extra.get("http_transport"),  # type: ignore[arg-type]
        )
        httpx_logger = logging.getLogger("httpx")
        if _HTTPX_FILTER not in httpx_logger.filters:
            httpx_logger.addFilter(_HTTPX_FILTER)
        self._loop = asyncio.get_running_loop()
        self._token: str | None = None
        self._state = "connecting"
        self._batch: list[str] | None = None
        self._backlog: list[str] = []
        self._sending = False
        self._unsent = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._spawn(self._poll_loop())

    # -- Transport interface -----------------------------------------------

    def send(self, data: Frame) -> None:
        if self._state != "open":
            return
        line = data if isinstance(data, str) else base64.b64encode(data).decode()
        self._unsent += 1
        if self._batch is not None:
            self._batch.append(line)
        elif self._sending:
            self._backlog.append(line)
        else:
            self._batch = [line]
            self._loop.call_soon(self._send_batch)

    def close(self, code: int | None = None, reason: str = "") -> None:
        self._finish(1005 if code is None else code, reason)

    def abort(self) -> None:
        self._finish(1006, "")

    @property
    def buffered_amount(self) -> int:
        return self._unsent

    # -- polling -------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while self._state in ("connecting", "open"):
            timeout = (
                self._options.open_timeout
                if self._state == "connecting"
                else self._poll_timeout
            )
            try:
                response = await self._client.get(
                    self._url(),
                    headers=self._with_token(self._poll_headers),
                    timeout=timeout,
                )
                body = _json_body(response)
            except httpx.TimeoutException:
                self._fail(1005, "timeout", TimeoutError(self._timeout_text(timeout)))
                return
            except httpx.HTTPError as exc:
                self._fail(1011, "internal server error", self._network_error(exc))
                return
            if not self._on_poll_response(body):
                return

    def _on_poll_response(self, body: Any) -> bool:
        """Act on one poll answer; False when the transport is done."""
        status = body.get("status", 0) if isinstance(body, dict) else 0
        if status == 410 and self._token is not None:
            self._fail(
                3410, "session_gone", LongPollError("long-poll session gone (410)")
            )
            return False
        if isinstance(body, dict) and isinstance(body.get("token"), str):
            self._token = body["token"]
        if self._state == "connecting" and status not in (410, 403):
            self._fail(1011, "no handshake", LongPollError(
                f"{self._safe_endpoint} answered the long-poll handshake with "
                f"status {status or 'none'} instead of 410"))  # fmt: skip
            return False
        if status == 200:
            for message in body.get("messages") or ():
                if self._state != "open":
                    return False
                self._deliver(message)
            return True
        if status == 204:
            return True
        if status == 410:
            if self._token is None:
                self._fail(
                    1011, "no session token", LongPollError("410 without a token")
                )
                return False
            self._state = "open"
            self._listener.transport_open()
            return True
        if status == 403:
            self._fail(
                1008,
                "forbidden",
                LongPollError(
                    f"{self._safe_endpoint} refused the connection (status 403)"
                ),
            )
            return False
        detail = "unreadable response" if status == 0 else f"status {status}"
        self._fail(
            1011,
            "internal server error",
            LongPollError(f"long-poll {detail} from {self._safe_endpoint}"),
        )
        return False

    def _deliver(self, message: Any) -> None:
        if not isinstance(message, str):
            self._options.logger.warning("! long-poll message is not a string: dropped")
            return
        # Binary frames arrive as their raw bytes in a JSON string (transcript
        # lp_v2_binary_frames); text frames are JSON, which starts with "[" or "{".
        if message[:1] in ("[", "{"):
            self._listener.transport_message(message)
        else:
            self._listener.transport_message(message.encode("utf-8"))

    # -- sending -------------------------------------------------------------

    def _send_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch and self._state == "open":
            self._sending = True
            self._spawn(self._post_all(batch))

    async def _post_all(self, lines: list[str]) -> None:
        while lines and self._state == "open":
            if self._ndjson:
                chunk, lines = lines[:MAX_BATCH], lines[MAX_BATCH:]
                body, content_type = "\n".join(chunk), "application/x-ndjson"
            else:
                chunk, lines = lines[:1], lines[1:]
                body, content_type = chunk[0], "application/json"
            try:
                response = await self._client.post(
                    self._url(),
                    content=body.encode(),
                    headers=self._with_token({"Content-Type": content_type}),
                    timeout=self._poll_timeout,
                )
                status = _json_body(response)
            except httpx.TimeoutException:
                self._fail(1005, "timeout", TimeoutError("long-poll POST timed out"))
                return
            except httpx.HTTPError as exc:
                self._fail(1011, "internal server error", self._network_error(exc))
                return
            if not (isinstance(status, dict) and status.get("status") == 200):
                self._fail(
                    1011,
                    "internal server error",
                    LongPollError(f"long-poll POST answered {status!r}"),
                )
                return
            self._unsent -= len(chunk)
            if not lines and self._backlog:
                lines, self._backlog = self._backlog, []
        self._sending = False

    # -- internals -------------------------------------------------------------

    def _url(self) -> str:
        if self._token is None:
            return self._endpoint
        separator = "&" if "?" in self._endpoint else "?"
        return f"{self._endpoint}{separator}token={self._token}"

    def _with_token(self, headers: dict[str, str]) -> dict[str, str]:
        """The session token as a header too, as phoenix.js 1.9 sends it."""
        if self._token is None:
            return headers
        return {**headers, "X-Phoenix-Longpoll-Token": self._token}

    def _timeout_text(self, timeout: float) -> str:
        return f"no long-poll answer from {self._safe_endpoint} within {timeout:g} s"

    def _network_error(self, exc: httpx.HTTPError) -> BaseException:
        """Name the root cause (refused, TLS, DNS) without quoting the URL,
        which may carry secrets; httpx and httpcore wrap it twice."""
        root: BaseException = exc
        while root.__cause__ is not None or root.__context__ is not None:
            root = root.__cause__ or root.__context__  # type: ignore[assignment]
        detail = type(root).__name__
        if isinstance(root, OSError):
            detail = f"{detail}: {root}"
        where = f"long-poll request to {self._safe_endpoint}"
        return ConnectionError(f"{where} failed: {detail}")

    def _fail(self, code: int, reason: str, error: BaseException) -> None:
        if self._state == "closed":
            return
        self._listener.transport_error(error)
        self._finish(code, reason)

    def _finish(self, code: int, reason: str) -> None:
        if self._state == "closed":
            return
        self._state = "closed"
        self._batch, self._backlog = None, []
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        self._loop.create_task(self._client.aclose())
        self._listener.transport_close(code, reason)

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _json_body(response: httpx.Response) -> Any:
    """The decoded body, or None (status 0) when it is empty or not JSON.

    Phoenix answers every long-poll request with HTTP 200 and the status in
    the body; any other HTTP status comes from a proxy or a broken server.
    """
    if response.status_code != 200:
        return None
    try:
        return json.loads(response.content) if response.content else None
    except ValueError:
        return None


def _auth_token(protocols: list[str] | None) -> str | None:
    """phoenix.js recovers the token from the websocket subprotocols (§8.1)."""
    if protocols and len(protocols) == 2 and protocols[1].startswith(AUTH_TOKEN_PREFIX):
        encoded = protocols[1][len(AUTH_TOKEN_PREFIX) :]
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    return None


def _verify(options: ConnectOptions) -> ssl_module.SSLContext | bool:
    if isinstance(options.ssl, ssl_module.SSLContext):
        return options.ssl
    secure = options.url.startswith("wss")
    return not (secure and verification_disabled(options))
