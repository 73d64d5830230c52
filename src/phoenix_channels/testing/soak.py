"""Soak testing: one socket, many channels, steady pushes, random faults.

A realtime client lives for days on flaky networks. :func:`run_soak` runs a
:class:`~phoenix_channels.Socket` with ``channels`` channels pushing at a
steady ``rate`` through a :class:`~.chaos.ChaosProxy` to a server, injects
faults at random (a fixed ``seed`` makes the schedule repeatable), and checks
throughout that nothing is silently lost::

    from phoenix_channels.testing import SoakConfig, run_soak

    report = await run_soak(SoakConfig(seconds=60, seed=7))
    print(report.format())
    assert report.ok, report.violations

With ``url=None`` (the default) it starts the bundled demo server itself,
which also allows server-side faults. Give it ``url="ws://host:port/socket"``
to soak your own server: network faults and ``churn`` by default, and a push
mix (``events``) and the statuses each event may end with (``outcomes``)
that your channel answers; ``topic_prefix`` names the topics joined.

Invariants; each breach is a line in :attr:`SoakReport.violations`:

- every push attempt ends exactly once (its ``receive`` hooks), with a status
  its event allows: ``echo`` is ok with its own payload back, or timeout, or
  error ``unmatched topic`` if its channel died on the server meanwhile;
- no channel callback fires after ``leave()``, whose ``on_close`` fires once
  (channels are left and replaced while the soak runs: ``churn``);
- after every fault the socket reconnects and every channel rejoins within
  ``heal_timeout``; the time that took is the *time to heal*. A fault that
  must break the connection is noticed (a frozen one by the heartbeat);
- nothing reaches the event loop's exception handler (an exception left in a
  task, a protocol callback that raised) and the library logs nothing at
  ERROR, except the crash reports of channels crashed on purpose;
- ``max_buffered_pushes`` and ``max_send_buffer`` hold (``BufferFull``);
- at the end the socket holds nothing (no pending push, empty buffers), the
  memory held by the library and its I/O stack (tracemalloc) is back within
  ``memory_tolerance`` of where it was, live and after disconnect, the
  asyncio tasks are back to their number before the soak, and the bundled
  server keeps no connection, session or task.

Fault kinds: through the proxy, ``cut``, ``freeze`` (until the client
notices: heartbeat, or a long-poll timeout), ``close_mid_frame``, ``garble``,
``slow``, ``down`` (the server unreachable for a while, and now and then a
channel churned meanwhile); ``crash`` (a push of
``crash_event``) and ``churn`` (leave, join anew on a new Channel); with the
bundled server only, ``drop`` (``Server.drop_connections``), ``restart``
(stop, wait, start on the same port) and ``stall`` (heartbeats unanswered;
websocket only). They come in rounds, every enabled kind once a round in a
seeded random order, separated by random pauses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import random
import sys
import tracemalloc
import urllib.parse
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from ..channel import Channel
from ..errors import BufferFull
from ..socket import Socket
from ..transports.base import ConnectOptions, Transport, TransportListener
from .chaos import ChaosProxy
from .soak_report import SoakReport

__all__ = [
    "ALL_FAULTS",
    "CHANNEL_FAULTS",
    "DEMO_OUTCOMES",
    "NETWORK_FAULTS",
    "SERVER_FAULTS",
    "SoakConfig",
    "SoakReport",
    "run_soak",
]

NETWORK_FAULTS = ("cut", "freeze", "close_mid_frame", "garble", "slow", "down")
CHANNEL_FAULTS = ("crash", "churn")
SERVER_FAULTS = ("drop", "restart", "stall")
ALL_FAULTS = NETWORK_FAULTS + CHANNEL_FAULTS + SERVER_FAULTS

#: Faults after which the connection must have broken, and been noticed.
#: Long-poll is exempt from ``cut`` and ``drop``: between two requests it has
#: no connection to lose, and its next request simply opens a new one.
_BREAKING = frozenset(("cut", "freeze", "down", "drop", "restart", "stall"))
_BREAKING_LONGPOLL = _BREAKING - {"cut", "drop"}

#: Seconds a reset connection has to be noticed: at once on loopback, but a
#: long-poll client between two requests never notices (nothing to lose).
NOTICE_RESET = 2.0

#: The error a server answers for a topic the connection has not joined.
UNMATCHED = {"reason": "unmatched topic"}

#: Statuses each demo event may end with besides ``"timeout"`` (a fault can
#: always eat a reply). ``"unmatched"`` is error ``unmatched topic``: the push
#: reached the server after its channel died there (crash, churn).
DEMO_OUTCOMES: dict[str, frozenset[str] | None] = {
    "echo": frozenset(("ok", "unmatched")),
    "fail": frozenset(("error", "unmatched")),
    "noreply": frozenset(("unmatched",)),
    "push_me": frozenset(("ok", "unmatched")),
    "broadcast": frozenset(("ok", "unmatched")),
    "crash": frozenset(("unmatched",)),
}

_log = logging.getLogger("phoenix_channels.soak")


def _default_events() -> dict[str, float]:
    return {
        "echo": 0.8,
        "fail": 0.05,
        "noreply": 0.05,
        "push_me": 0.05,
        "broadcast": 0.05,
    }


@dataclass(frozen=True)
class SoakConfig:
    """What to soak, for how long, and how hard. All times in seconds.

    Attributes:
        url: the server's socket endpoint (``ws://host:port/socket``); the
            proxy goes in front of it. ``None``: the bundled demo server.
        seconds: how long faults are injected and pushes made.
        seed: seeds the fault schedule and the push mix.
        channels: channels joined on the one socket.
        rate: pushes per second, all channels together.
        transport: ``"websocket"`` or ``"longpoll"``.
        vsn: serializer version.
        topic_prefix: channel ``i`` joins ``f"{topic_prefix}:{i}"``.
        events: event -> weight in the push mix. Payloads are
            ``{"n": N, "pad": "..."}`` (``{}`` for ``noreply``); an ``echo``
            reply must carry its own back.
        outcomes: event -> statuses its attempts may end with besides
            ``"timeout"`` (see :data:`DEMO_OUTCOMES`); ``None`` or an event
            not listed: any status.
        faults: fault kinds to inject; ``None``: all the target allows.
        fault_gap: range of the random pause before each fault.
        fault_length: range of the random length of ``slow``, ``down`` and
            ``restart``.
        crash_event: the event that makes the server crash the channel.
        heartbeat_interval: the socket's, short so a freeze is noticed fast.
        push_timeout: the socket's ``timeout`` (pushes, joins, opening).
        heal_timeout: bound on reconnect and rejoin after a fault.
        reconnect_after: the socket's backoff (default: 20 ms flat).
        rejoin_after: the channels' backoff (default: 20 ms flat).
        max_buffered_pushes: the socket's; small, so that ``down`` fills it
            and ``BufferFull`` is seen.
        max_send_buffer: the socket's.
        poll_timeout: long-poll only: seconds a poll or POST may take (a
            frozen one is noticed then); the bundled server's poll window is
            a third of it.
        trace_memory: measure memory with tracemalloc (slows the run down).
        memory_tolerance: bytes the memory may end above where it started.
    """

    url: str | None = None
    seconds: float = 20.0
    seed: int = 0
    channels: int = 10
    rate: float = 100.0
    transport: Literal["websocket", "longpoll"] = "websocket"
    vsn: str = "2.0.0"
    topic_prefix: str = "room:soak"
    events: Mapping[str, float] = field(default_factory=_default_events)
    outcomes: Mapping[str, frozenset[str] | None] = field(
        default_factory=lambda: dict(DEMO_OUTCOMES)
    )
    faults: Sequence[str] | None = None
    fault_gap: tuple[float, float] = (0.2, 0.8)
    fault_length: tuple[float, float] = (0.3, 1.5)
    crash_event: str = "crash"
    heartbeat_interval: float = 0.3
    push_timeout: float = 2.0
    heal_timeout: float = 10.0
    reconnect_after: Callable[[int], float] | None = None
    rejoin_after: Callable[[int], float] | None = None
    max_buffered_pushes: int = 5
    max_send_buffer: int = 1000
    poll_timeout: float = 3.0
    trace_memory: bool = True
    memory_tolerance: int = 256 * 1024

    def fault_kinds(self) -> tuple[str, ...]:
        """The fault kinds this soak injects, checked against its target.

        Raises:
            ValueError: an unknown kind, or a server fault with ``url`` set.
        """
        kinds: tuple[str, ...]
        if self.faults is None:
            kinds = ALL_FAULTS if self.url is None else (*NETWORK_FAULTS, "churn")
        else:
            kinds = tuple(self.faults)
        unknown = sorted(set(kinds) - set(ALL_FAULTS))
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {ALL_FAULTS}")
        if self.url is not None and set(kinds) & set(SERVER_FAULTS):
            raise ValueError(f"faults {SERVER_FAULTS} need the bundled server")
        if self.transport == "longpoll":
            kinds = tuple(k for k in kinds if k != "stall")  # no heartbeat
        return kinds


async def run_soak(config: SoakConfig | None = None, **overrides: Any) -> SoakReport:
    """Run one soak and report on it.

    Args:
        config: the soak (default :class:`SoakConfig`); ``overrides`` replace
            some of its fields, as in ``run_soak(seconds=5, seed=3)``.

    Returns:
        The figures and the violations; :attr:`SoakReport.ok` is the verdict.

    Raises:
        ValueError: the configuration asks for something impossible.
    """
    config = dataclasses.replace(config or SoakConfig(), **overrides)
    kinds = config.fault_kinds()
    if config.rate <= 0 or config.channels < 1 or config.seconds < 0:
        raise ValueError("rate and channels must be positive, seconds not negative")
    if config.url is not None:
        _target(config.url)  # raise now for a URL the proxy cannot serve
    return await _Run(config, kinds).execute()


# -- pieces --------------------------------------------------------------------------


class _Signal:
    """Wakes waiters whenever a socket, channel or push callback fired."""

    #: Re-check at least this often: some conditions notify nobody.
    POLL = 0.05

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self, *args: Any) -> None:
        self._event.set()

    async def until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait, at most ``timeout`` seconds, until ``predicate()``; its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), min(remaining, self.POLL))
            except asyncio.TimeoutError:
                pass
        return True


class _Record:
    """One push attempt as the soak tracks it."""

    __slots__ = ("event", "made", "n", "outcome", "topic")

    def __init__(self, n: int, event: str, topic: str, made: float) -> None:
        self.n = n
        self.event = event
        self.topic = topic
        self.made = made
        self.outcome: str | None = None


class _Member:
    """One of the soak's channels, watched for callbacks after its leave.

    Once left, only a weak reference to the Channel is kept: forgotten by the
    socket it may go (a channel that is gone fires nothing), and the memory
    it held must come back.
    """

    def __init__(self, run: _Run, topic: str) -> None:
        self.topic = topic
        self.errors = 0
        self.closes = 0
        self._report = run.report
        self._signal = run.signal
        channel = run.sock.channel(topic)
        self._strong: Channel | None = channel
        self._channel = weakref.ref(channel)
        channel.on_error(self._callback("error"))
        channel.on_close(self._callback("close"))
        channel.on("pushed", self._callback("pushed"))
        channel.on("broadcasted", self._callback("broadcasted"))
        join = channel.join()
        for status in ("ok", "error", "timeout"):
            join.receive(status, self._join_hook(status))

    @property
    def channel(self) -> Channel:
        channel = self._strong or self._channel()
        assert channel is not None, "only a left channel may be gone"
        return channel

    @property
    def joined(self) -> bool:
        return self.channel.state == "joined"

    @property
    def left(self) -> bool:
        return self._strong is None

    def leave(self) -> None:
        self.channel.leave()
        self._strong = None
        if self.closes != 1:
            self._report.violate(
                f"leave() of {self.topic} fired on_close {self.closes} times"
            )

    def _callback(self, kind: str) -> Callable[[Any], None]:
        def callback(payload: Any) -> None:
            if self.left:
                self._report.violate(f"{kind} callback on {self.topic} after leave()")
            if kind == "error":
                self.errors += 1
            elif kind == "close":
                self.closes += 1
            self._signal.notify()

        return callback

    def _join_hook(self, status: str) -> Callable[[Any], None]:
        def hook(response: Any) -> None:
            self._report.joins[status] += 1
            self._signal.notify()

        return hook


class _LogWatch(logging.Handler):
    """Counts the library's warnings and reports its errors as violations."""

    def __init__(self, report: SoakReport) -> None:
        super().__init__(logging.WARNING)
        self.report = report
        self._logger = logging.getLogger("phoenix_channels")
        self._level = self._logger.level
        if self._logger.getEffectiveLevel() > logging.WARNING:
            self._logger.setLevel(logging.WARNING)
        self._logger.addHandler(self)

    def close(self) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)
        super().close()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == _log.name:
            return
        message = record.getMessage()
        if record.levelno < logging.ERROR:
            self.report.warnings[_shape(message)] += 1
        elif _is_requested_crash(record):
            self.report.expected_errors += 1
        else:
            detail = f" ({record.exc_info[1]!r})" if record.exc_info else ""
            self.report.violate(f"logged at {record.levelname}: {message}{detail}")


