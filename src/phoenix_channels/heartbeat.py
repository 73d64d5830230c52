"""The client heartbeat and dead-connection detection (PROTOCOL §5.7).

The first beat goes out ``interval`` after open, each later one ``interval``
after the previous *reply* (phoenix #4309: timed from the reply, not the
send). A beat not answered within ``interval`` means the connection is dead.
"""

from __future__ import annotations

from collections.abc import Callable

from .timers import TimerHandle, Timers

__all__ = ["Heartbeat"]


class Heartbeat:
    __slots__ = (
        "_beat_timer",
        "_is_connected",
        "_on_timeout",
        "_send",
        "_timeout_timer",
        "_timers",
        "interval",
        "pending_ref",
    )

    def __init__(
        self,
        timers: Timers,
        interval: float,
        send: Callable[[], str],
        is_connected: Callable[[], bool],
        on_timeout: Callable[[], None],
    ) -> None:
        self._timers = timers
        self.interval = interval
        self._send = send  # sends one heartbeat frame, returns its ref
        self._is_connected = is_connected
        self._on_timeout = on_timeout
        self.pending_ref: str | None = None
        self._beat_timer: TimerHandle | None = None
        self._timeout_timer: TimerHandle | None = None

    def start(self) -> None:
        """On open: forget any pending beat, beat after one interval."""
        self.pending_ref = None
        self.stop()
        self._beat_timer = self._timers.call_later(self.interval, self._beat)

    def stop(self) -> None:
        """On close: no more beats, no timeout."""
        if self._beat_timer is not None:
            self._beat_timer.cancel()
            self._beat_timer = None
        if self._timeout_timer is not None:
            self._timeout_timer.cancel()
            self._timeout_timer = None

    def received(self, ref: str) -> None:
        """A frame with ``ref`` arrived: if it answers the pending beat, the
        next beat goes one interval from now."""
        if ref == self.pending_ref:
            self.start()

    def _beat(self) -> None:
        self._beat_timer = None
        if self.pending_ref is not None and not self._is_connected():
            return
        self.pending_ref = self._send()
        self._timeout_timer = self._timers.call_later(self.interval, self._expire)

    def _expire(self) -> None:
        self._timeout_timer = None
        if self.pending_ref is not None:
            self.pending_ref = None
            self._on_timeout()
