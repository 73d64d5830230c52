"""One joined channel: a mailbox and a task, like a Phoenix channel process.

Theory of operation. The connection hands every client push, ``phx_leave``
and posted message for a joined topic to that topic's :class:`ChannelProcess`
(:meth:`~ChannelProcess.push_in`, :meth:`~ChannelProcess.leave`,
:meth:`~ChannelProcess.post_info`). They go into a FIFO mailbox that one
task per channel drains, awaiting one handler at a time. That gives Phoenix's
blocking semantics (transcripts README, fact 11): a ``slow`` handler delays
later pushes on its own topic only, while the connection keeps answering
heartbeats and other topics.

A channel ends in exactly one of four ways, and :attr:`ended` is set first
so that nothing is sent for it afterwards:

- ``stop`` from a handler, or a client ``phx_leave`` (reason ``"left"``):
  the reply, then ``phx_close`` (or ``phx_error`` for an abnormal reason);
- an exception in a handler: only ``phx_error`` ``{}`` (fact 3);
- :meth:`shutdown` from outside (duplicate join, closed connection, server
  stop): the task is cancelled and the caller decides what the client sees.

In every case :meth:`SocketConnection.channel_ended` unsubscribes the
channel and runs its cleanups (presence leaves) before ``terminate`` runs.
Broadcasts bypass the mailbox (fastlane, see :mod:`.pubsub`).

The mailbox holds at most ``Server(max_mailbox=...)`` client messages
(pushes and leaves; Phoenix has no bound): one more means the client sends
faster than the channel handles, and the connection is closed with 1013
(:meth:`~.connection.SocketConnection.overloaded`). What the server posts to
itself (``send_info``) is not counted: that is the channel's own doing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from ..message import Message
from .channel import (
    ChannelSocket,
    NoReply,
    Reply,
    ServerChannel,
    Stop,
    TerminateReason,
    is_clean_stop,
    ok,
)
from .pubsub import PreparedFrame

if TYPE_CHECKING:
    from .connection import SocketConnection

__all__ = ["ChannelProcess"]

logger = logging.getLogger("phoenix_channels.server")

_IN, _LEAVE, _INFO = 0, 1, 2
TERMINATE_TIMEOUT = 5.0  # Phoenix waits 5 s for a duplicate channel to exit


class ChannelProcess:
    """The running side of one joined channel.

    Attributes:
        topic: the joined topic.
        socket_join_ref: the ``join_ref`` the join frame carried (may be
            ``None``); the connection's ``phx_close``/``phx_error`` frames use
            it, whereas replies and pushes use ``socket.join_ref`` (fact 8).
        socket: the :class:`ChannelSocket` passed to the handlers.
        ended: set once the channel has ended; nothing is sent after that.
        detached: set once the connection has forgotten the channel.
    """

    def __init__(
        self,
        conn: SocketConnection,
        channel: ServerChannel,
        socket: ChannelSocket,
        socket_join_ref: Any,
    ) -> None:
        self.topic = socket.topic
        self.socket_join_ref = socket_join_ref
        self.socket = socket
        self.channel = channel
        self.ended = False
        self.detached = False
        #: Serializer version of the connection (pubsub encodes per version).
        self.vsn = conn.wire.vsn
        self._conn = conn
        self._mailbox: deque[tuple[int, Any]] = deque()
        self._from_client = 0  # client messages in the mailbox
        self._max_mailbox = conn.server.max_mailbox
        self._wakeup: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._terminated = False
        socket._process = self

    # --- Subscriber (pubsub fastlane) -----------------------------------------

    def deliver(self, frame: PreparedFrame) -> None:
        """Write a broadcast frame straight to the connection."""
        if not self.ended:
            self._conn.deliver(frame)

    # --- mailbox --------------------------------------------------------------

    def start(self) -> None:
        """Start draining the mailbox (after the join reply was sent)."""
        self._task = self._conn.server.spawn(self._run())

    def push_in(self, msg: Message) -> None:
        """Queue a client push for ``handle_in``."""
        self._post(_IN, msg)

    def leave(self, msg: Message) -> None:
        """Queue a client ``phx_leave``: reply ok ``{}``, then close."""
        self._post(_LEAVE, msg)

    def post_info(self, message: Any) -> None:
        """Queue a message for ``handle_info``."""
        self._post(_INFO, message)

    def _post(self, kind: int, value: Any) -> None:
        if self.ended:
            return
        if kind != _INFO:
            limit = self._max_mailbox
            if limit is not None and self._from_client >= limit:
                self._conn.overloaded(self)
                return
            self._from_client += 1
        self._mailbox.append((kind, value))
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        mailbox = self._mailbox
        try:
            while True:
                if not mailbox:
                    self._wakeup = loop.create_future()
                    await self._wakeup
                    self._wakeup = None
                    continue
                kind, value = mailbox.popleft()
                if kind != _INFO:
                    self._from_client -= 1
                if await self._dispatch(kind, value):
                    return
        except Exception as exc:
            logger.exception(
                "! channel %s on %r crashed", type(self.channel).__name__, self.topic
            )
            await self._end(clean=False, reason=exc)

    async def _dispatch(self, kind: int, value: Any) -> bool:
        """Run one mailbox item; ``True`` when the channel has ended."""
        socket = self.socket
        if kind == _IN:
            socket.ref = value.ref
            try:
                result = await self.channel.handle_in(
                    value.event, value.payload, socket
                )
            finally:
                socket.ref = None
            return await self._apply(result, value.ref, "handle_in")
        if kind == _LEAVE:
            # Phoenix: {:stop, {:shutdown, :left}, :ok, socket}.
            self._send_reply(value.ref, ok())
            await self._end(clean=True, reason="left")
            return True
        result = await self.channel.handle_info(value, socket)
        return await self._apply(result, None, "handle_info")

    async def _apply(self, result: object, ref: Any, callback: str) -> bool:
        if isinstance(result, NoReply):
            return False
        if isinstance(result, Reply) and callback == "handle_in":
            self._send_reply(ref, result)
            return False
        if isinstance(result, Stop):
            if result.reply is not None:
                if callback != "handle_in":
                    raise TypeError(f"{callback} cannot reply; use socket.push")
                self._send_reply(ref, result.reply)
            await self._end(clean=is_clean_stop(result.reason), reason=result.reason)
            return True
        expected = "reply(...), noreply() or stop(...)"
        if callback != "handle_in":
            expected = "noreply() or stop(...)"
        raise TypeError(
            f"{type(self.channel).__name__}.{callback} must return {expected}; "
            f"got {result!r}"
        )

    def _send_reply(self, ref: Any, result: Reply) -> None:
        response = result.response
        if isinstance(response, (bytearray, memoryview)):
            response = bytes(response)
        self._conn.emit_reply(
            self.socket.join_ref, ref, self.topic, result.status, response
        )

    # --- ending ---------------------------------------------------------------

    async def _end(self, *, clean: bool, reason: TerminateReason) -> None:
        self.ended = True
        self._conn.channel_ended(self, clean=clean)
        await self._terminate(reason)

    async def shutdown(self, reason: TerminateReason) -> None:
        """End the channel from outside: cancel its task, then ``terminate``.

        The caller has already detached the channel from the connection. A
        channel that was already ending by itself is left to finish.
        """
        was_ending = self.ended
        self.ended = True
        task = self._task
        if task is not None and not task.done():
            if not was_ending:
                task.cancel()
            await asyncio.wait({task}, timeout=TERMINATE_TIMEOUT)
        await self._terminate(reason)

    async def _terminate(self, reason: TerminateReason) -> None:
        if self._terminated:
            return
        self._terminated = True
        self._mailbox.clear()
        self._from_client = 0
        try:
            await asyncio.wait_for(
                self.channel.terminate(reason, self.socket), TERMINATE_TIMEOUT
            )
        except Exception:
            logger.exception(
                "! %s.terminate raised on %r", type(self.channel).__name__, self.topic
            )

    def __repr__(self) -> str:
        return f"<ChannelProcess {self.topic!r} ended={self.ended}>"