# -- the run -------------------------------------------------------------------------


class _Run:
    """One soak: environment, warm-up, load, faults, checks, teardown."""

    def __init__(self, config: SoakConfig, kinds: tuple[str, ...]) -> None:
        self.config = config
        self.kinds = kinds
        self.report = SoakReport(
            target="the bundled demo server" if config.url is None else config.url,
            transport=config.transport,
            seed=config.seed,
            channels=config.channels,
            rate=config.rate,
        )
        self.signal = _Signal()
        self.fault_rng = random.Random(config.seed)
        self.load_rng = random.Random(config.seed + 1)
        self.server: Any = None  # a phoenix_channels.server.Server when bundled
        self.proxy: ChaosProxy | None = None
        self.path = "/socket"
        self.socket: Socket | None = None
        self.members: list[_Member] = []
        self.pending: dict[int, _Record] = {}
        self.made = 0
        #: Pushes whose replies a garbled chunk may have carried: ranges of n.
        self.garbled: list[tuple[int, int]] = []
        self.stopping = False

    @property
    def sock(self) -> Socket:
        assert self.socket is not None
        return self.socket

    @property
    def chaos(self) -> ChaosProxy:
        assert self.proxy is not None
        return self.proxy

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    # -- lifecycle -------------------------------------------------------------

    async def execute(self) -> SoakReport:
        loop = asyncio.get_running_loop()
        previous = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        logs = _LogWatch(self.report)
        tracing = self.config.trace_memory and not tracemalloc.is_tracing()
        if tracing:
            tracemalloc.start()
        try:
            await self._start_environment()
            try:
                await self._main()
            finally:
                await self._stop_environment()
        finally:
            if tracing:
                tracemalloc.stop()
            logs.close()
            loop.set_exception_handler(previous)
        return self.report

    async def _main(self) -> None:
        await self._warm_up()
        baseline = await self._settle_tasks(None)
        self._measure("baseline")
        await self._open_socket()
        self._measure("live_start")
        started = self.now()
        load = asyncio.ensure_future(self._load())
        try:
            await self._faults(started + self.config.seconds)
        finally:
            self.stopping = True
            await load
        self.report.seconds = self.now() - started
        await self._finish()
        await self._settle_tasks(baseline)
        self._measure("end")
        self._check_memory()

    async def _start_environment(self) -> None:
        config = self.config
        if config.url is None:
            from ..server import demo_server

            window = config.poll_timeout / 3
            self.server = demo_server("127.0.0.1", 0, longpoll_window=window)
            await self.server.start()
            host, port = "127.0.0.1", self.server.port
        else:
            host, port, self.path = _target(config.url)
        self.proxy = ChaosProxy(port, host, seed=config.seed)
        await self.proxy.start()

    async def _stop_environment(self) -> None:
        if self.socket is not None:
            await self.socket.disconnect()
        if self.proxy is not None:
            await self.proxy.stop()
        if self.server is not None:
            await self.server.stop()

    def _new_socket(self) -> Socket:
        config = self.config
        transport: Any = config.transport
        if config.transport == "longpoll":
            transport = _longpoll_factory(config.poll_timeout)
        return Socket(
            self.chaos.url(self.path),
            timeout=config.push_timeout,
            heartbeat_interval=config.heartbeat_interval,
            reconnect_after=config.reconnect_after or _flat,
            rejoin_after=config.rejoin_after or _flat,
            vsn=config.vsn,
            transport=transport,
            max_buffered_pushes=config.max_buffered_pushes,
            max_send_buffer=config.max_send_buffer,
        )

    async def _warm_up(self) -> None:
        """A short session first, so that lazy imports, caches and pools are
        filled before the baseline is measured."""
        socket = self._new_socket()
        bound = self.config.heal_timeout
        await asyncio.wait_for(socket.connect(), bound)
        channels = [socket.channel(self._topic(i)) for i in range(self.config.channels)]
        await asyncio.wait_for(asyncio.gather(*(c.join() for c in channels)), bound)
        pushes = [
            channels[0].push(event, self._payload(-1, event), timeout=0.2)
            for event in self.config.events
        ]
        await asyncio.gather(*pushes, return_exceptions=True)
        await asyncio.wait_for(socket.ping(), bound)
        for channel in channels:
            channel.leave()
        await socket.disconnect()
        await self._check_server_empty()

    async def _open_socket(self) -> None:
        self.socket = socket = self._new_socket()
        report, signal = self.report, self.signal

        def opened() -> None:
            report.opens += 1
            signal.notify()

        def closed(event: Any) -> None:
            report.closes += 1
            signal.notify()

        def failed(error: Any) -> None:
            report.transport_errors += 1
            signal.notify()

        socket.on_open(opened)
        socket.on_close(closed)
        socket.on_error(failed)
        await asyncio.wait_for(socket.connect(), self.config.heal_timeout)
        self.members = [
            _Member(self, self._topic(i)) for i in range(self.config.channels)
        ]
        if not await self.signal.until(self._healthy, self.config.heal_timeout):
            report.violate(f"the channels did not join at first ({self._health()})")

    async def _finish(self) -> None:
        """Heal, prove the socket works, drain, leave, disconnect, check."""
        config, report = self.config, self.report
        self.chaos.reset()
        if not await self.signal.until(self._healthy, config.heal_timeout):
            report.violate(f"not healthy at the end ({self._health()})")
        await self._probe()
        bound = config.push_timeout + config.heal_timeout
        if not await self.signal.until(lambda: not self.pending, bound):
            report.violate(
                f"{len(self.pending)} push attempts never ended: "
                f"{_sample(self.pending.values())}"
            )
        self._check_socket_empty()
        self._measure("live_end")
        for member in self.members:
            member.leave()
        try:  # a barrier: what the server sent before the leaves is handled now
            await self.sock.ping(config.heal_timeout)
        except Exception as exc:
            report.violate(f"no heartbeat reply after the leaves: {exc!r}")
        await self.sock.disconnect()
        self.socket, self.members = None, []
        await self._check_server_empty()

    async def _probe(self) -> None:
        """One echo per channel must come back now: the socket still works."""
        pushes = [m.channel.push("echo", {"probe": m.topic}) for m in self.members]
        results = await asyncio.gather(*pushes, return_exceptions=True)
        for member, result in zip(self.members, results, strict=True):
            if result != {"probe": member.topic}:
                self.report.violate(f"final echo on {member.topic}: {result!r}")

    # -- load ------------------------------------------------------------------

    async def _load(self) -> None:
        """Push at ``rate``, round robin over the channels: a load generator,
        paced by the clock (it synchronises nothing)."""
        interval = 1.0 / self.config.rate
        events = list(self.config.events)
        weights = [self.config.events[e] for e in events]
        deadline = self.now()
        while not self.stopping:
            event = self.load_rng.choices(events, weights)[0]
            self._push(self.members[self.made % len(self.members)], event)
            deadline += interval
            delay = deadline - self.now()
            if delay < -1.0:  # far behind on a busy machine: do not burst
                deadline = self.now()
            await asyncio.sleep(max(0.0, delay))

    def _push(self, member: _Member, event: str) -> None:
        n = self.made
        self.made += 1
        try:
            push = member.channel.push(event, self._payload(n, event))
        except BufferFull:
            self.report.rejected += 1
            self._check_buffers(member)
            return
        except Exception as exc:  # API.md promises nothing else for a push
            self.report.violate(f"push {event!r} raised {exc!r}")
            return
        self.report.pushes += 1
        record = _Record(n, event, member.topic, self.now())
        self.pending[n] = record
        for status in ("ok", "error", "timeout"):
            push.receive(status, self._outcome_hook(record, status))
        self._check_buffers(member)

    def _outcome_hook(self, record: _Record, status: str) -> Callable[[Any], None]:
        def hook(response: Any) -> None:
            self._outcome(record, status, response)

        return hook

    def _outcome(self, record: _Record, status: str, response: Any) -> None:
        report = self.report
        if record.outcome is not None:
            report.violate(
                f"push #{record.n} {record.event!r} ended twice: "
                f"{record.outcome}, then {status}"
            )
            return
        record.outcome = status
        self.pending.pop(record.n, None)
        kind = "unmatched" if status == "error" and response == UNMATCHED else status
        report.outcomes[kind] += 1
        report.by_event.setdefault(record.event, Counter())[kind] += 1
        if status == "ok":
            report.latencies.append(self.now() - record.made)
        self._check_outcome(record, kind, response)
        self.signal.notify()

    def _check_outcome(self, record: _Record, kind: str, response: Any) -> None:
        allowed = self.config.outcomes.get(record.event)
        if kind == "timeout" or allowed is None:
            return
        if kind not in allowed:
            self.report.violate(
                f"push #{record.n} {record.event!r} ended {kind}: {_short(response)}"
            )
        elif kind == "ok" and record.event == "echo" and not self._exposed(record):
            if response != self._payload(record.n, "echo"):
                self.report.violate(f"echo #{record.n} came back as {_short(response)}")

    def _payload(self, n: int, event: str) -> dict[str, Any]:
        return {} if event == "noreply" else {"n": n, "pad": "p" * (n % 64)}

    def _check_buffers(self, member: _Member) -> None:
        # Read-only looks at internals: the bounds that BufferFull promises.
        report, socket = self.report, self.sock
        held = len(member.channel._push_buffer)
        waiting = len(socket._send_buffer)
        report.max_push_buffer = max(report.max_push_buffer, held)
        report.max_send_buffer = max(report.max_send_buffer, waiting)
        if held > self.config.max_buffered_pushes:
            report.violate(f"{held} pushes wait in the buffer of {member.topic}")
        if waiting > self.config.max_send_buffer:
            report.violate(f"{waiting} frames wait in the send buffer")

    # -- faults ----------------------------------------------------------------

    async def _faults(self, until: float) -> None:
        schedule: list[str] = []
        while True:
            if not schedule:
                schedule = list(self.kinds)
                self.fault_rng.shuffle(schedule)
            kind = schedule.pop()
            closes = self.report.closes
            await asyncio.sleep(self.fault_rng.uniform(*self.config.fault_gap))
            self.report.spontaneous_closes += self.report.closes - closes
            if self.now() >= until:
                return
            await self._one_fault(kind)

    async def _one_fault(self, kind: str) -> None:
        report, signal = self.report, self.signal
        report.faults[kind] += 1
        before = self._breaks()
        restored = await getattr(self, f"_fault_{kind}")()
        broke = self._breaks() != before
        breaking = (
            _BREAKING if self.config.transport == "websocket" else _BREAKING_LONGPOLL
        )
        if kind in breaking and not broke:
            report.violate(f"{kind}: the connection did not break")
        if not await signal.until(self._healthy, self.config.heal_timeout):
            report.violate(
                f"{kind}: not healed within {self.config.heal_timeout:g} s "
                f"({self._health()})"
            )
            self.chaos.reset()
            await signal.until(self._healthy, self.config.heal_timeout)
        elif broke or kind == "churn":
            report.heal_times.setdefault(kind, []).append(self.now() - restored)
        else:
            report.absorbed[kind] += 1

    def _breaks(self) -> tuple[int, int]:
        return self.report.closes, sum(m.errors for m in self.members)

    async def _noticed(self, bound: float) -> bool:
        """Wait until the socket reports a close (bounded)."""
        closes = self.report.closes
        return await self.signal.until(lambda: self.report.closes > closes, bound)

    def _detection_bound(self) -> float:
        if self.config.transport == "websocket":
            return 2 * self.config.heartbeat_interval + 1.0
        return self.config.poll_timeout + 1.0

    async def _fault_cut(self) -> float:
        started = self.now()
        self.chaos.cut()
        await self._noticed(NOTICE_RESET)
        return started

    async def _fault_freeze(self) -> float:
        started = self.now()
        self.chaos.freeze()
        bound = self._detection_bound()
        if await self._noticed(bound):
            self.report.detect_times.append(self.now() - started)
        else:
            self.report.violate(f"freeze: not noticed within {bound:g} s")
        self.chaos.cut()  # the frozen TCP connections go for good
        self.chaos.thaw()
        return self.now()

    async def _fault_close_mid_frame(self) -> float:
        return await self._byte_fault(ChaosProxy.close_mid_frame)

    async def _fault_garble(self) -> float:
        # Flipped bytes may still make valid JSON (there is no TLS here to
        # notice): the echoes in flight until the chunk passed are exempt.
        first = min(self.pending, default=self.made)
        self.garbled.append((first, sys.maxsize))  # until the chunk has passed
        started = await self._byte_fault(ChaosProxy.garble)
        self.garbled[-1] = (first, self.made)
        return started

    def _exposed(self, record: _Record) -> bool:
        return any(first <= record.n < end for first, end in self.garbled)

    async def _byte_fault(self, arm: Callable[[ChaosProxy], None]) -> float:
        proxy = self.chaos
        started = self.now()
        arm(proxy)
        bound = self.config.poll_timeout + 1.0
        if not await self.signal.until(lambda: proxy.pending_faults == 0, bound):
            proxy.reset()  # no traffic came by: nothing was damaged
        elif self.sock.is_connected():
            try:  # a round trip: the damaged bytes have reached the client
                await self.sock.ping(self.config.push_timeout)
            except Exception:
                pass  # broken: healing is checked next
        return started

    async def _fault_slow(self) -> float:
        config = self.config
        self.chaos.delay = self.fault_rng.uniform(0.1, 0.25) * config.heartbeat_interval
        await asyncio.sleep(self.fault_rng.uniform(*config.fault_length))
        self.chaos.delay = 0.0
        return self.now()

    async def _fault_down(self) -> float:
        hold = self.fault_rng.uniform(*self.config.fault_length)
        self.chaos.refuse = True
        self.chaos.cut()
        await asyncio.sleep(hold / 2)
        if "churn" in self.kinds and self.fault_rng.random() < 0.5:
            # Users leave and join while offline too: the leave and the join
            # wait in the send buffer, and the stale leave is dropped.
            self._churn()
        await asyncio.sleep(hold / 2)
        self.chaos.refuse = False
        return self.now()

    async def _fault_crash(self) -> float:
        started = self.now()
        joined = [m for m in self.members if m.joined]
        if joined:
            member = self.fault_rng.choice(joined)
            errors = member.errors
            self._push(member, self.config.crash_event)
            bound = self.config.push_timeout
            await self.signal.until(lambda: member.errors > errors, bound)
        return started

    async def _fault_churn(self) -> float:
        started = self.now()
        self._churn()
        return started

    def _churn(self) -> None:
        index = self.fault_rng.randrange(len(self.members))
        old = self.members[index]
        old.leave()
        self.members[index] = _Member(self, old.topic)

    async def _fault_drop(self) -> float:
        started = self.now()
        self.server.drop_connections()
        await self._noticed(NOTICE_RESET)
        return started

    async def _fault_restart(self) -> float:
        await self.server.stop()
        await asyncio.sleep(self.fault_rng.uniform(*self.config.fault_length))
        await self.server.start()
        return self.now()

    async def _fault_stall(self) -> float:
        started = self.now()
        self.server.pause_heartbeats()
        try:
            if await self._noticed(self._detection_bound()):
                self.report.detect_times.append(self.now() - started)
        finally:
            self.server.resume_heartbeats()
        return self.now()

    # -- checks ----------------------------------------------------------------

    def _healthy(self) -> bool:
        return self.sock.is_connected() and all(m.joined for m in self.members)

    def _health(self) -> str:
        states = Counter(m.channel.state for m in self.members)
        return f"socket {self.sock.connection_state}, channels {dict(states)}"

    def _check_socket_empty(self) -> None:
        socket, report = self.sock, self.report
        if socket.pending_pushes():
            report.violate(f"pushes pending at the end: {socket.pending_pushes()}")
        if socket._in_flight:  # internal: an ended push must be forgotten
            report.violate(f"{len(socket._in_flight)} pushes still tracked by ref")
        if socket._send_buffer:
            report.violate(f"{len(socket._send_buffer)} frames left to send")
        for member in self.members:
            if member.channel._push_buffer:
                report.violate(f"pushes left in the buffer of {member.topic}")

    async def _check_server_empty(self) -> None:
        server = self.server
        if server is None:
            return

        def empty() -> bool:
            return not (server.connections or server.longpoll_sessions or server._tasks)

        if not await self.signal.until(empty, 2 * self.config.poll_timeout + 5.0):
            self.report.violate(
                f"the server kept {len(server.connections)} connections, "
                f"{len(server.longpoll_sessions)} long-poll sessions and "
                f"{len(server._tasks)} tasks after its client left"
            )

    async def _settle_tasks(self, baseline: int | None) -> int:
        """The number of other tasks once the library's own are done; with
        a ``baseline``, a violation if more are left (bounded wait)."""
        current = asyncio.current_task()

        def others() -> list[asyncio.Task[Any]]:
            return [t for t in asyncio.all_tasks() if t is not current]

        def settled() -> bool:
            tasks = others()
            if baseline is not None:
                return len(tasks) <= baseline
            return not any(_is_library_task(t) for t in tasks)

        await self.signal.until(settled, self.config.heal_timeout)
        tasks = others()
        label = "baseline" if baseline is None else "end"
        self.report.tasks[label] = len(tasks)
        if baseline is not None and len(tasks) > baseline:
            names = sorted(_task_name(t) for t in tasks)
            self.report.violate(f"{len(tasks)} tasks left, {baseline} before: {names}")
        return len(tasks)

    def _measure(self, label: str) -> None:
        if tracemalloc.is_tracing():
            # urlsplit's LRU cache (128 URLs; long-poll URLs carry a session
            # token each) is bounded and not ours: empty it before counting.
            clear = getattr(urllib.parse.urlsplit, "cache_clear", None)
            if clear is not None:  # Python 3.11+
                clear()
            gc.collect()
            self.report.memory[label] = _library_memory()

    def _check_memory(self) -> None:
        memory, tolerance = self.report.memory, self.config.memory_tolerance
        for start, end in (("live_start", "live_end"), ("baseline", "end")):
            if start in memory and end in memory:
                growth = memory[end] - memory[start]
                if growth > tolerance:
                    self.report.violate(
                        f"memory grew by {growth} bytes from {start} to {end} "
                        f"(tolerance {tolerance})"
                    )

    def _loop_exception(self, loop: Any, context: dict[str, Any]) -> None:
        self.report.violate(
            f"event loop exception handler: {context.get('message')} "
            f"{context.get('exception')!r}"
        )

    def _topic(self, i: int) -> str:
        return f"{self.config.topic_prefix}:{i}"


