"""In-process PubSub: topic -> subscribers, with Phoenix's fastlane.

Phoenix delivers a broadcast straight to each subscriber's transport, encoded
once per serializer rather than once per subscriber, and without passing
through the channel process. That is why the sender of a ``broadcast`` sees
the broadcast frame *before* its own reply (transcripts README, fact 2): the
broadcast is written while the handler is still running.

A broadcast frame is ``[null, null, topic, event, payload]`` (vsn 2.0.0; a
``bytes`` payload becomes a kind-2 binary frame) or
``{"event", "payload", "ref": null, "topic"}`` (vsn 1.0.0).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ..message import Message
from .wire import wire_for

__all__ = ["PreparedFrame", "PubSub", "Subscriber"]

logger = logging.getLogger("phoenix_channels.server")


class PreparedFrame:
    """One encoded outbound frame, shared by every subscriber of a version.

    Attributes:
        data: the frame, ``str`` for a text frame or ``bytes`` for binary.
        wire: transport-specific cache (the websocket transport stores the
            framed bytes here, so a fan-out frames the message only once).
    """

    __slots__ = ("data", "wire")

    def __init__(self, data: str | bytes) -> None:
        self.data = data
        self.wire: bytes | None = None


class Subscriber(Protocol):
    """Anything that can receive broadcasts: a joined channel, usually."""

    @property
    def vsn(self) -> str:
        """The serializer version frames must be encoded with."""
        ...

    def deliver(self, frame: PreparedFrame) -> None:
        """Send an already encoded broadcast frame to the client."""
        ...


class PubSub:
    """Topic subscriptions of one server; iteration follows subscription order."""

    def __init__(self) -> None:
        self._topics: dict[str, dict[Subscriber, None]] = {}

    def subscribe(self, topic: str, subscriber: Subscriber) -> None:
        """Add ``subscriber`` to ``topic`` (idempotent)."""
        self._topics.setdefault(topic, {})[subscriber] = None

    def unsubscribe(self, topic: str, subscriber: Subscriber) -> None:
        """Remove ``subscriber`` from ``topic`` (idempotent)."""
        subscribers = self._topics.get(topic)
        if subscribers is not None:
            subscribers.pop(subscriber, None)
            if not subscribers:
                del self._topics[topic]

    def subscribers(self, topic: str) -> list[Subscriber]:
        """The current subscribers of ``topic``."""
        return list(self._topics.get(topic, ()))

    def broadcast(
        self,
        topic: str,
        event: str,
        payload: Any,
        *,
        exclude: Subscriber | None = None,
    ) -> int:
        """Deliver ``event`` to every subscriber of ``topic`` but ``exclude``.

        Returns:
            How many subscribers the frame was delivered to.

        Raises:
            TypeError, ValueError: ``payload`` cannot be encoded as JSON.
        """
        subscribers = self._topics.get(topic)
        if not subscribers:
            return 0
        msg = Message(None, None, topic, event, payload)
        binary = isinstance(payload, (bytes, bytearray, memoryview))
        frames: dict[str, PreparedFrame | None] = {}
        delivered = 0
        # A snapshot: delivering may close a connection and unsubscribe it.
        for subscriber in list(subscribers):
            if subscriber is exclude:
                continue
            vsn = subscriber.vsn
            if vsn not in frames:
                frames[vsn] = self._prepare(msg, vsn, binary)
            frame = frames[vsn]
            if frame is not None:
                subscriber.deliver(frame)
                delivered += 1
        return delivered

    @staticmethod
    def _prepare(msg: Message, vsn: str, binary: bool) -> PreparedFrame | None:
        if binary and vsn == "1.0.0":
            # Phoenix would crash the broadcaster here (its V1 serializer
            # cannot encode binaries); skipping v1 subscribers is kinder.
            logger.warning(
                "! binary broadcast on %r not sent to vsn 1.0.0 subscribers",
                msg.topic,
            )
            return None
        return PreparedFrame(wire_for(vsn).encode(msg))
