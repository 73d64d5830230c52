"""Falling back from websocket to long-poll (PROTOCOL §5.12).

With ``longpoll_fallback_after=S``: if the websocket is not open within S
seconds, fails before opening, or opens but does not answer a heartbeat
within S seconds, the socket switches to long-poll, and keeps it for its
later reconnects (phoenix.js keeps it for the browser session).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .timers import TimerHandle

if TYPE_CHECKING:
    from .socket import Socket

__all__ = ["LongPollFallback"]


class LongPollFallback:
    __slots__ = ("_socket", "_threshold", "_timer", "healthy")

    def __init__(self, socket: Socket, threshold: float) -> None:
        self._socket = socket
        self._threshold = threshold
        self._timer: TimerHandle | None = None
        self.healthy = False  # the websocket answered a heartbeat

    @property
    def active(self) -> bool:
        return self._socket.transport == "websocket" and not self.healthy

    def arm(self) -> None:
        """A websocket attempt starts: give it ``threshold`` seconds."""
        if self.active:
            self._restart_timer()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def opened(self) -> None:
        """The websocket opened: it must still answer a heartbeat in time."""
        if self.active:
            self._restart_timer()
            self._socket._probe(self._passed)

    def failed(self) -> bool:
        """The websocket failed before opening: switch now. True if switched."""
        if self.active and not self._socket._established:
            self.switch("websocket error")
            return True
        return False

    def switch(self, why: str) -> None:
        self.cancel()
        if not self.active:
            return
        self._socket._log.info("falling back to LongPoll (%s)", why)
        self._socket._replace_transport("longpoll")

    def _passed(self) -> None:
        self._socket._log.info("connected to primary (websocket)")
        self.healthy = True
        self.cancel()

    def _restart_timer(self) -> None:
        self.cancel()
        self._timer = self._socket._timers.call_later(
            self._threshold, lambda: self.switch("websocket too slow")
        )
