"""How much load the bundled Phoenix-protocol server holds on this machine.

Two measurements, each against the bundled server (``phoenix_channels.server``
with the demo channels) running in a process of its own, so client and server
CPU stay apart:

1. **Connections.** Ramp up to ``--max-connections`` websocket connections
   (vsn 2.0.0) in batches, each joined to ``room:load``. At every
   ``--step`` all connections so far must answer a heartbeat ("alive"), and
   the server's resident memory (``VmRSS``) gives the memory per connection
   above the idle baseline. The ramp stops early at the first batch that
   fails to connect or join.
2. **Broadcast fan-out.** ``--subscribers`` connections join ``room:fanout``;
   one more connection pushes ``broadcast`` events (at most ``--window`` in
   flight), and the server fans each one out as ``broadcasted`` to every
   member. Deliveries counted at the subscribers, per second, over
   ``--runs`` runs: median, min and max.

The server runs as ``python -c <runner>`` calling ``serve_forever`` on port 0
and printing the port it got (no free-port race). The load side is a raw
client: websockets' sans-I/O ``ClientProtocol`` does each connection's
handshake and frames what it sends; inbound frames are then walked by hand
and broadcasts counted by their prefix without decoding JSON. No task, queue
or Phoenix logic per connection, so the client costs as little CPU as
possible and the server is what is measured. The fan-out table shows both
sides' CPU seconds (``/proc`` clock ticks, 10 ms) and how busy the server was.

Usage::

    python benchmarks/server_load.py            # 2,000 connections, 1,000 subscribers
    python benchmarks/server_load.py --quick    # a smoke run, a few seconds
    python benchmarks/server_load.py --max-connections 5000 --step 1000

Results are printed as small tables. Nothing here is asserted; timings vary
with the machine and its load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from websockets.client import ClientProtocol
from websockets.http11 import Response
from websockets.uri import parse_uri

HOST = "127.0.0.1"

#: The server process: the bundled demo server on a free port, which it prints.
SERVER_RUNNER = """
import asyncio, sys
from phoenix_channels.server import serve_forever

def ready(server):
    print(server.port, flush=True)

try:
    asyncio.run(serve_forever("127.0.0.1", 0, int(sys.argv[1]), ready=ready))
except KeyboardInterrupt:
    pass
