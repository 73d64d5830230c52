"""Frame recorder: every frame of every connection, in order, for tests.

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
    """One websocket frame as it crossed the wire.

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
    """The frames of one websocket connection, oldest first.

    Attributes:
        index: position of the connection in :attr:`FrameRecorder.connections`.
        path: the request target of the upgrade (path and query).
        frames: every recorded frame, in wire order.
    """

    index: int
    path: str
    frames: list[RecordedFrame] = field(default_factory=list)

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

    def open(self, path: str) -> ConnectionRecord:
        """Start the record of a new connection."""
        record = ConnectionRecord(len(self.connections), path)
        self.connections.append(record)
        return record

    def clear(self) -> None:
        """Forget every record (connections still open keep recording)."""
        self.connections = []
