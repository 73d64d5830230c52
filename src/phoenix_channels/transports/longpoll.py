"""The long-poll transport (PROTOCOL §8): not implemented yet."""

from __future__ import annotations

from .base import ConnectOptions, Transport, TransportListener

__all__ = ["LongPollTransport"]


def LongPollTransport(  # noqa: N802 - stands in for the class to come
    options: ConnectOptions, listener: TransportListener
) -> Transport:
    raise NotImplementedError("the long-poll transport is not available yet")
