"""The errors phoenix_channels raises.

The tree::

    PhoenixError                    base of everything below
    ├── ConnectError                the first connection attempt failed
    ├── PushError                   a reply whose status is not "ok"
    │   └── JoinError               ... to a join: the server refused it
    ├── PushTimeout                 no reply in time (also a TimeoutError)
    └── BufferFull                  too much waiting to be sent (also a BufferError)

Misuse of the API (pushing before ``join()``, joining twice, a negative
timeout) raises the builtin ``RuntimeError``/``ValueError`` at the call, with a
message that says what to do instead. A misbehaving server never raises into
user code: it gets a logged warning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .push import Push

__all__ = [
    "BufferFull",
    "ConnectError",
    "JoinError",
    "PhoenixError",
    "PushError",
    "PushTimeout",
]


class PhoenixError(Exception):
    """Base class of every error raised by phoenix_channels."""


class ConnectError(PhoenixError):
    """The first connection attempt failed (refused, rejected handshake, TLS, DNS).

    Later drops are not raised: the socket reconnects on its own.
    """


class PushError(PhoenixError):
    """The server replied with a status other than ``"ok"``.

    Attributes:
        status: the reply status, e.g. ``"error"``.
        response: the reply's response payload.
        push: the :class:`~phoenix_channels.Push` that got the reply.
    """

    def __init__(self, push: Push, status: str, response: Any) -> None:
        super().__init__(push, status, response)
        self.push = push
        self.status = status
        self.response = response

    def __str__(self) -> str:
        return (
            f"{self.push.event!r} on {self.push.channel.topic!r} got status "
            f"{self.status!r}: {_short(self.response)}"
        )


class JoinError(PushError):
    """The server refused to join the channel (the join reply was not ``"ok"``)."""


class PushTimeout(PhoenixError, TimeoutError):
    """No reply arrived within the push's timeout.

    Attributes:
        push: the :class:`~phoenix_channels.Push` that timed out.
    """

    def __init__(self, push: Push) -> None:
        super().__init__(push)
        self.push = push

    def __str__(self) -> str:
        return (
            f"{self.push.event!r} on {self.push.channel.topic!r} got no reply "
            f"within {self.push.timeout:g} s; raise the timeout or call "
            "push.resend()/push.retry()"
        )


class BufferFull(PhoenixError, BufferError):
    """Too many pushes or frames are waiting to be sent (offline, not joined).

    Raised at the call, before anything is queued. The limits are the
    Socket's ``max_buffered_pushes`` (per channel) and ``max_send_buffer``.
    """


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