# -- helpers ---------------------------------------------------------------------------


def _is_requested_crash(record: logging.LogRecord) -> bool:
    """The server's report of a channel the soak crashed on purpose."""
    exc = record.exc_info[1] if record.exc_info else None
    return (
        record.name == "phoenix_channels.server"
        and record.getMessage().startswith("! channel ")
        and isinstance(exc, RuntimeError)
        and str(exc) == "crash requested by the client"
    )


def _shape(message: str) -> str:
    """A log message with its digits masked, to count messages by kind."""
    out = "".join("#" if c.isdigit() else c for c in message)
    return out if len(out) <= 100 else out[:97] + "..."


#: Where the memory a soak checks is allocated: the library and its I/O stack.
_LIBRARY_PARTS = (
    "/phoenix_channels/",
    "/asyncio/",
    "/websockets/",
    "/h11/",
    "/httpx/",
    "/httpcore/",
    "/anyio/",
)


def _library_memory() -> int:
    """Bytes allocated by the library and its I/O stack and still held (not
    by the soak's own bookkeeping, nor by whoever runs the soak)."""
    total = 0
    for stat in tracemalloc.take_snapshot().statistics("filename"):
        name = stat.traceback[0].filename.replace("\\", "/")
        if name.endswith(("/testing/soak.py", "/testing/soak_report.py")):
            continue
        if any(part in name for part in _LIBRARY_PARTS):
            total += stat.size
    return total


