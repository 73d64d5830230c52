"""Test doubles: a fake clock and an in-memory transport.

Like phoenix.js's own tests (jest fake timers + WSMock), these let the whole
protocol core run deterministically, with no network and no real time.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any

from phoenix_channels import Channel, Socket
from phoenix_channels.transports.base import ConnectOptions, TransportListener


class FakeHandle:
    __slots__ = ("callback", "cancelled", "seq", "when")

    def __init__(self, when: float, seq: int, callback: Callable[[], None]) -> None:
        self.when = when
        self.seq = seq
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: FakeHandle) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)


class FakeTimers:
    """A clock that only moves when told; due callbacks fire in order."""

    def __init__(self) -> None:
        self._now = 0.0
        self._heap: list[FakeHandle] = []
        self._seq = 0
        self.tasks: list[asyncio.Task[Any]] = []

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeHandle:
        self._seq += 1
        handle = FakeHandle(self._now + delay, self._seq, callback)
        heapq.heappush(self._heap, handle)
        return handle

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(coro))

    def advance(self, seconds: float) -> None:
        """Move the clock forward, firing every callback due by then."""
        target = self._now + seconds
        for _ in range(1_000_000):
            if not self._heap or self._heap[0].when > target:
                break
            handle = heapq.heappop(self._heap)
            if handle.cancelled:
                continue
            self._now = handle.when
            handle.callback()
        else:  # pragma: no cover
            raise RuntimeError("timer storm: more than a million callbacks")
        self._now = target

    def pending(self) -> int:
        return sum(1 for h in self._heap if not h.cancelled)


class MemoryTransport:
    """A connection that records what the socket sends.

    The test drives the other side: ``open()``, ``receive(frame)``,
    ``server_close(code)``, ``fail(exc)``. ``close()`` from the socket is
    reported back at once (``auto_close``), as a closed browser socket would.
    """

    name = "WebSocket"
    skip_heartbeat = False

    def __init__(self, options: ConnectOptions, listener: TransportListener) -> None:
        self.options = options
        self.listener = listener
        self.sent: list[str | bytes] = []
        self.close_calls: list[tuple[int | None, str]] = []
        self.auto_close = True
        self.closed = False

    @property
    def url(self) -> str:
        return self.options.url

    @property
    def buffered_amount(self) -> int:
        return 0

    # socket side
    def send(self, data: str | bytes) -> None:
        if not self.closed:
            self.sent.append(data)

    def abort(self) -> None:
        self.server_close(1006, "")

    def close(self, code: int | None = None, reason: str = "") -> None:
        self.close_calls.append((code, reason))
        if self.auto_close:
            self.server_close(1005 if code is None else code, reason)

    # server side
    def open(self) -> None:
        self.listener.transport_open()

    def receive(self, frame: str | bytes | list[Any]) -> None:
        if isinstance(frame, list):
            frame = json.dumps(frame)
        self.listener.transport_message(frame)

    def server_close(self, code: int = 1000, reason: str = "") -> None:
        if not self.closed:
            self.closed = True
            self.listener.transport_close(code, reason)

    def fail(self, error: BaseException) -> None:
        self.listener.transport_error(error)

    def frames(self) -> list[Any]:
        """Sent text frames, decoded."""
        return [json.loads(f) for f in self.sent if isinstance(f, str)]


class LongPollMemoryTransport(MemoryTransport):
    """A MemoryTransport that presents itself as long-poll (no heartbeat)."""

    name = "LongPoll"
    skip_heartbeat = True


class Network:
    """Makes MemoryTransports for a socket and remembers them, newest last."""

    def __init__(self, kind: type[MemoryTransport] = MemoryTransport) -> None:
        self.kind = kind
        self.transports: list[MemoryTransport] = []

    def __call__(
        self, options: ConnectOptions, listener: TransportListener
    ) -> MemoryTransport:
        transport = self.kind(options, listener)
        self.transports.append(transport)
        return transport

    @property
    def conn(self) -> MemoryTransport:
        return self.transports[-1]

    def frames(self) -> list[Any]:
        """Text frames sent over every transport so far, decoded, in order."""
        return [frame for conn in self.transports for frame in conn.frames()]


def make_socket(
    endpoint: str = "ws://example.com/socket", **options: Any
) -> tuple[Socket, FakeTimers, Network]:
    timers = options.pop("timers", None) or FakeTimers()
    network = options.pop("network", None) or Network()
    options.setdefault("logger", logging.getLogger("phoenix_channels.test"))
    socket = Socket(endpoint, transport=network, timers=timers, **options)
    return socket, timers, network


def open_socket(**options: Any) -> tuple[Socket, FakeTimers, Network]:
    """A socket whose (fake) connection is open, without awaiting connect()."""
    socket, timers, network = make_socket(**options)
    socket._transport_connect()
    network.conn.open()
    return socket, timers, network


def reply(
    join_ref: str | None,
    ref: str | None,
    topic: str,
    status: str = "ok",
    response: Any = None,
) -> list[Any]:
    """A phx_reply frame (vsn 2.0.0)."""
    return [
        join_ref,
        ref,
        topic,
        "phx_reply",
        {"status": status, "response": {} if response is None else response},
    ]


async def connect(socket: Socket, network: Network) -> MemoryTransport:
    """``await socket.connect()``, with the (fake) server accepting at once."""
    task = asyncio.ensure_future(socket.connect())
    await asyncio.sleep(0)  # one loop step: connect() makes its transport
    if not task.done():
        network.conn.open()
    await task
    return network.conn


def join_ok(
    socket: Socket,
    network: Network,
    topic: str = "topic",
    params: Any = None,
    response: Any = None,
) -> Channel:
    """A channel joined over the open fake connection (join replied ok)."""
    channel = socket.channel(topic, params)
    channel.join()
    ref = channel.join_ref
    network.conn.receive(reply(ref, ref, topic, "ok", response))
    assert channel.state == "joined"
    return channel


def joining(timeout: float = 10.0, **options: Any) -> SimpleNamespace:
    """An open socket with channel "topic" joining (join ref "3", no reply yet)."""
    socket, timers, network = open_socket(timeout=timeout, **options)
    channel = socket.channel("topic", {"one": "two"})
    join = channel.join()
    return SimpleNamespace(
        socket=socket, timers=timers, network=network, channel=channel, join=join
    )


def joined(timeout: float = 10.0, **options: Any) -> SimpleNamespace:
    """An open socket with channel "topic" joined (join ref "3")."""
    socket, timers, network = open_socket(timeout=timeout, **options)
    channel = join_ok(socket, network, "topic", {"one": "two"})
    return SimpleNamespace(
        socket=socket, timers=timers, network=network, channel=channel
    )


async def wait_for(push: Any) -> Any:
    """``await push`` as a coroutine, so that it can run as a task."""
    return await push


def events(conn: MemoryTransport, topic: str | None = None) -> list[str]:
    """The events of the text frames sent on ``conn`` (for ``topic``)."""
    return [f[3] for f in conn.frames() if topic is None or f[2] == topic]


def channels_of(socket: Socket) -> list[Channel]:
    """The channels the socket routes messages to, in creation order per topic."""
    return [channel for chans in socket._channels.values() for channel in chans]


class Problems(logging.Handler):
    """Collects what the library logs as an error, or as a server surprise."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR or message.startswith("! ignored"):
            self.records.append(message)