"""

BROADCAST_PREFIX = b"[null,null,"  # a v2 broadcast: both refs null


# --- the load client ------------------------------------------------------------


class Tally:
    """Deliveries counted across every subscriber; wakes a waiter at a target."""

    def __init__(self) -> None:
        self.count = 0
        self.target = -1
        self.reached: asyncio.Future[None] | None = None

    def expect(self, target: int) -> asyncio.Future[None]:
        self.count = 0
        self.target = target
        self.reached = asyncio.get_running_loop().create_future()
        return self.reached

    def add(self, count: int) -> None:
        self.count += count
        if self.count >= self.target and self.reached and not self.reached.done():
            self.reached.set_result(None)


class LoadClient(asyncio.Protocol):
    """One websocket connection speaking just enough Phoenix v2 by hand.

    websockets' ``ClientProtocol`` does the opening handshake and frames (and
    masks) what the client sends. Once open, inbound frames are parsed here
    directly: the server sends unmasked, unfragmented frames, and walking
    their headers costs far less than a general parser, so fan-out measures
    the server rather than the client.
    """

    def __init__(self, url: str, tally: Tally | None) -> None:
        self.proto = ClientProtocol(parse_uri(url), max_size=None)
        self.tally = tally
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.replies: dict[str, asyncio.Future[Any]] = {}
        self.ref = 0
        self.join_ref: str | None = None
        self.alive = False  # open, and no close frame seen
        self._raw = False  # the handshake is done: inbound bytes go to _parse
        self._buffer = b""

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.proto.send_request(self.proto.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self._raw:
            self._parse(data)
            return
        self.proto.receive_data(data)
        for event in self.proto.events_received():
            if isinstance(event, Response) and not self.opened.done():
                if self.proto.handshake_exc is not None:
                    self.opened.set_exception(self.proto.handshake_exc)
                else:
                    self.alive = self._raw = True
                    self.opened.set_result(None)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        error = ConnectionError("connection lost")
        if not self.opened.done():
            self.opened.set_exception(error)
        for future in self.replies.values():
            if not future.done():
                future.set_exception(error)
        self.replies.clear()

    def _parse(self, data: bytes) -> None:
        """Walk the server frames in ``data`` (RFC 6455 5.2, unmasked)."""
        buf = self._buffer + data if self._buffer else data
        end_of_data = len(buf)
        pos = 0
        broadcasts = 0
        while end_of_data - pos >= 2:
            opcode = buf[pos] & 0x0F
            length = buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                start = pos + 4
                length = int.from_bytes(buf[pos + 2 : start], "big")
            elif length == 127:
                start = pos + 10
                length = int.from_bytes(buf[pos + 2 : start], "big")
            end = start + length
            if end > end_of_data:
                break
            if opcode == 1:  # text
                if buf.startswith(BROADCAST_PREFIX, start):
                    broadcasts += 1
                else:
                    self._on_text(buf[start:end])
            elif opcode == 8:  # close
                self.alive = False
            pos = end
        self._buffer = buf[pos:]
        if broadcasts and self.tally is not None:
            self.tally.add(broadcasts)

    # Phoenix, by hand

    def send(
        self, topic: str, event: str, payload: Any, join_ref: str | None = None
    ) -> asyncio.Future[Any]:
        """Send one frame; the future gets its reply's ``{status, response}``."""
        self.ref += 1
        ref = str(self.ref)
        future = asyncio.get_running_loop().create_future()
        if not self.alive:
            future.set_exception(ConnectionError("not connected"))
            return future
        self.replies[ref] = future
        frame = json.dumps(
            [join_ref, ref, topic, event, payload], separators=(",", ":")
        )
        self.proto.send_text(frame.encode())
        self._flush()
        return future

    async def join(self, topic: str) -> None:
        """Join ``topic``; later pushes carry this join's ref."""
        join_ref = str(self.ref + 1)
        reply = await self.send(topic, "phx_join", {}, join_ref=join_ref)
        if reply.get("status") != "ok":
            raise RuntimeError(f"join {topic} refused: {reply!r}")
        self.join_ref = join_ref

    def push(self, topic: str, event: str, payload: Any) -> asyncio.Future[Any]:
        """A push on the joined channel."""
        return self.send(topic, event, payload, join_ref=self.join_ref)

    def heartbeat(self) -> asyncio.Future[Any]:
        return self.send("phoenix", "heartbeat", {})

    def abort(self) -> None:
        self.alive = False
        if self.transport is not None:
            self.transport.abort()

    def _on_text(self, data: bytes) -> None:
        _join_ref, ref, _topic, event, payload = json.loads(data)
        if event == "phx_reply":
            future = self.replies.pop(ref, None)
            if future is not None and not future.done():
                future.set_result(payload)

    def _flush(self) -> None:
        if self.transport is None:
            return
        for chunk in self.proto.data_to_send():
            if chunk:
                self.transport.write(chunk)


async def open_client(
    url: str, topic: str, tally: Tally | None, timeout: float
) -> LoadClient:
    """Connect, finish the websocket handshake and join ``topic``, bounded."""
    uri = parse_uri(url)
    loop = asyncio.get_running_loop()

    async def go() -> LoadClient:
        _, client = await loop.create_connection(
            lambda: LoadClient(url, tally), uri.host, uri.port
        )
        try:
            await client.opened
            await client.join(topic)
        except BaseException:  # refused, failed or timed out: never leak it
            client.abort()
            raise
        return client

    return await asyncio.wait_for(go(), timeout)


async def open_batch(
    url: str, topic: str, count: int, tally: Tally | None, timeout: float
) -> tuple[list[LoadClient], list[BaseException]]:
    """Open ``count`` clients at once; returns the good ones and the errors."""
    results = await asyncio.gather(
        *(open_client(url, topic, tally, timeout) for _ in range(count)),
        return_exceptions=True,
    )
    good = [r for r in results if isinstance(r, LoadClient)]
    errors = [r for r in results if isinstance(r, BaseException)]
    return good, errors


def describe(errors: Sequence[BaseException]) -> str:
    """The first error, shortly, e.g. ``OSError: [Errno 24] Too many open files``."""
    first = errors[0]
    if isinstance(first, asyncio.TimeoutError):
        return "timed out"
    return f"{type(first).__name__}: {first}"


