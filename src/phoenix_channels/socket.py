"""Socket: one connection to a Phoenix endpoint, multiplexing channels.

Theory of operation (PROTOCOL §5). The socket owns the connection state,
the one ref counter, the send buffer, the heartbeat and reconnection:

- Connection state changes go through :data:`TRANSITIONS` (connecting, open,
  closing, closed); each transport attempt has its own ``Link``, and events
  from a link that is no longer current only finish its teardown.
- Frames pushed while the transport is not open wait in the send buffer and
  go out on open, before the open callbacks run (so a stale join or leave
  goes first, PROTOCOL §5.6).
- A close that was not asked for, whatever its code, schedules a reconnect
  on ``reconnect_after`` (phoenix.js 1.8.16); on open, errored channels
  rejoin. Every close errors the joined/joining channels, so they rejoin on
  the next open; frames buffered for an earlier join are dropped then.
- Inbound frames are routed by topic through a dict (O(1) in the number of
  channels; phoenix.js scans them all) and replies by ref.
- The first connection attempt made by ``connect()`` raises ConnectError and
  stops there; once a connection has opened, drops heal until
  ``disconnect()``.
"""

from __future__ import annotations

import base64
import logging
import ssl as ssl_module
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .callbacks import Callback, Registered, invoke, register
from .channel import Channel, ChannelState, Params
from .connection import (
    TEARDOWN_LIMIT,
    TRANSITIONS,
    Buffered,
    CloseEvent,
    Link,
    SocketState,
    SocketTrigger,
    outdated,
)
from .endpoint import build_url, normalize_endpoint
from .errors import BufferFull, ConnectError, PhoenixError
from .fallback import LongPollFallback
from .heartbeat import Heartbeat
from .message import (
    AUTH_TOKEN_PREFIX,
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_TIMEOUT,
    DEFAULT_VSN,
    HEARTBEAT_EVENT,
    HEARTBEAT_TOPIC,
    PHX_ERROR,
    PHX_LEAVE,
    WS_CLOSE_NORMAL,
    Message,
    default_reconnect_after,
    default_rejoin_after,
)
from .push import Push, check_timeout
from .redact import redact_url
from .serializer import DecodeError, Frame, serializer_for
from .timers import AsyncioTimers, RetryTimer, Timers, fail, settle
from .transports.base import ConnectOptions, TransportFactory

if TYPE_CHECKING:
    import asyncio

__all__ = ["CloseEvent", "Socket", "SocketState"]  # the first and last re-exported


