"""Frame recorder: every frame of every connection, in order, for tests.

Long-poll sessions are recorded too, one record per session: each frame a
POST carried is an ``"in"`` frame, each frame queued for a poll an ``"out"``
frame (when it is queued, as a websocket frame is recorded when it is sent).

Off by default (``Server(record_frames=True)`` turns it on); when off, each
frame costs one ``is None`` test. Differential tests use it to compare what
two clients sent for the same scenario::

    async with Server(channels, record_frames=True) as server:
        ...
    for conn in server.recorder.connections:
        sent = [f.data for f in conn.frames if f.direction == "in"]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["ConnectionRecord", "FrameRecorder", "RecordedFrame"]

Direction = Literal["in", "out"]
Kind = Literal["text", "binary", "close"]


@dataclass(frozen=True)
class RecordedFrame:
    """One frame as it crossed the wire.

    Attributes:
        direction: ``"in"`` (client to server) or ``"out"``.
        kind: ``"text"``, ``"binary"`` or ``"close"``.
        data: the text (``str``) or the bytes; for a close frame its reason.
            A text frame that was not valid UTF-8 is kept as ``bytes``.
        time: ``time.monotonic()`` when the frame was sent or received.
        code: the close code of a close frame, else ``None``.
    """

    direction: Direction
    kind: Kind
    data: str | bytes
    time: float
    code: int | None = None


@dataclass
class ConnectionRecord:
    """The frames of one connection (or long-poll session), oldest first.

    Attributes:
        index: position of the connection in :attr:`FrameRecorder.connections`.
        path: the request target of the upgrade, or of the long-poll GET
            that created the session (path and query).
        frames: every recorded frame, in wire order.
        transport: ``"websocket"`` or ``"longpoll"``.
    """

    index: int
    path: str
    frames: list[RecordedFrame] = field(default_factory=list)
    transport: str = "websocket"

    def add(
        self,
        direction: Direction,
        kind: Kind,
        data: str | bytes,
        code: int | None = None,
    ) -> None:
        """Append a frame stamped with the current time."""
        self.frames.append(RecordedFrame(direction, kind, data, time.monotonic(), code))

    def sent_by_client(self) -> list[str | bytes]:
        """Data of the client's text and binary frames, in order."""
        return [
            f.data for f in self.frames if f.direction == "in" and f.kind != "close"
        ]

    def sent_by_server(self) -> list[str | bytes]:
        """Data of the server's text and binary frames, in order."""
        return [
            f.data for f in self.frames if f.direction == "out" and f.kind != "close"
        ]


class FrameRecorder:
    """All connection records of one server, including closed connections."""

    def __init__(self) -> None:
        self.connections: list[ConnectionRecord] = []

    def open(self, path: str, transport: str = "websocket") -> ConnectionRecord:
        """Start the record of a new connection."""
        record = ConnectionRecord(len(self.connections), path, transport=transport)
        self.connections.append(record)
        return record

    def clear(self) -> None:
        """Forget every record (connections still open keep recording)."""
        self.connections = []
