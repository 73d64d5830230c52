"""The handler API: write a channel as you would a ``Phoenix.Channel``.

A channel class handles one topic pattern. The server makes a fresh instance
for every join (it plays the part of a Phoenix channel *process*), so plain
attributes are per-join state::

    from phoenix_channels.server import (
        ServerChannel, error, noreply, ok, reply, stop,
    )

    class RoomChannel(ServerChannel):
        async def join(self, topic, payload, socket):
            if topic == "room:private":
                return error({"reason": "unauthorized"})
            self.count = 0
            return ok({"joined": topic})

        async def handle_in(self, event, payload, socket):
            if event == "shout":
                socket.broadcast("shout", payload)   # everyone on the topic
                return noreply()
            if event == "count":
                self.count += 1
                return reply("ok", {"count": self.count})
            if event == "bye":
                return stop("normal", reply=ok({"bye": True}))
            return error({"reason": "unknown_event"})

What the client sees (PROTOCOL §6.1, transcripts README facts 2-3):

- ``join`` returning ``ok(resp)`` joins (reply status ``ok``); ``error(resp)``
  refuses (reply status ``error``, nothing is joined). A join that raises is
  answered ``error {"reason": "join crashed"}``, as Phoenix does.
- ``handle_in`` returns ``reply(status, response)`` (``ok(...)`` and
  ``error(...)`` are shorthands), ``noreply()``, or ``stop(reason, reply=...)``.
  A ``bytes`` response is sent as a binary (kind 1) reply on vsn 2.0.0.
- ``stop("normal")`` (or ``"shutdown"``, or ``"shutdown:<anything>"``) sends
  the reply, then ``phx_close``; any other reason is abnormal and the client
  gets ``phx_error`` after the reply, as with Phoenix's exit reasons.
- An exception in a handler kills only that channel: the client gets
  ``phx_error`` ``{}`` and nothing else; the connection and the other
  channels live on. An invalid return value counts as an exception.
- Handlers of one channel run one at a time, in arrival order; a slow
  handler delays only its own channel.
- ``handle_info`` receives what ``socket.send_info`` / ``send_after`` posted
  (Phoenix's ``send(self(), msg)``); it returns ``noreply()`` or ``stop(...)``.
  The usual pattern is to post from ``join`` and push from ``handle_info``,
  because pushing or broadcasting inside ``join`` raises, as in Phoenix.
- ``terminate(reason, socket)`` runs after the channel ended; ``reason`` is
  the stop reason, ``"left"`` (client ``phx_leave``), ``"closed"`` (the
  connection went away), ``"duplicate_join"``, or the exception that
  crashed the channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..message import Message

if TYPE_CHECKING:
    from .channel_server import ChannelProcess
    from .connection import SocketConnection
    from .presence import PresenceTracker
    from .server import Server

__all__ = [
    "ChannelFactory",
    "ChannelSocket",
    "NoReply",
    "Reply",
    "ServerChannel",
    "Stop",
    "TerminateReason",
    "error",
    "noreply",
    "ok",
    "reply",
    "stop",
]

logger = logging.getLogger("phoenix_channels.server")

#: Why a channel ended: a stop reason string, or the exception that crashed it.
TerminateReason = str | BaseException


@dataclass(frozen=True)
class Reply:
    """Answer the client's push with ``status`` and ``response``."""

    status: str
    response: Any


@dataclass(frozen=True)
class NoReply:
    """Send nothing back (the client's push will time out unless answered)."""


@dataclass(frozen=True)
class Stop:
    """End the channel, after sending ``reply`` if there is one."""

    reason: str = "normal"
    reply: Reply | None = None


def ok(response: Any = None) -> Reply:
    """``reply("ok", response)``; ``None`` means ``{}``."""
    return Reply("ok", {} if response is None else response)


def error(response: Any = None) -> Reply:
    """``reply("error", response)``; ``None`` means ``{}``."""
    return Reply("error", {} if response is None else response)


def reply(status: str, response: Any = None) -> Reply:
    """A reply with any status string (Phoenix allows any atom)."""
    return Reply(status, {} if response is None else response)


_NOREPLY = NoReply()


def noreply() -> NoReply:
    """Answer nothing."""
    return _NOREPLY


def stop(reason: str = "normal", reply: Reply | None = None) -> Stop:
    """End the channel; see the module docstring for what the client sees."""
    return Stop(reason, reply)


def is_clean_stop(reason: str) -> bool:
    """Phoenix sends ``phx_close`` for ``:normal``, ``:shutdown`` and
    ``{:shutdown, _}`` exits, and ``phx_error`` for every other reason."""
    return reason in ("normal", "shutdown") or reason.startswith("shutdown:")


