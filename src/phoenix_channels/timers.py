"""Time, injected: the Timers interface, its asyncio implementation, RetryTimer.

Push timeouts, rejoin and reconnect backoff and heartbeats are Phoenix
semantics, so the protocol core needs a clock; it gets one through the small
:class:`Timers` interface instead of touching the event loop. Production uses
:class:`AsyncioTimers`; tests use a fake clock (``tests/fakes.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

__all__ = ["AsyncioTimers", "RetryTimer", "TimerHandle", "Timers", "fail", "settle"]


class TimerHandle(Protocol):
    """What ``call_later`` returns."""

    def cancel(self) -> None: ...


class Timers(Protocol):
    """The clock and scheduler the protocol core runs on."""

    def now(self) -> float:
        """Monotonic time in seconds (``loop.time()``)."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Call ``callback`` once after ``delay`` seconds, unless cancelled."""
        ...

    def create_future(self) -> asyncio.Future[Any]:
        """A future bound to the running loop, for ``await push``."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a coroutine returned by an ``async def`` user callback."""
        ...


class AsyncioTimers:
    """Timers on the running asyncio loop, looked up at each call.

    Looking the loop up lazily lets a Socket be built outside any loop (at
    import time, in a fixture) and used inside one.
    """

    def __init__(self, on_task_error: Callable[[BaseException], None]) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_task_error = on_task_error

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        # Keep a strong reference (the loop holds only weak ones) and retrieve
        # the outcome, so no "exception was never retrieved" is left behind.
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._on_task_error(task.exception())  # type: ignore[arg-type]


class RetryTimer:
    """A timer that counts its tries, like phoenix.js ``timer.js`` (PROTOCOL §2).

    ``schedule()`` arms it after ``backoff(tries + 1)`` seconds; when it fires
    it first increments ``tries``, then runs the callback. Rescheduling before
    it fires reuses the same delay; ``reset()`` cancels and zeroes ``tries``.
    """

    __slots__ = ("_backoff", "_callback", "_handle", "_timers", "tries")

    def __init__(
        self,
        timers: Timers,
        callback: Callable[[], None],
        backoff: Callable[[int], float],
    ) -> None:
        self._timers = timers
        self._callback = callback
        self._backoff = backoff
        self._handle: TimerHandle | None = None
        self.tries = 0

    @property
    def is_scheduled(self) -> bool:
        return self._handle is not None

    def reset(self) -> None:
        self.tries = 0
        self.cancel()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def schedule(self) -> float:
        """Arm the timer; returns the delay chosen."""
        self.cancel()
        delay = max(0.0, float(self._backoff(self.tries + 1)))
        self._handle = self._timers.call_later(delay, self._fire)
        return delay

    def _fire(self) -> None:
        self._handle = None
        self.tries += 1
        self._callback()


def settle(future: asyncio.Future[Any], result: Any = None) -> None:
    """Set ``result`` unless the future is already done (e.g. cancelled)."""
    if not future.done():
        future.set_result(result)


def fail(future: asyncio.Future[Any], error: BaseException) -> None:
    """Set ``error`` unless the future is already done."""
    if not future.done():
        future.set_exception(error)
