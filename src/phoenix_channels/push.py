"""Push: one message to a channel, and the reply it gets (PROTOCOL §3).

A push's *attempt* starts when its ref is minted (``send`` or buffering) and
ends exactly once: with the server's reply status, or with ``"timeout"`` made
here when no reply came in time. The timeout is delivered exactly like a
reply, so a late server reply finds no push and is dropped (PROTOCOL §3.5).
``resend`` starts a new attempt (new ref, new timer) and keeps the registered
callbacks; an attempt replaced by ``resend`` before it ended is abandoned and
fires nothing, while ``await push`` simply waits for the new one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Generator
from typing import TYPE_CHECKING, Any

from .callbacks import Callback, Registered, register
from .errors import JoinError, PushError, PushTimeout
from .message import PHX_JOIN

if TYPE_CHECKING:
    import asyncio

    from .channel import Channel

__all__ = ["Push", "check_timeout"]

Outcome = tuple[str, Any]


def check_timeout(timeout: object, name: str = "timeout") -> float:
    """A timeout in seconds: a non-negative number (``inf`` allowed)."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {timeout!r}")
    value = float(timeout)
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be zero or more seconds, got {timeout!r}")
    return value


class Push:
    """A message pushed to a channel; awaitable for its reply.

    Normally made by :meth:`Channel.push`, which also sends it.
    """

    __slots__ = (
        "_attempts",
        "_hooks",
        "_last",
        "_payload",
        "_ref",
        "_response",
        "_sent",
        "_status",
        "_timeout",
        "_timer",
        "_waiters",
        "channel",
        "duration",
        "event",
        "sent_at",
    )

    def __init__(
        self,
        channel: Channel,
        event: str,
        payload: dict[str, Any] | bytes | Callable[[], Any] | None,
        timeout: float,
    ) -> None:
        self.channel = channel
        self.event = event
        self._payload: Any = {} if payload is None else payload
        # channel.push has checked it already: a float that is >= 0 passes as is.
        if type(timeout) is not float or not timeout >= 0:
            timeout = check_timeout(timeout)
        self._timeout = timeout
        self._ref: str | None = None
        self._status: str | None = None
        self._response: Any = None
        self._hooks: list[tuple[str, Registered, bool]] | None = None
        self._timer: Any = None
        self._sent = False
        self._waiters: list[asyncio.Future[Outcome]] | None = None
        self._attempts = 0
        self._last: tuple[str, Any] | None = None  # outcome of the latest attempt
        #: loop time of the latest send, or None if never sent.
        self.sent_at: float | None = None
        #: seconds from the latest send to its terminal status, or None.
        self.duration: float | None = None

    # -- read-only view ----------------------------------------------------

    @property
    def payload(self) -> Any:
        """The payload (join params are re-read on every send)."""
        payload = self._payload
        return payload() if callable(payload) else payload

    @property
    def timeout(self) -> float:
        return self._timeout

    @property
    def ref(self) -> str | None:
        return self._ref

    @property
    def status(self) -> str | None:
        """The terminal status of the current attempt, or None while pending."""
        return self._status

    @property
    def response(self) -> Any:
        return self._response

    def __repr__(self) -> str:
        return (
            f"<Push {self.event!r} topic={self.channel.topic!r} ref={self._ref!r} "
            f"status={self._status!r}>"
        )

    # -- sending -----------------------------------------------------------

    def send(self) -> None:
        """Send the push (once); its reply or timeout ends the attempt.

        A push that already timed out is never put on the wire (PROTOCOL §3.2).

        Raises:
            RuntimeError: it was already sent; use :meth:`resend`.
        """
        if self._status == "timeout":
            return
        if self._sent:
            raise RuntimeError(
                "this push was already sent; call push.resend(timeout) "
                "to send it again with a new ref"
            )
        self._start_timeout()
        self._sent = True
        socket = self.channel.socket
        self.sent_at = socket._timers.now()
        try:
            socket._push(
                self.channel.topic, self.event, self.payload, self._ref,
                self.channel.join_ref, self.channel,
            )  # fmt: skip
        except BaseException:
            self._reset()
            raise

    def resend(self, timeout: float) -> None:
        """Send again with a new ref and a fresh ``timeout``; callbacks stay."""
        self._timeout = check_timeout(timeout)
        self._reset()
        self.send()

    def receive(self, status: str, callback: Callback) -> Push:
        """Call ``callback(response)`` when an attempt ends with ``status``.

        If the current attempt already ended with ``status`` the callback runs
        at once; it also stays registered for later attempts. Chainable.
        """
        if not isinstance(status, str):
            raise TypeError(f"status must be a string, got {status!r}")
        self._add_hook(status, register(callback), internal=False)
        return self

    # -- awaiting ----------------------------------------------------------

    def __await__(self) -> Generator[Any, None, Any]:
        """``await push``: the ok response, or raise PushError/PushTimeout."""
        if self._status is not None:
            return self._outcome(self._status, self._response)
        if self._attempts == 0:
            raise RuntimeError(
                "this push was never sent; call push.send() (channel.push() "
                "sends for you) before awaiting it"
            )
        future = self.channel.socket._timers.create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(future)
        status, response = yield from future.__await__()
        return self._outcome(status, response)

    def _outcome(self, status: str, response: Any) -> Any:
        if status == "ok":
            return response
        if status == "timeout":
            raise PushTimeout(self)
        error = JoinError if self.event == PHX_JOIN else PushError
        raise error(self, status, response)

    async def retry(
        self,
        attempts: int = 3,
        backoff: Callable[[int], float] | None = None,
        on: Collection[str] = ("timeout",),
    ) -> Any:
        """Await the push, resending while its status is in ``on``.

        Args:
            attempts: every attempt counts, the first included.
            backoff: attempt number that failed -> seconds to wait before the
                next one (default ``n * 1.0``).
            on: statuses worth another attempt.

        Returns:
            The ok response.

        Raises:
            PushError | PushTimeout: the last attempt's failure.
        """
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"attempts must be an int >= 1, got {attempts!r}")
        failed = 0
        while True:
            try:
                return await self
            except PushTimeout:
                if "timeout" not in on or failed + 1 >= attempts:
                    raise
            except PushError as exc:
                if exc.status not in on or failed + 1 >= attempts:
                    raise
            failed += 1
            delay = float(backoff(failed)) if backoff is not None else failed * 1.0
            await self.channel.socket._sleep(check_timeout(delay, "backoff"))
            self.resend(self._timeout)

    # -- internals (driven by Channel and Socket) --------------------------

    def _add_hook(self, status: str, cb: Registered, internal: bool) -> None:
        if self._hooks is None:
            self._hooks = []
        self._hooks.append((status, cb, internal))
        if not internal and self._status == status:
            self.channel.socket._invoke(cb, (self._response,))

    def _start_timeout(self) -> None:
        """Mint a new ref and arm the timer (PROTOCOL §3.4)."""
        socket = self.channel.socket
        if self._timer is not None:
            self._timer.cancel()
        if self._ref is not None:
            socket._in_flight.pop(self._ref, None)
        self._ref = ref = socket.make_ref()
        socket._in_flight[ref] = self
        self._attempts += 1
        self._timer = socket._timers.call_later(self._timeout, self._on_timeout)

    def _on_timeout(self) -> None:
        self._timer = None
        self._end("timeout", {})

    def _end(self, status: str, response: Any, *, internal_hooks: bool = True) -> None:
        """End the current attempt: record, then hooks, then awaiters."""
        socket = self.channel.socket
        if self._ref is not None:
            socket._in_flight.pop(self._ref, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._status = status
        self._response = response
        self._last = (status, response)
        if self.sent_at is not None:
            self.duration = socket._timers.now() - self.sent_at
        if self._hooks:
            for hook_status, cb, internal in tuple(self._hooks):
                if hook_status == status and (internal_hooks or not internal):
                    socket._invoke(cb, (response,))
        if self._waiters:
            self._wake(status, response)

    def _abandon(self, status: str, response: Any) -> None:
        """End the attempt for the user's hooks and awaiters, then forget it.

        Used when the channel errors mid-join: phoenix.js silently resets the
        join push there; ending the attempt keeps our exactly-once promise.
        """
        if self._status is None and self._ref is not None:
            self._end(status, response, internal_hooks=False)
        self._reset()

    def _release(self) -> None:
        """No attempt will follow: awaiters waiting for one get the last outcome."""
        if self._ref is None and self._waiters:
            self._wake(*(self._last or ("timeout", {})))

    def _wake(self, status: str, response: Any) -> None:
        """Hand an outcome to everyone awaiting the push."""
        waiters, self._waiters = self._waiters or [], None
        for future in waiters:
            if not future.done():
                future.set_result((status, response))

    def _reset(self) -> None:
        """Forget the current attempt (PROTOCOL §3.3); hooks stay."""
        if self._ref is not None:
            self.channel.socket._in_flight.pop(self._ref, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._ref = None
        self._status = None
        self._response = None
        self._sent = False

    @property
    def _is_pending(self) -> bool:
        return self._sent and self._status is None