class ServerChannel:
    """Base class of channel handlers; override the coroutines you need."""

    async def join(self, topic: str, payload: Any, socket: ChannelSocket) -> Reply:
        """Decide whether the client may join ``topic``.

        Returns:
            ``ok(response)`` to join, ``error(response)`` to refuse.
        """
        return ok()

    async def handle_in(
        self, event: str, payload: Any, socket: ChannelSocket
    ) -> Reply | NoReply | Stop:
        """Handle a client push. ``event`` comes straight from the frame, so a
        malformed frame may deliver a non-``str`` event (Phoenix passes it on).

        The default raises, which crashes the channel (``phx_error``), as a
        Phoenix channel without a matching ``handle_in`` clause does.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no handle_in for event {event!r}"
        )

    async def handle_info(self, message: Any, socket: ChannelSocket) -> NoReply | Stop:
        """Handle a message posted with ``socket.send_info``/``send_after``."""
        logger.warning(
            "! %s received an unhandled message: %r", type(self).__name__, message
        )
        return noreply()

    async def terminate(self, reason: TerminateReason, socket: ChannelSocket) -> None:
        """Called once after the channel ended (not after a refused join)."""


ChannelFactory = Callable[[], ServerChannel]


class ChannelSocket:
    """A joined topic as its handlers see it: Phoenix's ``%Socket{}``.

    Attributes:
        topic: the joined topic.
        join_ref: the channel's join_ref: the join's ``join_ref``, or its
            ``ref`` when the client sent ``null`` (transcripts README, fact 8).
            Every reply and push of the channel carries it.
        assigns: per-channel state, starting as a copy of the assigns the
            connect hook gave the connection.
        ref: the ref of the client push being handled (``None`` elsewhere).
        joined: ``False`` while ``join`` runs, then ``True``.
    """

    def __init__(
        self,
        conn: SocketConnection,
        topic: str,
        join_ref: Any,
        assigns: dict[str, Any],
    ) -> None:
        self.topic = topic
        self.join_ref = join_ref
        self.assigns = assigns
        self.ref: Any = None
        self.joined = False
        self._conn = conn
        self._process: ChannelProcess | None = None
        self._cleanups: list[Callable[[], None]] = []

    @property
    def params(self) -> Mapping[str, str]:
        """The connection's connect params (the websocket query)."""
        return self._conn.info.params

    @property
    def server(self) -> Server:
        """The server this channel runs in."""
        return self._conn.server

    @property
    def presence(self) -> PresenceTracker:
        """The server's presence tracker (``socket.presence.track(socket, ...)``)."""
        return self._conn.server.presence

    @property
    def vsn(self) -> str:
        """The connection's serializer version (``"1.0.0"`` or ``"2.0.0"``)."""
        return self._conn.wire.vsn

    def push(self, event: str, payload: Any = None) -> None:
        """Send ``[join_ref, null, topic, event, payload]`` to this client.

        A ``bytes`` payload becomes a binary (kind 0) push on vsn 2.0.0.

        Raises:
            RuntimeError: called during ``join`` (post a message with
                ``send_info`` and push from ``handle_info`` instead).
        """
        self._assert_joined("push")
        if self._is_live():
            msg = Message(self.join_ref, None, self.topic, event, _payload(payload))
            self._conn.emit(msg)

    def send_reply(self, ref: Any, status: str, response: Any = None) -> None:
        """Answer an earlier push later (Phoenix's ``reply(socket_ref, ...)``);
        take ``ref`` from :attr:`ref` while that push was handled."""
        if self._is_live():
            self._conn.emit_reply(self.join_ref, ref, self.topic, status, response)

    def broadcast(self, event: str, payload: Any = None) -> None:
        """Send a broadcast to every member of the topic, this client included."""
        self._assert_joined("broadcast")
        self.server.pubsub.broadcast(self.topic, event, _payload(payload))

    def broadcast_from(self, event: str, payload: Any = None) -> None:
        """Send a broadcast to every member of the topic except this client."""
        self._assert_joined("broadcast_from")
        self.server.pubsub.broadcast(
            self.topic, event, _payload(payload), exclude=self._process
        )

    def send_info(self, message: Any) -> None:
        """Post ``message`` to this channel's ``handle_info`` (after the
        handlers already queued; posted during ``join``, after the join)."""
        if self._process is not None:
            self._process.post_info(message)

    def send_after(self, delay: float, message: Any) -> asyncio.TimerHandle:
        """``send_info(message)`` in ``delay`` seconds; cancel the handle to
        take it back."""
        loop = asyncio.get_running_loop()
        return loop.call_later(delay, self.send_info, message)

    def on_cleanup(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` as soon as the channel ends, before ``terminate``
        (presence uses it to untrack). It must not raise or block."""
        self._cleanups.append(callback)

    @property
    def closed(self) -> bool:
        """Whether the channel has ended (or its join failed)."""
        return not self._is_live()

    def _assert_joined(self, what: str) -> None:
        if not self.joined:
            raise RuntimeError(
                f"{what} can only be called after the socket has finished "
                "joining; to push a message on join, call socket.send_info() "
                "in join and push from handle_info"
            )

    def _is_live(self) -> bool:
        process = self._process
        return process is not None and not process.ended

    def __repr__(self) -> str:
        return f"<ChannelSocket topic={self.topic!r} join_ref={self.join_ref!r}>"


def _payload(payload: Any) -> Any:
    if payload is None:
        return {}
    if isinstance(payload, (bytearray, memoryview)):
        return bytes(payload)
    return payload
