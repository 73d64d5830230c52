"""The Transport interface between the Socket and the network.

A transport is made by a :data:`TransportFactory` and starts connecting at
once, in the background. It reports to its :class:`TransportListener`:

- ``transport_open()`` once, when frames can flow;
- ``transport_message(data)`` for each frame (``str`` text, ``bytes`` binary);
- ``transport_error(exc)`` for failures worth reporting (zero or more times);
- ``transport_close(code, reason)`` exactly once, last, whatever happened
  (a failed open included), within a bounded time after ``close()``.

``send`` never blocks and never raises for a closed connection (the frame is
dropped; the close report follows). Phoenix semantics live in the Socket; a
transport only moves frames, as phoenix.js ``WebSocket``/``LongPoll`` do.
"""

from __future__ import annotations

import logging
import ssl as ssl_module
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "ConnectOptions",
    "Transport",
    "TransportFactory",
    "TransportListener",
    "verification_disabled",
]

Frame = str | bytes


class TransportListener(Protocol):
    def transport_open(self) -> None: ...

    def transport_message(self, data: Frame) -> None: ...

    def transport_error(self, error: BaseException) -> None: ...

    def transport_close(self, code: int, reason: str) -> None: ...


class Transport(Protocol):
    #: "WebSocket" or "LongPoll", as phoenix.js names them in its logs.
    name: str
    #: LongPoll has no client heartbeat (PROTOCOL §5.7).
    skip_heartbeat: bool

    def send(self, data: Frame) -> None: ...

    def close(self, code: int | None = None, reason: str = "") -> None: ...

    def abort(self) -> None:
        """Drop the connection now, with no closing handshake."""
        ...

    @property
    def buffered_amount(self) -> int:
        """Bytes accepted by ``send`` but not yet handed to the network."""
        ...


@dataclass
class ConnectOptions:
    """What a transport needs to connect; built by the Socket at each connect."""

    url: str
    #: The URL with secrets redacted, for logs and error messages.
    safe_url: str
    protocols: list[str] | None
    headers: Mapping[str, str]
    ssl: ssl_module.SSLContext | bool | None
    #: Seconds allowed for the opening handshake (and long-poll requests).
    open_timeout: float
    logger: logging.Logger
    #: Largest inbound message accepted, in bytes (None: no limit).
    max_size: int | None = 2**24
    extra: dict[str, object] = field(default_factory=dict)


TransportFactory = Callable[[ConnectOptions, TransportListener], Transport]


def verification_disabled(options: ConnectOptions) -> bool:
    """``ssl=False``: certificates go unchecked, which is said in the log."""
    if options.ssl is not False:
        return False
    options.logger.warning(
        "! TLS certificate verification is disabled (ssl=False) for %s",
        options.safe_url,
    )
    return True