async def count_alive(clients: Sequence[LoadClient], timeout: float) -> int:
    """How many clients answer a heartbeat (all sent at once, bounded)."""
    beats = [c.heartbeat() for c in clients]
    done, pending = (
        await asyncio.wait(beats, timeout=timeout) if beats else (set(), set())
    )
    for future in pending:
        future.cancel()
    return sum(
        1
        for f in done
        if not f.cancelled()
        and f.exception() is None
        and f.result().get("status") == "ok"
    )


def close_all(clients: Sequence[LoadClient]) -> None:
    for client in clients:
        client.abort()


# --- the server process -------------------------------------------------------


class ServerProcess:
    """The server process, its port, and its memory and CPU from ``/proc``.

    The ``/proc`` files are opened once and re-read, so reading them still
    works when the load has used up every file descriptor.
    """

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self._status = _open_proc(proc.pid, "status")
        self._stat = _open_proc(proc.pid, "stat")

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}/socket/websocket?vsn=2.0.0"

    def rss_bytes(self) -> int | None:
        """Resident set size of the server process (Linux), or None."""
        text = _reread(self._status)
        for line in (text or "").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process so far (Linux, in
        clock ticks of usually 10 ms), or None."""
        text = _reread(self._stat)
        if text is None:
            return None
        try:
            fields = text.rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (ValueError, IndexError, OSError):
            return None

    def close(self) -> None:
        for handle in (self._status, self._stat):
            if handle is not None:
                handle.close()


def _open_proc(pid: int, name: str) -> IO[str] | None:
    try:
        return open(f"/proc/{pid}/{name}")  # noqa: SIM115 - kept open, re-read
    except OSError:
        return None


def _reread(handle: IO[str] | None) -> str | None:
    if handle is None:
        return None
    try:
        handle.seek(0)
        return handle.read()
    except OSError:
        return None


async def start_server(max_channels: int, timeout: float) -> ServerProcess:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVER_RUNNER,
        str(max_channels),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        return ServerProcess(proc, int(line))
    except BaseException:
        await stop_server(proc)
        raise


async def stop_server(proc: asyncio.subprocess.Process) -> None:
    """SIGINT (the server closes its clients and exits), then kill if needed."""
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()


# --- limits -------------------------------------------------------------------


def raise_fd_limit(needed: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE towards ``needed`` (never past the hard
    limit); the server process inherits it. Returns (soft, hard)."""
    try:
        import resource
    except ImportError:  # not on Unix
        return (-1, -1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft, hard


# --- the two measurements -----------------------------------------------------


@dataclass
class Checkpoint:
    connections: int
    alive: int
    ramp_seconds: float
    rss: int | None


@dataclass
class RampResult:
    baseline_rss: int | None
    checkpoints: list[Checkpoint] = field(default_factory=list)
    failures: int = 0
    stopped_early: str | None = None


async def measure_connections(
    server: ServerProcess, args: argparse.Namespace
) -> RampResult:
    result = RampResult(baseline_rss=server.rss_bytes())
    clients: list[LoadClient] = []
    started = time.perf_counter()
    next_mark = min(args.step, args.max_connections)
    try:
        while len(clients) < args.max_connections:
            size = min(
                args.batch,
                args.max_connections - len(clients),
                next_mark - len(clients),
            )
            good, errors = await open_batch(
                server.url, "room:load", size, None, args.timeout
            )
            clients.extend(good)
            failed = len(errors)
            if failed:
                result.failures += failed
                result.stopped_early = (
                    f"{failed} of a batch of {size} failed to connect or join "
                    f"at {len(clients)} connections ({describe(errors)})"
                )
            if len(clients) >= next_mark or failed:
                ramp = time.perf_counter() - started
                alive = await count_alive(clients, args.timeout)
                result.checkpoints.append(
                    Checkpoint(len(clients), alive, ramp, server.rss_bytes())
                )
                next_mark = min(next_mark + args.step, args.max_connections)
            if failed:
                break
        # A second beat on everything, after the ramp: still alive?
        if clients and result.checkpoints:
            last = result.checkpoints[-1]
            last.alive = min(last.alive, await count_alive(clients, args.timeout))
    finally:
        close_all(clients)
    return result


@dataclass
class FanoutRun:
    deliveries: int
    expected: int
    seconds: float
    server_cpu: float | None
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds if self.seconds > 0 else 0.0


async def measure_fanout(
    server: ServerProcess, args: argparse.Namespace
) -> list[FanoutRun]:
    tally = Tally()
    subscribers: list[LoadClient] = []
    publisher: LoadClient | None = None
    runs: list[FanoutRun] = []
    try:
        try:  # the publisher first: it needs a descriptor more than a subscriber
            publisher = await open_client(server.url, "room:fanout", None, args.timeout)
        except (OSError, asyncio.TimeoutError, RuntimeError) as exc:
            print(f"\nfan-out: the publisher could not connect ({describe([exc])})")
            return runs
        while len(subscribers) < args.subscribers:
            size = min(args.batch, args.subscribers - len(subscribers))
            good, errors = await open_batch(
                server.url, "room:fanout", size, tally, args.timeout
            )
            subscribers.extend(good)
            if errors:
                print(
                    f"\nfan-out: {len(errors)} subscribers failed to connect or join "
                    f"({describe(errors)}); measuring with {len(subscribers):,}"
                )
                break
        payload = {"data": "x" * args.payload_bytes}
        expected = len(subscribers) * args.broadcasts
        for _ in range(args.runs):
            runs.append(
                await one_fanout_run(server, publisher, tally, payload, expected, args)
            )
    finally:
        close_all(subscribers)
        if publisher is not None:
            publisher.abort()
    return runs


async def one_fanout_run(
    server: ServerProcess,
    publisher: LoadClient,
    tally: Tally,
    payload: dict[str, Any],
    expected: int,
    args: argparse.Namespace,
) -> FanoutRun:
    reached = tally.expect(expected)
    window = asyncio.Semaphore(args.window)
    cpu0, server_cpu0 = time.process_time(), server.cpu_seconds()
    started = time.perf_counter()

    async def publish() -> None:
        replies = []
        for _ in range(args.broadcasts):
            await window.acquire()
            reply = publisher.push("room:fanout", "broadcast", payload)
            reply.add_done_callback(lambda _f: window.release())
            replies.append(reply)
        await asyncio.gather(*replies)

    publishing = asyncio.ensure_future(publish())
    try:
        await asyncio.wait_for(asyncio.shield(reached), args.timeout)
    except asyncio.TimeoutError:
        pass  # report what arrived
    finally:
        seconds = time.perf_counter() - started
        try:
            await asyncio.wait_for(publishing, args.timeout)
        except (asyncio.TimeoutError, ConnectionError):
            publishing.cancel()
    server_cpu1 = server.cpu_seconds()
    return FanoutRun(
        deliveries=tally.count,
        expected=expected,
        seconds=seconds,
        server_cpu=None
        if server_cpu0 is None or server_cpu1 is None
        else server_cpu1 - server_cpu0,
        client_cpu=time.process_time() - cpu0,
    )


# --- report -----------------------------------------------------------------


def mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.1f}"


