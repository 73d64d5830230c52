"""The Phoenix socket of one connection: heartbeats, joins, leaves, routing.

This is ``Phoenix.Socket`` (``__in__``/``handle_in``), transport-agnostic: a
websocket or a long-poll session feeds it whole messages with
:meth:`SocketConnection.receive`, and it writes through a small
:class:`Transport`. Long-poll acknowledges a POSTed frame only once the socket
has handled it, joins included (:meth:`SocketConnection.settled`).

Theory of operation. Inbound messages are handled strictly in order, one at a
time, as the Phoenix socket process does (transcripts README, fact 11):

- a heartbeat (topic ``phoenix``, event ``heartbeat``, any payload) is
  answered at once: ``[null, ref, "phoenix", "phx_reply", {ok, {}}]``;
- ``phx_join`` runs the channel's ``join`` *inside the connection*: until it
  returns, later inbound messages wait in a backlog and outbound frames of
  other channels are held, so a ``delay_ms`` join delays even heartbeats;
- a push for a joined topic goes to that channel's mailbox
  (:mod:`.channel_server`), so a slow handler blocks only its own topic;
- ``phx_leave`` goes to the channel too, unless its join_ref is stale:
  then it is silently ignored (fact 6); ordinary pushes are *not* checked;
- anything for a topic this connection has not joined gets
  ``[null, ref, topic, "phx_reply", {error, {"reason": "unmatched topic"}}]``,
  except ``phx_leave``, which gets ok ``{}`` (PROTOCOL §9).

A duplicate join shuts the old channel down, joins anew, sends the new
reply and then ``phx_close`` for the *old* join_ref (fact 7). A message the
serializer cannot decode closes the connection with 1011 (fact 4).

Bounds (``Server(max_mailbox=...)``; Phoenix has none): while a join runs,
a backlog of ``max_mailbox`` messages pauses reading from the transport
until the join is done, as a busy Phoenix socket process stops reading its
socket; a channel mailbox that would hold more than ``max_mailbox`` client
messages closes the connection with 1013 (:meth:`SocketConnection.overloaded`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ..message import (
    HEARTBEAT_EVENT,
    HEARTBEAT_TOPIC,
    PHX_CLOSE,
    PHX_ERROR,
    PHX_JOIN,
    PHX_LEAVE,
    Message,
)
from ..serializer import DecodeError
from .channel import ChannelFactory, ChannelSocket, Reply, error
from .channel_server import ChannelProcess
from .connect import ConnectInfo
from .pubsub import PreparedFrame
from .wire import WireFormat, reply_message

if TYPE_CHECKING:
    from .server import Server

__all__ = ["SocketConnection", "Transport"]

logger = logging.getLogger("phoenix_channels.server")

INTERNAL_ERROR = 1011
#: Close code when a channel cannot keep up with the client (RFC 6455 §7.4.1
#: registry: "Try Again Later", the server casts off a client it cannot serve).
TRY_AGAIN_LATER = 1013
UNMATCHED_TOPIC = {"reason": "unmatched topic"}
TOO_MANY_CHANNELS = {"reason": "too many channels joined"}
JOIN_CRASHED = {"reason": "join crashed"}
#: Seconds between a channel crash and its phx_error (Phoenix's crash report).
CRASH_REPORT_DELAY = 0.005


class Transport(Protocol):
    """What a :class:`SocketConnection` writes to."""

    def send_frame(self, data: str | bytes) -> None:
        """Send one text (``str``) or binary (``bytes``) frame."""
        ...

    def send_prepared(self, frame: PreparedFrame) -> None:
        """Send a broadcast frame shared with other connections."""
        ...

    def close(self, code: int, reason: str = "") -> None:
        """Close the connection with a close code."""
        ...

    def pause_reading(self) -> None:
        """Stop reading from the client for now (backpressure)."""
        ...

    def resume_reading(self) -> None:
        """Read from the client again."""
        ...


class SocketConnection:
    """Phoenix socket state of one connection.

    Attributes:
        server: the owning server.
        wire: the negotiated serializer version.
        info: what the connect hook saw.
        assigns: the connection's assigns (copied into each channel socket).
        id: the connection id the connect hook gave, if any.
        channels: joined topics and their channels.
    """

    def __init__(
        self,
        server: Server,
        transport: Transport,
        wire: WireFormat,
        info: ConnectInfo,
        assigns: Mapping[str, Any],
        id: str | None = None,
    ) -> None:
        self.server = server
        self.transport = transport
        self.wire = wire
        self.info = info
        self.assigns = dict(assigns)
        self.id = id
        self.channels: dict[str, ChannelProcess] = {}
        self._open = True
        self._blocked = False
        self._backlog: deque[str | bytes] = deque()
        self._held: list[str | bytes | PreparedFrame] | None = None
        self._join_task: asyncio.Task[None] | None = None
        self._settled: asyncio.Future[None] | None = None
        self._reading_paused = False

    # --- inbound --------------------------------------------------------------

    def receive(self, data: str | bytes) -> None:
        """Handle one complete inbound message, in arrival order."""
        if not self._open:
            return
        if self._blocked:
            self._backlog.append(data)
            limit = self.server.max_mailbox
            if (
                limit is not None
                and len(self._backlog) >= limit
                and not self._reading_paused
            ):
                self._reading_paused = True
                self.transport.pause_reading()
            return
        self._handle(data)

    @property
    def is_busy(self) -> bool:
        """Whether received messages still wait for a join to finish."""
        return self._open and (self._blocked or bool(self._backlog))

    async def settled(self) -> None:
        """Wait until every message received so far has been handled.

        Phoenix's socket process handles a join before the next message, so
        a long-poll POST is acknowledged only after its joins ran. Returns at
        once when the connection is gone.
        """
        while self.is_busy:
            if self._settled is None or self._settled.done():
                self._settled = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._settled)

    def fail(self) -> None:
        """Treat an undecodable message: close with 1011 (fact 4)."""
        logger.info("! undecodable frame, closing with 1011")
        self._fail()

    def overloaded(self, process: ChannelProcess) -> None:
        """A channel's mailbox is full: close the connection with 1013."""
        if self._open:
            logger.warning(
                "! %d client messages wait for %s on %r (max_mailbox): "
                "closing with 1013",
                self.server.max_mailbox,
                type(process.channel).__name__,
                process.topic,
            )
            self._fail(TRY_AGAIN_LATER)

    def _wake_settled(self) -> None:
        settled, self._settled = self._settled, None
        if settled is not None and not settled.done():
            settled.set_result(None)

    def _handle(self, data: str | bytes) -> None:
        try:
            msg = self.wire.decode(data)
        except DecodeError as exc:
            logger.info("! undecodable frame, closing with 1011: %s", exc)
            self._fail()
            return
        try:
            self._route(msg)
        except Exception:
            logger.exception("! socket error, closing with 1011")
            self._fail()

    def _route(self, msg: Message) -> None:
        topic, event = msg.topic, msg.event
        if topic == HEARTBEAT_TOPIC and event == HEARTBEAT_EVENT:
            # The payload is ignored, even when it is not an object (fact 5).
            if self.server.heartbeats_enabled:
                self.emit_reply(None, msg.ref, HEARTBEAT_TOPIC, "ok", {})
            return
        # Phoenix looks the topic up in a map; non-string topics match nothing.
        process = self.channels.get(topic) if type(topic) is str else None
        if event == PHX_JOIN:
            self._join(msg, process)
        elif process is not None:
            if event != PHX_LEAVE:
                # 1.7.24 does not check join_ref on ordinary pushes (fact 6).
                process.push_in(msg)
            elif process.socket_join_ref is None or _same(
                process.socket_join_ref, msg.join_ref
            ):
                process.leave(msg)
            # else: a phx_leave with a stale join_ref is silently ignored.
        elif event == PHX_LEAVE:
            self.emit_reply(msg.join_ref, msg.ref, topic, "ok", {})
        else:
            self.emit_reply(None, msg.ref, topic, "error", UNMATCHED_TOPIC)

    # --- joins ----------------------------------------------------------------

    def _join(self, msg: Message, old: ChannelProcess | None) -> None:
        topic = msg.topic
        factory = self.server.router.match(topic) if type(topic) is str else None
        if old is None and self._admit(msg, factory) is None:
            return
        self._blocked = True
        self._held = []
        self._join_task = self.server.spawn(self._run_join(msg, factory, old))

    async def _run_join(
        self, msg: Message, factory: ChannelFactory | None, old: ChannelProcess | None
    ) -> None:
        try:
            if old is not None:
                self._detach(old)
                await old.shutdown("duplicate_join")
            admitted = self._admit(msg, factory)
            if admitted is not None:
                await self._do_join(msg, admitted)
            if old is not None:
                # Phoenix queues the old channel's phx_close behind the new
                # join's reply (fact 7).
                self._send_now(_control(PHX_CLOSE, old))
        except Exception:
            logger.exception("! join of %r failed, closing with 1011", msg.topic)
            self._fail()
        finally:
            self._join_task = None
            self._unblock()

    def _admit(
        self, msg: Message, factory: ChannelFactory | None
    ) -> ChannelFactory | None:
        """``factory`` when the join may run; else answer the join's error
        (unmatched topic, too many channels) and return ``None``."""
        if factory is None:
            error_reply = reply_message(
                None, msg.ref, msg.topic, "error", UNMATCHED_TOPIC
            )
        elif len(self.channels) >= self.server.max_channels:
            error_reply = reply_message(
                msg.join_ref, msg.ref, msg.topic, "error", TOO_MANY_CHANNELS
            )
        else:
            return factory
        self._send_now(error_reply)
        return None

    async def _do_join(self, msg: Message, factory: ChannelFactory) -> None:
        topic = msg.topic
        join_ref: Any = msg.join_ref
        # The channel's own join_ref is the join's join_ref, or its ref when
        # the client sent null: Elixir's `join_ref || ref` (fact 8).
        own_ref = msg.ref if join_ref is None or join_ref is False else join_ref
        try:
            channel = factory()
        except Exception:
            logger.exception("! channel factory for %r raised", topic)
            self._send_now(
                reply_message(join_ref, msg.ref, topic, "error", JOIN_CRASHED)
            )
            return
        socket = ChannelSocket(self, topic, own_ref, dict(self.assigns))
        process = ChannelProcess(self, channel, socket, join_ref)
        try:
            result = await channel.join(topic, msg.payload, socket)
            if not isinstance(result, Reply):
                raise TypeError(
                    f"{type(channel).__name__}.join must return ok(...) or "
                    f"error(...); got {result!r}"
                )
        except Exception:
            logger.exception("! %s.join crashed on %r", type(channel).__name__, topic)
            result = error(JOIN_CRASHED)
        except BaseException:  # cancelled: the connection went away
            process.ended = True
            _run_cleanups(socket)
            raise
        if result.status != "ok":
            # A refused join leaves nothing behind (presence tracked in join).
            process.ended = True
            _run_cleanups(socket)
            self._send_now(
                reply_message(join_ref, msg.ref, topic, result.status, result.response)
            )
            return
        socket.joined = True
        self.channels[topic] = process
        self.server.pubsub.subscribe(topic, process)
        # The reply goes out before anything held during the join.
        self._send_now(reply_message(join_ref, msg.ref, topic, "ok", result.response))
        process.start()

    def _unblock(self) -> None:
        held, self._held = self._held, None
        self._blocked = False
        if not self._open:
            return
        for item in held or ():
            if isinstance(item, PreparedFrame):
                self.transport.send_prepared(item)
            else:
                self.transport.send_frame(item)
        backlog = self._backlog
        while backlog and not self._blocked and self._open:
            self._handle(backlog.popleft())
        if not self.is_busy:
            if self._reading_paused and self._open:
                self._reading_paused = False
                self.transport.resume_reading()
            self._wake_settled()

    # --- outbound -------------------------------------------------------------

    def emit(self, msg: Message) -> None:
        """Encode and send ``msg`` (held while a join runs).

        Raises:
            TypeError, ValueError: the payload cannot be encoded.
        """
        if self._open:
            self._write(self.wire.encode(msg))

    def emit_reply(
        self, join_ref: Any, ref: Any, topic: Any, status: str, response: Any
    ) -> None:
        """Send a ``phx_reply``."""
        self.emit(reply_message(join_ref, ref, topic, status, response))

    def deliver(self, frame: PreparedFrame) -> None:
        """Send a broadcast frame (held while a join runs)."""
        if not self._open:
            return
        if self._held is not None:
            self._held.append(frame)
        else:
            self.transport.send_prepared(frame)

    def _write(self, data: str | bytes) -> None:
        if self._held is not None:
            self._held.append(data)
        else:
            self.transport.send_frame(data)

    def _send_now(self, msg: Message) -> None:
        if self._open:
            self.transport.send_frame(self.wire.encode(msg))

    # --- channel ends ---------------------------------------------------------

    def channel_ended(self, process: ChannelProcess, *, clean: bool) -> None:
        """A channel stopped or crashed by itself: ``phx_close`` or ``phx_error``.

        Both carry the join_ref of the join frame in both ref slots, ``{}`` as
        payload (fact 3; v1 frames show it as ``ref``, fact 9). ``phx_error``
        goes out :data:`CRASH_REPORT_DELAY` seconds later.
        """
        if process.detached:
            return
        self._detach(process)
        if clean:
            self.emit(_control(PHX_CLOSE, process))
        else:
            # Phoenix sends phx_error when the crashed process is DOWN, which
            # is after its crash report was written, milliseconds later:
            # another channel stopped by the next frame of the same long-poll
            # POST gets its reply and phx_close out first (transcript
            # lp_v2_crash_and_stop).
            asyncio.get_running_loop().call_later(
                CRASH_REPORT_DELAY, self.emit, _control(PHX_ERROR, process)
            )

    def _detach(self, process: ChannelProcess) -> None:
        """Forget a channel: unsubscribe it, then run its cleanups (presence
        leaves), so its own client never sees its leave diff."""
        process.detached = True
        if self.channels.get(process.topic) is process:
            del self.channels[process.topic]
        self.server.pubsub.unsubscribe(process.topic, process)
        _run_cleanups(process.socket)

    # --- connection ends ------------------------------------------------------

    def _fail(self, code: int = INTERNAL_ERROR) -> None:
        if self._open:
            self.transport.close(code, "")
            self._open = False
            self._wake_settled()

    def transport_closed(self) -> None:
        """The transport is gone: end every channel (reason ``"closed"``)."""
        self._open = False
        self._backlog.clear()
        self._held = None
        self._wake_settled()
        if self._join_task is not None:
            self._join_task.cancel()
        processes = list(self.channels.values())
        for process in processes:
            self._detach(process)
        if processes:
            self.server.spawn(_shutdown_all(processes, "closed"))


async def _shutdown_all(processes: list[ChannelProcess], reason: str) -> None:
    await asyncio.gather(*(p.shutdown(reason) for p in processes))


def _run_cleanups(socket: ChannelSocket) -> None:
    cleanups, socket._cleanups = socket._cleanups, []
    for cleanup in cleanups:
        try:
            cleanup()
        except Exception:
            logger.exception("! cleanup of %r raised", socket.topic)


def _control(event: str, process: ChannelProcess) -> Message:
    ref = process.socket_join_ref
    return Message(ref, ref, process.topic, event, {})


def _same(a: Any, b: Any) -> bool:
    # Elixir's `in [join_ref, nil]` compares strictly: "1" is not 1.
    return type(a) is type(b) and bool(a == b)
