"""The connect hook: accept or refuse a connection before it upgrades.

Like ``connect/3`` of a ``Phoenix.Socket``, the hook sees the connect params
(the query string, ``vsn`` included) and connection info, and
returns :func:`accept` (optionally with assigns copied into every channel
socket, and an ``id``) or :func:`refuse`. A refused websocket upgrade is
answered ``HTTP/1.1 403 Forbidden`` with an empty body, as Phoenix does
(transcript ``v2_token_bad_websocket``); a refused long-poll session gets
HTTP 200 with ``{"status":403}`` (``lp_v2_connect_refused_token_bad``). The
hook may be a plain function or a coroutine function; a plain one costs no
task::

    def connect(info: ConnectInfo) -> Accepted | Refused:
        if info.params.get("token") != "s3cret":
            return refuse()
        return accept({"user_id": info.params.get("user")})

    server = Server(channels, connect=connect)

Auth tokens. phoenix.js 1.8 sends an ``authToken`` as a second websocket
subprotocol ``base64url.bearer.phx.<base64 without padding>``; it arrives
decoded in :attr:`ConnectInfo.auth_token`. Like Phoenix 1.7.24 (which has no
``auth_token`` support and configures no subprotocols) the server does not
echo any subprotocol back unless ``Server(subprotocols=[...])`` names some
(transcript ``v2_subprotocol_auth_token``, fact 13).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..message import AUTH_TOKEN_PREFIX

__all__ = [
    "Accepted",
    "ConnectHook",
    "ConnectInfo",
    "Refused",
    "accept",
    "accept_all",
    "decode_auth_token",
    "refuse",
]


@dataclass(frozen=True)
class ConnectInfo:
    """What the connect hook knows about a connection.

    Attributes:
        params: connect params: the query string, last value winning, as
            Plug parses it (``vsn`` included).
        headers: request headers, names lower-cased, repeated headers joined
            with ``", "``.
        path: the request target (path and query).
        transport: ``"websocket"`` or ``"longpoll"``.
        peer: the client address (``getpeername()``), if known.
        auth_token: the phoenix.js ``authToken``, or ``None``: decoded from
            ``Sec-WebSocket-Protocol``, or the ``X-Phoenix-AuthToken``
            header of the long-poll GET that created the session.
        vsn: the negotiated serializer version, ``"1.0.0"`` or ``"2.0.0"``.
    """

    params: Mapping[str, str]
    headers: Mapping[str, str]
    path: str
    transport: str = "websocket"
    peer: Any = None
    auth_token: str | None = None
    vsn: str = "2.0.0"


@dataclass(frozen=True)
class Accepted:
    """The connection is accepted.

    Attributes:
        assigns: initial assigns of every channel socket of the connection.
        id: an optional connection id; :meth:`Server.disconnect` closes every
            connection with that id (Phoenix's socket ``id/1``).
    """

    assigns: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class Refused:
    """The connection is refused (HTTP 403, empty body)."""


def accept(
    assigns: Mapping[str, Any] | None = None, *, id: str | None = None
) -> Accepted:
    """Accept the connection, with optional assigns and connection id."""
    return Accepted(dict(assigns or {}), id)


_REFUSED = Refused()


def refuse() -> Refused:
    """Refuse the connection."""
    return _REFUSED


ConnectResult = Accepted | Refused
ConnectHook = Callable[[ConnectInfo], ConnectResult | Awaitable[ConnectResult]]


def accept_all(info: ConnectInfo) -> Accepted:
    """The default hook: accept every connection, no assigns."""
    return Accepted()


def parse_params(target: str) -> dict[str, str]:
    """The connect params of a request target (``/socket/websocket?a=1``)."""
    query = urlsplit(target).query
    return dict(parse_qsl(query, keep_blank_values=True))


def fold_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-case header names; join repeated headers with ``", "``."""
    headers: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def decode_auth_token(protocols: str | None) -> str | None:
    """The token in a ``Sec-WebSocket-Protocol`` value, or ``None``.

    phoenix.js encodes it with ``btoa(token)`` minus ``=`` padding, which is
    standard base64 despite the ``base64url`` prefix; both alphabets are
    accepted here. An undecodable token counts as no token.
    """
    if not protocols:
        return None
    for item in protocols.split(","):
        item = item.strip()
        if item.startswith(AUTH_TOKEN_PREFIX):
            encoded = item[len(AUTH_TOKEN_PREFIX) :].translate(_URLSAFE_TO_STD)
            encoded += "=" * (-len(encoded) % 4)
            try:
                return base64.b64decode(encoded, validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                return None
    return None


_URLSAFE_TO_STD = str.maketrans("-_", "+/")
