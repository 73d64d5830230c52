"""The Phoenix message and the protocol's names and defaults (PROTOCOL §1).

Like phoenix.js ``constants.js``: one place for every wire name and default.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_VSN",
    "PHX_CLOSE",
    "PHX_ERROR",
    "PHX_JOIN",
    "PHX_LEAVE",
    "PHX_REPLY",
    "Message",
    "default_reconnect_after",
    "default_rejoin_after",
]

DEFAULT_VSN = "2.0.0"
DEFAULT_TIMEOUT = 10.0
DEFAULT_HEARTBEAT_INTERVAL = 30.0
WS_CLOSE_NORMAL = 1000

PHX_CLOSE = "phx_close"
PHX_ERROR = "phx_error"
PHX_JOIN = "phx_join"
PHX_REPLY = "phx_reply"
PHX_LEAVE = "phx_leave"
HEARTBEAT_TOPIC = "phoenix"
HEARTBEAT_EVENT = "heartbeat"

AUTH_TOKEN_PREFIX = "base64url.bearer.phx."

_RECONNECT_SCHEDULE = (0.010, 0.050, 0.100, 0.150, 0.200, 0.250, 0.500, 1.0, 2.0)
_REJOIN_SCHEDULE = (1.0, 2.0, 5.0)


class Message(NamedTuple):
    """One frame of the protocol, decoded.

    A NamedTuple rather than a frozen dataclass: it is built for every inbound
    frame, and tuple construction is the cheapest immutable record CPython has.
    """

    join_ref: str | None
    ref: str | None
    topic: str
    event: str
    payload: Any


def default_reconnect_after(tries: int) -> float:
    """phoenix.js reconnect schedule: 10, 50, ... 2000 ms, then 5 s forever."""
    if 1 <= tries <= len(_RECONNECT_SCHEDULE):
        return _RECONNECT_SCHEDULE[tries - 1]
    return 5.0


def default_rejoin_after(tries: int) -> float:
    """phoenix.js rejoin schedule: 1, 2, 5 s, then 10 s forever."""
    if 1 <= tries <= len(_REJOIN_SCHEDULE):
        return _REJOIN_SCHEDULE[tries - 1]
    return 10.0