class Socket:
    """A connection to a Phoenix socket endpoint such as ``ws://host/socket``.

    See API.md for every option; all times are in seconds.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        params: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        reconnect_after: Callable[[int], float] | None = None,
        rejoin_after: Callable[[int], float] | None = None,
        vsn: str = DEFAULT_VSN,
        auth_token: str | Callable[[], str] | None = None,
        transport: str | TransportFactory = "websocket",
        longpoll_fallback_after: float | None = None,
        headers: Mapping[str, str] | None = None,
        ssl: ssl_module.SSLContext | bool | None = None,
        logger: logging.Logger | None = None,
        timers: Timers | None = None,
        max_frame_size: int | None = 2**24,
        max_buffered_pushes: int = 10_000,
        max_send_buffer: int = 10_000,
    ) -> None:
        self._endpoint = normalize_endpoint(endpoint)
        if not (params is None or callable(params) or isinstance(params, Mapping)):
            raise TypeError(f"params must be a mapping or a callable, got {params!r}")
        self._params = params
        self.timeout = check_timeout(timeout)
        self.heartbeat_interval = check_timeout(
            heartbeat_interval, "heartbeat_interval"
        )
        if self.heartbeat_interval == 0:
            raise ValueError("heartbeat_interval must be more than 0 seconds")
        self.reconnect_after = reconnect_after or default_reconnect_after
        self.rejoin_after = rejoin_after or default_rejoin_after
        self.vsn = vsn
        self._serializer = serializer_for(vsn)
        if auth_token is not None and not (
            callable(auth_token) or isinstance(auth_token, str)
        ):
            raise TypeError("auth_token must be a string or a callable returning one")
        self._auth_token = auth_token
        self._transport_factory = _transport_factory(transport)
        self.transport = transport if isinstance(transport, str) else "custom"
        self.longpoll_fallback_after = (
            None
            if longpoll_fallback_after is None
            else check_timeout(longpoll_fallback_after, "longpoll_fallback_after")
        )
        self._headers = dict(headers or {})
        if ssl is not None and not isinstance(ssl, (bool, ssl_module.SSLContext)):
            raise TypeError("ssl must be an ssl.SSLContext, True, False or None")
        self._ssl = ssl
        self._max_frame_size = max_frame_size
        #: Pushes a channel holds until its join succeeds (phoenix.js: no limit).
        self.max_buffered_pushes = max_buffered_pushes
        #: Frames the socket holds while the connection is not open.
        self.max_send_buffer = max_send_buffer
        self._log = logger or logging.getLogger("phoenix_channels")
        self._debug = self._log.isEnabledFor(logging.DEBUG)
        self._timers: Timers = timers or AsyncioTimers(self._on_callback_task_error)

        self._state = SocketState.CLOSED
        self._link: Link | None = None
        self._ref = 0
        self._channels: dict[str, list[Channel]] = {}
        self._in_flight: dict[str, Push] = {}
        self._send_buffer: list[Buffered] = []
        self._callbacks: dict[str, dict[str, Registered]] = {
            "open": {},
            "close": {},
            "error": {},
            "message": {},
        }
        self._close_was_clean = True
        self._disconnecting = False
        self._healing = False  # a connection opened since connect(): heal drops
        self._established = 0
        self._connect_waiters: list[asyncio.Future[None]] = []
        self._last_error: BaseException | None = None
        self._ping_waiters: dict[str, asyncio.Future[float]] = {}
        self._reconnect_timer = RetryTimer(
            self._timers, self._on_reconnect_timer, self.reconnect_after
        )
        self._fallback = (
            None
            if self.longpoll_fallback_after is None
            else LongPollFallback(self, self.longpoll_fallback_after)
        )
        self._heartbeat = Heartbeat(
            self._timers,
            self.heartbeat_interval,
            self._send_heartbeat,
            self.is_connected,
            self._on_heartbeat_timeout,
        )

    def __repr__(self) -> str:
        return f"<Socket {redact_url(self._endpoint)} state={self._state.value!r}>"

    # -- public API --------------------------------------------------------

    @property
    def connection_state(self) -> str:
        """One of "connecting", "open", "closing", "closed"."""
        return self._state.value

    def is_connected(self) -> bool:
        return self._state is SocketState.OPEN

    def make_ref(self) -> str:
        """The next ref of the socket's one counter, as a string."""
        self._ref += 1
        return str(self._ref)

    def endpoint_url(self) -> str:
        """The websocket URL: endpoint, params (re-read now), then ``vsn``."""
        return build_url(self._endpoint, self._current_params(), self.vsn)

    async def connect(self) -> None:
        """Open the connection; return once it is open.

        Raises:
            ConnectError: this attempt failed (refused, rejected handshake,
                TLS, DNS, timeout). Nothing keeps running in the background
                unless a connection had opened before and was not closed
                with ``disconnect()``.
        """
        if self.is_connected():
            return
        future = self._timers.create_future()
        self._connect_waiters.append(future)
        healing = self._link is None and self._reconnect_timer.is_scheduled
        if (self._link is None and not healing) or self._disconnecting:
            self._transport_connect()
            if self._fallback is not None:
                self._fallback.arm()
        await future

    async def disconnect(
        self, code: int = WS_CLOSE_NORMAL, reason: str | None = None
    ) -> None:
        """Close cleanly; no reconnect. Joined channels error, and rejoin on
        the next ``connect()`` (PROTOCOL §5.5)."""
        self._disconnecting = True
        self._close_was_clean = True
        self._healing = False
        self._reconnect_timer.reset()
        if self._fallback is not None:
            self._fallback.cancel()
        done = self._timers.create_future()
        self._teardown(code, reason or "", lambda: settle(done))
        try:
            await done
        finally:
            self._disconnecting = False

    async def __aenter__(self) -> Socket:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    def channel(self, topic: str, params: Params = None) -> Channel:
        """A new Channel for ``topic``; call ``join()`` on it."""
        channel = Channel(topic, params, self)
        self._channels.setdefault(topic, []).append(channel)
        return channel

    def on_open(self, callback: Callback) -> str:
        """Call ``callback()`` on each open; returns a ref for ``off``."""
        return self._add_callback("open", callback)

    def on_close(self, callback: Callback) -> str:
        """Call ``callback(event: CloseEvent)`` on each close."""
        return self._add_callback("close", callback)

    def on_error(self, callback: Callback) -> str:
        """Call ``callback(error, transport, established_connections)``."""
        return self._add_callback("error", callback)

    def on_message(self, callback: Callback) -> str:
        """Call ``callback(message: Message)`` for every inbound message."""
        return self._add_callback("message", callback)

    def off(self, refs: Iterable[str]) -> None:
        """Remove the socket callbacks registered under ``refs``."""
        if isinstance(refs, str):
            refs = (refs,)
        for ref in refs:
            for registry in self._callbacks.values():
                registry.pop(ref, None)

    def pending_pushes(self) -> list[Push]:
        """Pushes sent and still waiting for their reply or timeout."""
        return [push for push in self._in_flight.values() if push._is_pending]

    async def ping(self, timeout: float | None = None) -> float:
        """One heartbeat round trip, in seconds.

        Raises:
            PhoenixError: the socket is not connected.
            TimeoutError: no reply within ``timeout`` (default: the socket's).
        """
        if not self.is_connected():
            raise PhoenixError(
                "cannot ping: the socket is not connected; await socket.connect() first"
            )
        limit = self.timeout if timeout is None else check_timeout(timeout)
        future = self._timers.create_future()
        start = self._timers.now()
        ref = self._send_heartbeat()
        self._ping_waiters[ref] = future
        timer = self._timers.call_later(
            limit,
            lambda: fail(
                future, TimeoutError(f"no heartbeat reply within {limit:g} s")
            ),
        )
        try:
            return float(await future) - start
        finally:
            timer.cancel()
            self._ping_waiters.pop(ref, None)

    # -- outbound ------------------------------------------------------------

    def _push(
        self,
        topic: str,
        event: str,
        payload: Any,
        ref: str | None,
        join_ref: str | None,
        channel: Channel | None = None,
    ) -> None:
        data = self._serializer.encode(Message(join_ref, ref, topic, event, payload))
        if self._debug:
            self._log.debug("> %s %s (%s, %s)", topic, event, join_ref, ref)
        if self._state is SocketState.OPEN:
            # A leave still goes out after its channel closed locally (§4.5).
            if event == PHX_LEAVE or not outdated(join_ref, channel):
                self._link.conn.send(data)  # type: ignore[union-attr]
        else:
            self._check_send_room()
            self._send_buffer.append(Buffered(data, channel, join_ref))

    def _check_send_room(self) -> None:
        if len(self._send_buffer) >= self.max_send_buffer and not self.is_connected():
            raise BufferFull(
                f"{len(self._send_buffer)} frames already wait for the "
                "connection to open (max_send_buffer); retry once connected"
            )

    def _check_encodable(self, topic: str, event: str, payload: Any) -> None:
        """Raise now, at the call, for a payload that could not be sent later."""
        self._serializer.encode(Message("0", "0", topic, event, payload))

    def _check_buffer_room(self, channel: Channel) -> None:
        """Bound a channel's push buffer: drop ended pushes, then refuse."""
        buffer = channel._push_buffer
        if len(buffer) < self.max_buffered_pushes:
            return
        buffer[:] = [push for push in buffer if push._status is None]
        if len(buffer) >= self.max_buffered_pushes:
            raise BufferFull(
                f"{len(buffer)} pushes to {channel.topic!r} already wait for the "
                f"join to succeed (max_buffered_pushes); await them or raise the limit"
            )

    def _flush_send_buffer(self) -> None:
        """Send what waited for the connection, except frames that no longer
        concern their channel (an earlier join's, or a closed channel's), as
        phoenix.js 1.8.16 does: the channel's rejoin supersedes them."""
        if self._send_buffer and self._link is not None and self.is_connected():
            buffered, self._send_buffer = self._send_buffer, []
            send = self._link.conn.send  # type: ignore[union-attr]
            for data, channel, join_ref in buffered:
                if not outdated(join_ref, channel):
                    send(data)

    # -- connection lifecycle ----------------------------------------------

    def _set(self, trigger: SocketTrigger) -> None:
        new = TRANSITIONS.get((self._state, trigger))
        if new is None:
            raise RuntimeError(
                f"socket: {trigger.value!r} is not allowed "
                f"in state {self._state.value!r}"
            )
        if self._debug:
            self._log.debug("= socket %s -> %s", self._state.value, new.value)
        self._state = new

    def _transport_connect(self) -> None:
        if self._link is not None:
            self._retire_link()
        self._close_was_clean = False
        self._debug = self._log.isEnabledFor(logging.DEBUG)
        url = self.endpoint_url()
        link = Link(self, redact_url(url))
        self._link = link
        self._set(SocketTrigger.CONNECT)
        options = ConnectOptions(
            url=url,
            safe_url=link.safe_url,
            protocols=self._protocols(),
            headers=self._headers,
            ssl=self._ssl,
            open_timeout=self.timeout,
            logger=self._log,
            max_size=self._max_frame_size,
            extra={"vsn": self.vsn},
        )
        try:
            link.conn = self._transport_factory(options, link)
        except Exception as exc:  # e.g. an invalid URL: report like any failure
            self._on_conn_error(exc)
            link.transport_close(1006, "could not start the transport")

    def _protocols(self) -> list[str] | None:
        token = self._auth_token() if callable(self._auth_token) else self._auth_token
        if token is None:
            return None
        encoded = base64.b64encode(token.encode()).decode().rstrip("=")
        return ["phoenix", AUTH_TOKEN_PREFIX + encoded]

    def _current_params(self) -> Mapping[str, Any]:
        params = self._params() if callable(self._params) else self._params
        if params is None:
            return {}
        if not isinstance(params, Mapping):
            raise TypeError(
                f"socket params must be a mapping, got {type(params).__name__}"
            )
        return params

    def _teardown(
        self,
        code: int | None,
        reason: str,
        then: Callable[[], None],
        *,
        grace: float = TEARDOWN_LIMIT,
    ) -> None:
        """Close the current connection, then call ``then``.

        The transport gets ``grace`` seconds for a clean close; then it is
        aborted and counted as closed (code 1006).
        """
        link = self._link
        if link is None or link.conn is None:
            then()
            return
        link.then.append(then)
        if link.closing:
            return
        link.closing = True
        self._set(SocketTrigger.CLOSE)
        self._heartbeat.stop()
        conn = link.conn

        def give_up() -> None:  # report the close we asked for, as phoenix.js
            conn.abort()
            link.transport_close(1005 if code is None else code, reason)

        link.guard = self._timers.call_later(grace, give_up)
        conn.close(code, reason)

    def _on_conn_open(self, link: Link) -> None:
        if link is not self._link or link.closing:
            if link.conn is not None and not link.closing:
                link.closing = True
                link.conn.close(None, "")  # a stray attempt: nobody wants it
            return
        link.opened = True
        self._log.info("%s connected to %s", link.conn.name, redact_url(self._endpoint))  # type: ignore[union-attr]
        self._close_was_clean = False
        self._disconnecting = False
        self._healing = True
        self._established += 1
        self._set(SocketTrigger.OPENED)
        self._flush_send_buffer()
        link.tries_at_open = self._reconnect_timer.tries
        self._reconnect_timer.reset()
        if not link.conn.skip_heartbeat:  # type: ignore[union-attr]
            self._heartbeat.start()
        waiters, self._connect_waiters = self._connect_waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)
        self._run_callbacks("open", ())
        if self._fallback is not None:
            self._fallback.opened()

    def _on_conn_error(self, error: BaseException) -> None:
        if self._fallback is not None and self._fallback.failed():
            return
        self._last_error = error
        self._log.warning("! transport error: %s", _describe(error))
        established = self._established
        self._run_callbacks("error", (error, self.transport, established))
        self._trigger_chan_error("connection_error")

    def _on_conn_close(self, link: Link, code: int, reason: str) -> None:
        if link is self._link:
            self._link = None
            self._set(SocketTrigger.CLOSED)
            self._log.info("! connection closed: code %s %s", code, reason)
            self._trigger_chan_error("connection_closed")
            self._heartbeat.stop()
            if not link.opened:
                self._fail_connect_waiters(link, code, reason)
            # phoenix.js 1.8.16: any close we did not ask for reconnects, whatever
            # its code (servers and proxies close with 1000 too); a close we
            # asked for is followed up by the code that asked for it.
            if link.opened and not link.heard:
                # Opened, then closed before a single frame: a server that
                # accepts and drops at once (or answers long-poll with 410 on
                # every poll) must not get a reconnect every 10 ms forever.
                self._reconnect_timer.tries = link.tries_at_open
            if not self._close_was_clean and not link.closing:
                self._schedule_reconnect()
            event = CloseEvent(code, reason, was_clean=code != 1006)
            self._run_callbacks("close", (event,))
        for then in link.then:
            then()

    def _fail_connect_waiters(self, link: Link, code: int, reason: str) -> None:
        if not self._healing:
            self._close_was_clean = True  # a failed connect() does not retry
        cause = self._last_error
        detail = (
            _describe(cause)
            if cause is not None
            else f"closed with code {code} {reason}".strip()
        )
        waiters, self._connect_waiters = self._connect_waiters, []
        for future in waiters:
            if not future.done():
                error = ConnectError(f"could not connect to {link.safe_url}: {detail}")
                error.__cause__ = cause
                future.set_exception(error)
        self._last_error = None

    def _replace_transport(self, transport: str) -> None:
        """Swap the transport for good and connect with it at once."""
        self._transport_factory = _transport_factory(transport)
        self.transport = transport
        self._transport_connect()

    def _retire_link(self) -> None:
        """A new connection replaces the current one before its close came.

        What its close would do for the channels happens now (they error, and
        rejoin on the new connection's open); its late close report only
        finishes its teardown and tells the close callbacks.
        """
        old = self._link
        assert old is not None
        self._link = None
        self._set(SocketTrigger.REPLACE)
        self._heartbeat.stop()
        if old.opened:  # else nothing was lost: frames wait in the send buffer
            self._trigger_chan_error("connection_closed")
        if old.conn is not None and not old.closing:
            old.closing = True
            old.conn.close(None, "")

    def _probe(self, answered: Callable[[], None]) -> None:
        """Send a heartbeat; call ``answered`` when its reply comes."""
        future = self._timers.create_future()

        def on_reply(done: asyncio.Future[float]) -> None:
            if not done.cancelled():
                answered()

        future.add_done_callback(on_reply)
        self._ping_waiters[self._send_heartbeat()] = future

    def _schedule_reconnect(self) -> None:
        delay = self._reconnect_timer.schedule()
        self._log.info("= reconnecting in %g s", delay)

    def _on_reconnect_timer(self) -> None:
        self._teardown(None, "", self._reconnect)

    def _reconnect(self) -> None:
        if self._link is None and not self._close_was_clean:
            self._transport_connect()

    def _trigger_chan_error(self, reason: str) -> None:
        payload = {"source": "transport", "reason": reason}
        for channels in list(self._channels.values()):
            for channel in tuple(channels):
                if channel._state in (
                    ChannelState.ERRORED,
                    ChannelState.LEAVING,
                    ChannelState.CLOSED,
                ):
                    continue
                self._guarded(channel._trigger, PHX_ERROR, payload, None, None)

    # -- heartbeat -----------------------------------------------------------

    def _send_heartbeat(self) -> str:
        """Send one heartbeat frame; its ref identifies the reply."""
        ref = self.make_ref()
        self._push(HEARTBEAT_TOPIC, HEARTBEAT_EVENT, {}, ref, None)
        return ref

    def _on_heartbeat_timeout(self) -> None:
        self._log.warning("- heartbeat timeout. Attempting to re-establish connection")
        self._trigger_chan_error("heartbeat_timeout")
        self._close_was_clean = False
        # A connection that misses a heartbeat is presumed dead: no waiting
        # for a closing handshake that cannot come.
        self._teardown(
            WS_CLOSE_NORMAL, "heartbeat timeout", self._schedule_reconnect, grace=0.0
        )

    # -- inbound -------------------------------------------------------------

    def _on_conn_message(self, data: Frame) -> None:
        try:
            msg = self._serializer.decode(data)
        except DecodeError as exc:
            self._log.warning("! dropped a frame that does not decode: %s", exc)
            return
        join_ref, ref, topic, event, payload = msg
        if ref is not None:
            if ref == self._heartbeat.pending_ref:
                self._heartbeat.received(ref)
            if self._ping_waiters:
                self._resolve_ping(ref)
        if self._debug:
            status = payload.get("status", "") if type(payload) is dict else ""
            self._log.debug("< %s %s %s (%s)", status, topic, event, ref)
        channels = self._channels.get(topic)
        if channels:
            for channel in channels if len(channels) == 1 else tuple(channels):
                if channel._is_member(join_ref, ref, event):
                    try:
                        channel._trigger(event, payload, ref, join_ref)
                    except Exception as exc:  # server input: a warning, not a crash
                        self._log.warning(
                            "! ignored %r from the server: %s", event, exc
                        )
        if self._callbacks["message"]:
            self._run_callbacks("message", (msg,))

    def _resolve_ping(self, ref: str) -> None:
        future = self._ping_waiters.pop(ref, None)
        if future is not None and not future.done():
            future.set_result(self._timers.now())

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        """Run channel logic on server input; a surprise is a warning, not a crash."""
        try:
            fn(*args)
        except Exception as exc:
            self._log.warning("! ignored %r from the server: %s", args[0], exc)

    # -- channels and callbacks (internal) -----------------------------------

    def _remove(self, channel: Channel) -> None:
        channels = self._channels.get(channel.topic)
        if channels and channel in channels:
            channels.remove(channel)
            if not channels:
                del self._channels[channel.topic]
        self.off(channel._socket_refs)

    def _leave_open_topic(self, joining: Channel) -> None:
        """The duplicate-join rule: the newest join of a topic wins (§4.3)."""
        for channel in tuple(self._channels.get(joining.topic, ())):
            if channel is not joining and channel._state in (
                ChannelState.JOINED,
                ChannelState.JOINING,
            ):
                self._log.info('leaving duplicate topic "%s"', joining.topic)
                channel.leave()
                return

    def _add_callback(self, kind: str, callback: Callback) -> str:
        ref = self.make_ref()
        self._callbacks[kind][ref] = register(callback)
        return ref

    def _run_callbacks(self, kind: str, args: tuple[Any, ...]) -> None:
        for cb in tuple(self._callbacks[kind].values()):
            self._invoke(cb, args)

    def _invoke(self, cb: Registered, args: tuple[Any, ...]) -> None:
        invoke(cb, args, self._log, self._timers.spawn)

    def _on_callback_task_error(self, error: BaseException) -> None:
        self._log.error("! async callback raised", exc_info=error)

    async def _sleep(self, delay: float) -> None:
        future = self._timers.create_future()
        handle = self._timers.call_later(delay, lambda: settle(future))
        try:
            await future
        finally:
            handle.cancel()


def _transport_factory(transport: str | TransportFactory) -> TransportFactory:
    if callable(transport):
        return transport
    if transport == "websocket":
        from .transports.websocket import WebSocketTransport

        websocket: TransportFactory = WebSocketTransport
        return websocket
    if transport == "longpoll":
        from .transports.longpoll import LongPollTransport

        return LongPollTransport
    raise ValueError(f"unknown transport {transport!r}; use 'websocket' or 'longpoll'")


def _describe(error: BaseException) -> str:
    # Transports build their messages from the redacted URL, never the real one.
    return (str(error) or type(error).__name__).replace("\n", " ")
