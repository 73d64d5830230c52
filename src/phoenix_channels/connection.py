"""A socket's connection: its states, its send buffer entries, its close event,
and the Link that stands for one transport attempt.

Theory of operation. Each transport attempt gets a :class:`Link`; the socket
keeps the current one. A link forwards its transport's events to the socket
only while it is current, so a replaced or retired connection can still
finish closing without touching the socket (phoenix.js 1.8.16 ``Connection``
does the same). Every change of the socket's connection state goes through
:data:`TRANSITIONS`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from .channel import Channel, ChannelState
from .serializer import Frame
from .timers import TimerHandle
from .transports.base import Transport

if TYPE_CHECKING:
    from .socket import Socket

__all__ = [
    "TEARDOWN_LIMIT",
    "TRANSITIONS",
    "Buffered",
    "CloseEvent",
    "Link",
    "SocketState",
    "SocketTrigger",
    "outdated",
]

#: Longest wait for a transport to report its close after ``close()``; past it
#: the connection is treated as closed (phoenix.js polls 2 x 1.5 s at most).
TEARDOWN_LIMIT = 3.0


class SocketState(str, enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class SocketTrigger(enum.Enum):
    CONNECT = "connect"
    OPENED = "opened"
    CLOSE = "close"  # we start closing
    CLOSED = "closed"  # the transport reports it is closed
    REPLACE = "replace"  # the transport is swapped (long-poll fallback)


_S, _T = SocketState, SocketTrigger

#: Every connection state change.
TRANSITIONS: dict[tuple[SocketState, SocketTrigger], SocketState] = {
    (_S.CLOSED, _T.CONNECT): _S.CONNECTING,
    (_S.CLOSING, _T.CONNECT): _S.CONNECTING,  # connect() while the old one closes
    (_S.CONNECTING, _T.OPENED): _S.OPEN,
    (_S.CONNECTING, _T.CLOSE): _S.CLOSING,
    (_S.OPEN, _T.CLOSE): _S.CLOSING,
    (_S.CONNECTING, _T.CLOSED): _S.CLOSED,
    (_S.OPEN, _T.CLOSED): _S.CLOSED,
    (_S.CLOSING, _T.CLOSED): _S.CLOSED,
    **{(state, _T.REPLACE): _S.CLOSED for state in SocketState},
}


class Buffered(NamedTuple):
    """A frame waiting in the send buffer, with the join it was made for."""

    data: Frame
    channel: Channel | None
    join_ref: str | None


def outdated(join_ref: str | None, channel: Channel | None) -> bool:
    """Made for an earlier join of its channel, or the channel closed since."""
    return channel is not None and (
        join_ref != channel.join_ref or channel._state is ChannelState.CLOSED
    )


class CloseEvent(NamedTuple):
    """What ``on_close`` callbacks get."""

    code: int
    reason: str
    was_clean: bool


class Link:
    """One transport attempt: forwards its events while it is current."""

    __slots__ = (
        "closing",
        "conn",
        "guard",
        "heard",
        "opened",
        "reported",
        "safe_url",
        "socket",
        "then",
        "tries_at_open",
    )

    def __init__(self, socket: Socket, safe_url: str) -> None:
        self.socket = socket
        self.safe_url = safe_url
        self.conn: Transport | None = None
        self.opened = False
        self.heard = False  # a frame arrived over it
        self.tries_at_open = 0
        self.closing = False
        self.reported = False  # transport_close seen
        self.guard: TimerHandle | None = None
        self.then: list[Callable[[], None]] = []

    def transport_open(self) -> None:
        if not self.reported:
            self.socket._on_conn_open(self)

    def transport_message(self, data: Frame) -> None:
        if self.socket._link is self:
            self.heard = True
            self.socket._on_conn_message(data)

    def transport_error(self, error: BaseException) -> None:
        if self.socket._link is self:
            self.socket._on_conn_error(error)

    def transport_close(self, code: int, reason: str) -> None:
        if self.reported:
            return
        self.reported = True
        if self.guard is not None:
            self.guard.cancel()
        self.socket._on_conn_close(self, code, reason)
