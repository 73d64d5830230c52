"""What every Python client worker shares: the command loop and the clocks.

A worker is one process running one client. ``run.py`` starts it, then talks
to it over stdin/stdout, one JSON object per line:

- the worker first prints ``{"hello": NAME, "versions": {...}}``;
- each command is ``{"op": OP, "args": {...}}``; the worker runs the
  scenario ``OP`` in a fresh event loop and prints its result object, or
  ``{"error": "..."}``;
- the ``dispatch`` scenario prints ``{"ready": true}`` once its channels are
  joined, so that ``run.py`` can start the broadcasts, then its result.

Scenarios measure the worker's own CPU time (``time.process_time``: every
thread of this process, nothing of the server's) and wall time.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
import traceback
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

Scenario = Callable[..., Awaitable[dict[str, Any]]]

#: The payload of push number ``i``; node/client.mjs builds the same one.
TEXT = "hello, phoenix"


def payload(i: int) -> dict[str, Any]:
    return {"seq": i, "text": TEXT}


def payloads(count: int) -> list[dict[str, Any]]:
    return [payload(i) for i in range(count)]


#: Set while a profiled scenario runs (BENCH_PROFILE_DIR): the Clock turns it
#: on for the measured part only, so setup (joins) stays out of the profile.
_profiler: Any = None


class Clock:
    """CPU and wall time of this process between ``start`` and ``stop``."""

    def __init__(self) -> None:
        self.cpu = self.wall = 0.0

    def start(self) -> None:
        if _profiler is not None:
            _profiler.enable()
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def stop(self) -> dict[str, float]:
        cpu = time.process_time() - self.cpu
        wall = time.perf_counter() - self.wall
        if _profiler is not None:
            _profiler.disable()
        return {"cpu_s": cpu, "wall_s": wall}


class MemoryProbe:
    """Python heap growth (tracemalloc) between ``start`` and ``stop``."""

    def start(self) -> None:
        gc.collect()
        tracemalloc.start()
        self._base = tracemalloc.get_traced_memory()[0]

    def stop(self) -> int:
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - self._base
        tracemalloc.stop()
        return grown


def memory_result(
    grown: int, pending: int, data: list[dict[str, Any]]
) -> dict[str, Any]:
    """What ``pending_memory`` answers: ``grown`` heap bytes while ``pending``
    of the pushes of ``data`` waited, and the size of one payload as JSON (as
    node/client.mjs counts it), for the report."""
    return {
        "bytes": grown,
        "n": len(data),
        "pending": pending,
        "payload_bytes": len(json.dumps(data[0], separators=(",", ":"))),
    }


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def serve(name: str, versions: dict[str, str], scenarios: dict[str, Scenario]) -> None:
    """The worker's main loop: read commands, run scenarios, print results."""
    # Keep stray prints of the client under test off the command channel.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = out
    emit({"hello": name, "versions": versions, "pid": os.getpid()})
    profile_dir = os.environ.get("BENCH_PROFILE_DIR")
    runs = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        op = command["op"]
        if op == "exit":
            break
        args = dict(command.get("args", {}))
        if op == "dispatch":
            args["ready"] = lambda: emit({"ready": True})
        try:
            result = _run(scenarios[op], args, profile_dir, f"{op}-{runs}")
        except Exception as exc:
            traceback.print_exc()
            result = {"error": f"{type(exc).__name__}: {exc}"}
        emit(result)
        runs += 1


def _run(
    scenario: Scenario, args: dict[str, Any], profile_dir: str | None, label: str
) -> dict[str, Any]:
    """Run one scenario in a fresh loop, under cProfile if asked to."""
    global _profiler
    if profile_dir is None:
        return asyncio.run(scenario(**args))
    import cProfile

    # CPU time, not wall: waiting in epoll is not a hotspot.
    _profiler = cProfile.Profile(time.process_time)
    try:
        result = asyncio.run(scenario(**args))
        _profiler.dump_stats(os.path.join(profile_dir, f"{label}.prof"))
    finally:
        _profiler = None
    return result