def print_connections(result: RampResult, args: argparse.Namespace) -> None:
    print(
        f"\nConnections (each joined to room:load; alive = answered a heartbeat; "
        f"batches of {args.batch})"
    )
    print(
        f"{'connections':>12} {'alive':>7} {'ramp s':>8} "
        f"{'server RSS MiB':>15} {'KiB/conn':>9}"
    )
    for point in result.checkpoints:
        per_conn = "n/a"
        if (
            point.rss is not None
            and result.baseline_rss is not None
            and point.connections
        ):
            per_conn = (
                f"{(point.rss - result.baseline_rss) / point.connections / 1024:.1f}"
            )
        print(
            f"{point.connections:>12,} {point.alive:>7,} {point.ramp_seconds:>8.2f} "
            f"{mib(point.rss):>15} {per_conn:>9}"
        )
    print(f"idle server RSS before the ramp: {mib(result.baseline_rss)} MiB")
    held = result.checkpoints[-1].alive if result.checkpoints else 0
    print(f"held: {held:,} of {args.max_connections:,} requested connections alive")
    if result.stopped_early:
        print(f"ramp stopped early: {result.stopped_early}")


def print_fanout(runs: list[FanoutRun], args: argparse.Namespace) -> None:
    subscribers = runs[0].expected // args.broadcasts if runs else args.subscribers
    print(
        f"\nBroadcast fan-out ({subscribers:,} subscribers of room:fanout, "
        f"{args.broadcasts:,} broadcasts per run, window {args.window}, "
        f"{args.payload_bytes}-byte payload)"
    )
    print(
        f"{'run':>4} {'delivered':>11} {'expected':>11} {'seconds':>8} "
        f"{'msgs/s':>11} {'server CPU s':>13} {'server busy':>12} {'client CPU s':>13}"
    )
    for index, run in enumerate(runs, 1):
        server_cpu = busy = "n/a"
        if run.server_cpu is not None:
            server_cpu = f"{run.server_cpu:.2f}"
            busy = (
                f"{100 * run.server_cpu / run.seconds:.0f}%" if run.seconds else "n/a"
            )
        print(
            f"{index:>4} {run.deliveries:>11,} {run.expected:>11,} {run.seconds:>8.2f} "
            f"{run.rate:>11,.0f} {server_cpu:>13} {busy:>12} {run.client_cpu:>13.2f}"
        )
    rates = [run.rate for run in runs]
    if not rates:
        print("no fan-out run")
    else:
        print(
            f"fan-out msgs/s: median {statistics.median(rates):,.0f}  "
            f"min {min(rates):,.0f}  max {max(rates):,.0f}"
        )
    short = [r for r in runs if r.deliveries < r.expected]
    if short:
        print(
            f"{len(short)} run(s) did not deliver everything within {args.timeout:g} s"
        )