def _is_library_task(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    filename = getattr(code, "co_filename", "").replace("\\", "/")
    return any(part in filename for part in _LIBRARY_PARTS)


def _task_name(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return str(getattr(coro, "__qualname__", coro))


def _longpoll_factory(poll_timeout: float) -> Callable[..., Transport]:
    """Long-poll with a shorter poll timeout, so that a freeze is noticed."""
    from ..transports.longpoll import LongPollTransport

    def factory(options: ConnectOptions, listener: TransportListener) -> Transport:
        extra = {**options.extra, "poll_timeout": poll_timeout}
        return LongPollTransport(dataclasses.replace(options, extra=extra), listener)

    return factory


def _target(url: str) -> tuple[str, int, str]:
    """Host, port and socket path of a ``ws://`` endpoint."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "http"):
        raise ValueError(
            f"the chaos proxy forwards plain TCP: soak a ws:// endpoint, not {url!r}"
        )
    if parts.hostname is None:
        raise ValueError(f"no host in {url!r}")
    path = parts.path.rstrip("/")
    for suffix in ("/websocket", "/longpoll"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    return parts.hostname, parts.port or 80, path or "/socket"


def _flat(tries: int) -> float:
    return 0.02


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _sample(records: Iterable[_Record]) -> str:
    return ", ".join(f"#{r.n} {r.event} on {r.topic}" for r in list(records)[:5])