# --- main -------------------------------------------------------------------------


#: Option defaults, and what ``--quick`` uses instead (explicit options win).
DEFAULTS: dict[str, Any] = {
    "max_connections": 2000,
    "step": 500,
    "batch": 100,
    "subscribers": 1000,
    "broadcasts": 1000,
    "runs": 5,
    "window": 64,
    "payload_bytes": 64,
    "timeout": 60.0,
}
QUICK: dict[str, Any] = {
    **DEFAULTS,
    "max_connections": 100,
    "step": 50,
    "batch": 50,
    "subscribers": 50,
    "broadcasts": 50,
    "runs": 3,
    "window": 16,
    "timeout": 20.0,
}
HELP = {
    "max_connections": "ramp up to this many connections",
    "step": "check and report every this many connections",
    "batch": "connections opened at once",
    "subscribers": "fan-out subscribers",
    "broadcasts": "broadcasts per fan-out run",
    "runs": "fan-out runs",
    "window": "broadcasts in flight at once",
    "payload_bytes": "broadcast payload size in bytes",
    "timeout": "bound of every wait, in seconds",
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Connections held and broadcast fan-out of the bundled server."
    )
    for name, default in DEFAULTS.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=type(default),
            default=None,
            help=f"{HELP[name]} (default {default:g}; --quick: {QUICK[name]:g})",
        )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run of a few seconds"
    )
    args = parser.parse_args(argv)
    chosen = QUICK if args.quick else DEFAULTS
    for name, default in chosen.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
        if name != "timeout" and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.timeout <= 0:
        parser.error("--timeout must be more than 0")
    return args


async def run(args: argparse.Namespace) -> int:
    soft, hard = raise_fd_limit(max(args.max_connections, args.subscribers + 1) + 256)
    server = await start_server(max_channels=100, timeout=args.timeout)
    try:
        print(
            "server_load: bundled phoenix-channels demo server, "
            f"pid {server.proc.pid}, {HOST}:{server.port}"
        )
        print(
            f"machine: {os.cpu_count()} CPUs, {platform.system()} "
            f"{platform.machine()}, Python {platform.python_version()}; "
            f"RLIMIT_NOFILE soft {soft} hard {hard}"
        )
        print(
            "load client: websockets sans-I/O handshake, inbound frames parsed by "
            "hand, no task per connection"
        )
        ramp = await measure_connections(server, args)
        print_connections(ramp, args)
        fanout = await measure_fanout(server, args)
        print_fanout(fanout, args)
    finally:
        await stop_server(server.proc)
        server.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
