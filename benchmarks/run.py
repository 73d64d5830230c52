#!/usr/bin/env python3
"""Benchmark our Phoenix client against its peers, in one command.

    python benchmarks/run.py             # full run, about 2 minutes on 2 cores
    python benchmarks/run.py --quick     # tiny counts, seconds (the smoke test)
    python benchmarks/run.py --url ws://host:4000/socket   # any Phoenix server

It installs the peers it needs (``bench`` extra into benchmarks/.deps, ``npm
ci`` in benchmarks/node), starts the bundled server in a process of its own
unless ``--url`` is given, runs every client in a process of its own,
interleaving their repetitions, and prints the figures, the ratios measured in
this run and a PASS/FAIL line per target. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import deps
import report
from procs import (
    BundledServer,
    ProcessError,
    Worker,
    drive_broadcasts,
    node_worker,
    python_worker,
)
from report import CLIENTS, LABELS, Results, Target

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVER_LOAD = HERE / "server_load.py"


@dataclasses.dataclass(frozen=True)
class Plan:
    name: str
    reps: int
    rt: int  # sequential round trips per repetition
    rt_warmup: int
    pipe: int  # pipelined pushes per repetition
    pipe_warmup: int
    channels: tuple[int, ...]  # channel counts for dispatch
    messages: int  # broadcasts measured per dispatch repetition
    dispatch_warmup: int  # broadcasts received before the clock starts
    pending: int  # pushes in flight for the memory figure
    call_timeout: float


FULL = Plan(
    name="full",
    reps=7,
    rt=2000,
    rt_warmup=200,
    pipe=2000,
    pipe_warmup=200,
    channels=(10, 100, 1000, 5000),
    messages=2000,
    dispatch_warmup=200,
    pending=10_000,
    call_timeout=600.0,
)
QUICK = Plan(
    name="quick",
    reps=2,
    rt=50,
    rt_warmup=10,
    pipe=200,
    pipe_warmup=20,
    channels=(10, 50),
    messages=100,
    dispatch_warmup=10,
    pending=500,
    call_timeout=60.0,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark phoenix_channels against a raw websockets loop, "
        "phoenix.js (node) and Supabase realtime.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny counts (seconds)")
    parser.add_argument(
        "--url",
        help="a Phoenix socket endpoint (ws://host:port/socket) with the demo "
        "channels on room:* and realtime:*; default: the bundled server",
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 7; quick 2)")
    parser.add_argument(
        "--channels",
        help="channel counts for (c), comma-separated (default 10,100,1000,5000; "
        "a Phoenix server must allow as many per connection: max_channels)",
    )
    parser.add_argument(
        "--clients",
        default=",".join(CLIENTS),
        help=f"comma-separated subset of {','.join(CLIENTS)}",
    )
    parser.add_argument(
        "--no-setup",
        action="store_true",
        help="install nothing; peers that are not installed are skipped",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        help="write the dispatch plot (PNG) here "
        "(default for a full run: benchmarks/results/dispatch.png)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        help="write every measured value here "
        "(default for a full run: benchmarks/results/last.json)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, profile our client (cProfile) during (a), (b), (c)",
    )
    parser.add_argument(
        "--no-server-load",
        action="store_true",
        help="skip (e), benchmarks/server_load.py",
    )
    return parser.parse_args(argv)


def say(text: str) -> None:
    """Progress goes to stderr; the report goes to stdout."""
    print(text, file=sys.stderr, flush=True)


# -- setting up the clients ---------------------------------------------------


def start_workers(
    wanted: list[str], install: bool, results: Results
) -> dict[str, Worker]:
    workers: dict[str, Worker] = {}
    for name in wanted:
        worker, why = _make_worker(name, install)
        if worker is not None:
            try:
                workers[name] = worker.start()
                say(f"{LABELS[name]}: worker pid {worker.pid}")
                continue
            except ProcessError as exc:
                why = f"its worker did not start: {exc}"
        say(f"skipping {LABELS[name]}: {why}")
        results.note(name, f"skipped: {why}")
    return workers


def _make_worker(name: str, install: bool) -> tuple[Worker | None, str]:
    if name == "ours":
        return python_worker("ours", "ours.py"), ""
    if name == "raw":
        return python_worker("raw", "raw_websockets.py"), ""
    if name == "realtime":
        path, why = deps.realtime(install)
        if path is None:
            return None, why
        return python_worker("realtime", "realtime_client.py", extra_path=path), ""
    if name == "phoenix.js":
        node, why = deps.node(install)
        if node is None:
            return None, why
        return node_worker(node), ""
    return None, f"unknown client {name!r}"


def topic(client: str, label: str) -> str:
    """A fresh topic per measurement; realtime can only join ``realtime:*``."""
    family = "realtime" if client == "realtime" else "room"
    return f"{family}:bench-{client}-{label}-{time.monotonic_ns()}"


# -- the measurements -----------------------------------------------------------


def measure(workers: dict[str, Worker], url: str, plan: Plan, results: Results) -> None:
    """Every scenario, every repetition, clients interleaved and rotated."""
    scenarios: list[tuple[str, int]] = [("round_trips", 0), ("pipelined", 0)]
    scenarios += [("dispatch", n) for n in plan.channels]
    scenarios += [("pending_memory", 0)]
    failed: set[tuple[str, str, int]] = set()  # not retried in later reps
    names = list(workers)
    for rep in range(plan.reps):
        say(f"repetition {rep + 1}/{plan.reps}")
        for index, (op, channels) in enumerate(scenarios):
            shift = (rep + index) % len(names) if names else 0
            for name in names[shift:] + names[:shift]:
                worker = workers.get(name)
                if worker is None or (name, op, channels) in failed:
                    continue
                try:
                    _one(worker, op, channels, url, plan, results, rep)
                except ProcessError as exc:
                    failed.add((name, op, channels))
                    first = str(exc).strip().splitlines()[0]
                    say(f"  {LABELS[name]} {op} {channels or ''}: FAILED: {exc}")
                    results.note(name, f"{op} {channels or ''} failed: {first}")
                    if exc.fatal:
                        worker.stop()
                        del workers[name]


def _one(
    worker: Worker,
    op: str,
    channels: int,
    url: str,
    plan: Plan,
    results: Results,
    rep: int,
) -> None:
    name = worker.name
    got = run_scenario(worker, op, channels, url, plan, f"{op}-{channels}-{rep}")
    if op == "round_trips":
        results.put("rt_cpu", name, rep, got["cpu_s"] / got["n"] * 1e6)
        results.put("rt_wall", name, rep, got["wall_s"] / got["n"] * 1e6)
        shown = f"{got['cpu_s'] / got['n'] * 1e6:.1f} µs CPU per round trip"
    elif op == "pipelined":
        results.put("pipe_cpu", name, rep, got["cpu_s"] / got["n"] * 1e6)
        results.put("pipe_wall", name, rep, got["wall_s"] * 1e3)
        results.put("pipe_rate", name, rep, got["n"] / got["wall_s"])
        shown = f"{got['cpu_s'] / got['n'] * 1e6:.1f} µs CPU per push"
    elif op == "dispatch":
        results.put(f"dispatch_{channels}", name, rep, got["cpu_s"] / got["n"] * 1e6)
        if got.get("rejected"):
            results.flagged.add((f"dispatch_{channels}", name))
        shown = f"{got['cpu_s'] / got['n'] * 1e6:.1f} µs CPU per message"
    else:
        if got["pending"] < got["n"]:
            results.note(name, f"only {got['pending']} of {got['n']} pushes pending")
        results.put(f"mem_{plan.pending}", name, rep, got["bytes"] / got["n"])
        shown = f"{got['bytes'] / got['n']:.0f} B per pending push"
    say(f"  {LABELS[name]:18} {op} {channels or '':>5} {shown}")


def run_scenario(
    worker: Worker, op: str, channels: int, url: str, plan: Plan, label: str
) -> dict[str, Any]:
    """Run scenario ``op`` of ``plan`` on a fresh topic; a dispatch gets its
    broadcasts driven once the worker is ready."""
    target = topic(worker.name, label)
    args: dict[str, Any] = {"url": url, "topic": target}
    on_ready = None
    if op == "round_trips":
        args |= {"count": plan.rt, "warmup": plan.rt_warmup}
    elif op == "pipelined":
        args |= {"count": plan.pipe, "warmup": plan.pipe_warmup}
    elif op == "dispatch":
        args |= {"channels": channels, "messages": plan.messages}
        args["warmup"] = plan.dispatch_warmup
        total = plan.messages + plan.dispatch_warmup
        on_ready = functools.partial(drive_broadcasts, url, target, total)
    else:
        args["count"] = plan.pending
    return worker.call(op, args, plan.call_timeout, on_ready)


# -- the report -------------------------------------------------------------------


def targets(plan: Plan, clients: list[str], results: Results) -> list[Target]:
    def missing(peer: str) -> str:
        if peer not in clients:
            return f"{LABELS[peer]} not measured"
        return ""

    low, high = plan.channels[0], plan.channels[-1]
    return [
        Target(
            "rt_vs_raw",
            "(a) CPU per round trip: ours ÷ raw websockets",
            lambda r: r.paired("rt_cpu", "ours", "raw"),
            1.3,
            "<=",
            missing("raw"),
        ),
        Target(
            "rt_vs_realtime",
            "(a) CPU per round trip: ours ÷ realtime",
            lambda r: r.paired("rt_cpu", "ours", "realtime"),
            1.0,
            "<",
            missing("realtime"),
        ),
        Target(
            "dispatch_flat",
            f"(c) our dispatch CPU: {high:,} ÷ {low:,} channels",
            lambda r: r.within(f"dispatch_{high}", f"dispatch_{low}", "ours"),
            1.2,
            "<=",
        ),
        Target(
            "memory",
            f"(d) our memory per pending push ({plan.pending:,} in flight), bytes",
            lambda r: r.series(f"mem_{plan.pending}", "ours"),
            1024,
            "<=",
        ),
        Target(
            "pipelined_vs_realtime",
            "(b) pipelined throughput: ours ÷ realtime",
            lambda r: r.paired("pipe_rate", "ours", "realtime"),
            2.0,
            ">=",
            missing("realtime"),
        ),
    ]


def print_report(
    results: Results,
    plan: Plan,
    clients: list[str],
    versions: dict[str, dict[str, str]],
    server: str,
    load: tuple[tuple[float, ...], tuple[float, ...]],
) -> None:
    rows = report.metrics(plan.channels, plan.pipe, plan.pending)
    print()
    print(f"## Client benchmark ({plan.name} run)")
    print()
    print(
        f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; server: {server}; load average "
        f"{_load(load[0])} at the start, {_load(load[1])} at the end."
    )
    print(
        f"{plan.reps} repetitions, clients interleaved; each cell: median (min–max). "
        f"(a) {plan.rt:,} sequential echo pushes; (b) {plan.pipe:,} echo pushes "
        f"at once; (c) {plan.messages:,} broadcasts into one of N joined channels; "
        f"(d) {plan.pending:,} noreply pushes in flight."
    )
    for name in clients:
        if name in versions:
            pins = ", ".join(f"{k} {v}" for k, v in versions[name].items())
            print(f"- {LABELS[name]}: {pins}")
    print()
    print(report.figures_table(results, rows, clients))
    if results.flagged:
        print()
        print(
            "† realtime validates every frame against its own message model; "
            "the server's `broadcasted` events are not in it, so it logs "
            '"Unrecognized message format" and drops them: the figure is its '
            "cost to receive and reject a message, nothing reaches a channel."
        )
    print()
    print("### Ratios (paired per repetition; median (min–max))")
    print()
    print(report.ratios_table(results, rows, clients))
    print()
    print("### Targets")
    print()
    print(report.targets_table(targets(plan, clients, results), results))
    if plan.channels[-1] < 5000:
        print()
        print(
            f"(quick run: the dispatch target compares {plan.channels[-1]} with "
            f"{plan.channels[0]} channels, not 5,000 with 10)"
        )
    notes = [(c, n) for c, ns in results.notes.items() for n in ns]
    if notes:
        print()
        for client, text in notes:
            print(f"- {LABELS[client]}: {text}")


def _load(values: tuple[float, ...]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


# -- (e) the bundled server under load: benchmarks/server_load.py --------------


def server_load(quick: bool) -> None:
    """Run benchmarks/server_load.py (another engineer's) and show its figures.

    The hook: ``python benchmarks/server_load.py [--quick]``, in a process of
    its own (it starts its own bundled server). If the script offers
    ``--json``, it gets it, and a JSON object on the last stdout line (figure
    name to a number, or to {"median", "min", "max"[, "unit"]}) becomes a
    table; otherwise its printed tables are shown as they are.
    """
    print()
    print("### (e) Bundled server: connections held and broadcast fan-out")
    print()
    if not SERVER_LOAD.exists():
        print(
            "benchmarks/server_load.py is not there yet. Hook: run.py runs "
            "`python benchmarks/server_load.py [--quick] [--json]` and shows "
            "its figures here."
        )
        return
    command = [sys.executable, str(SERVER_LOAD)] + (["--quick"] if quick else [])
    try:
        usage = subprocess.run(
            [*command, "--help"], capture_output=True, text=True, timeout=60
        ).stdout
    except subprocess.TimeoutExpired:
        usage = ""
    wants_json = "--json" in usage
    if wants_json:
        command.append("--json")
    say("running benchmarks/server_load.py")
    limit = 180 if quick else 1800
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=limit, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        print(f"server_load.py did not finish within {limit} s")
        return
    lines = done.stdout.rstrip().splitlines()
    figures: Any = None
    if wants_json and lines:
        with contextlib.suppress(ValueError):
            figures = json.loads(lines[-1])
    if done.returncode != 0 or not isinstance(figures, dict):
        if done.returncode != 0:
            print(f"server_load.py exited {done.returncode}:")
            print()
            lines += done.stderr.rstrip().splitlines()[-15:]
        print("```")
        print("\n".join(lines[-60:]))
        print("```")
        return
    print("| figure | value |")
    print("| --- | --- |")
    for key, value in figures.items():
        print(f"| {key} | {_figure(value)} |")


def _figure(value: Any) -> str:
    if isinstance(value, dict) and "median" in value:
        med = value["median"]
        low, high = value.get("min", med), value.get("max", med)
        return f"{med:,.1f} ({low:,.1f}–{high:,.1f}) {value.get('unit', '')}".strip()
    return f"{value:,}" if isinstance(value, (int, float)) else str(value)


# -- profile of our client ------------------------------------------------------


def profile_ours(url: str, plan: Plan, top: int = 12) -> None:
    """cProfile of our client's worker during the measured part of (a), (b), (c)."""
    with tempfile.TemporaryDirectory() as folder:
        worker = python_worker("ours", "ours.py", profile_dir=Path(folder)).start()
        most = plan.channels[-1]
        runs = [
            ("(a) sequential round trips", "round_trips", 0),
            ("(b) pipelined pushes", "pipelined", 0),
            (f"(c) dispatch, {most:,} channels", "dispatch", most),
        ]
        try:
            for index, (title, op, channels) in enumerate(runs):
                run_scenario(worker, op, channels, url, plan, f"profile-{op}")
                print()
                print(
                    f"### Profile of our client: {title} (cProfile, measured part only)"
                )
                print()
                print(hotspots(Path(folder) / f"{op}-{index}.prof", top))
        finally:
            worker.stop()


def hotspots(path: Path, top: int) -> str:
    """The functions with the most own time, as a markdown table."""
    table: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in table.values()) or 1.0
    rows = sorted(table.items(), key=lambda item: item[1][2], reverse=True)
    lines = [
        "| own time | incl. callees | calls | function | where |",
        "| ---: | ---: | ---: | --- | --- |",
    ]
    for (file, line, func), (_, calls, own, cumulative, _) in rows[:top]:
        where = "built-in" if file == "~" else f"{_short(file)}:{line}"
        share, incl = f"{own / total:.1%}", f"{cumulative / total:.0%}"
        lines.append(f"| {share} | {incl} | {calls:,} | `{func}` | {where} |")
    return "\n".join(lines)


def _short(file: str) -> str:
    """A path from its package root: ``phoenix_channels/socket.py``."""
    for marker in ("site-packages/", "/src/", "/benchmarks/"):
        if marker in file:
            return file.split(marker, 1)[1]
    if "/lib/python" in file:
        return "stdlib " + file.split("/lib/python", 1)[1].split("/", 1)[-1]
    return file


# -- main -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.reps:
        plan = dataclasses.replace(plan, reps=args.reps)
    if args.channels:
        counts = tuple(sorted(int(n) for n in args.channels.split(",")))
        plan = dataclasses.replace(plan, channels=counts)
    wanted = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in CLIENTS]
    if unknown:
        say(f"unknown client(s) {unknown}; choose from {CLIENTS}")
        return 2
    results = Results(plan.reps)
    workers = start_workers(wanted, not args.no_setup, results)
    if "ours" not in workers:
        say("our client's worker did not start; nothing to compare")
        return 1
    clients = [c for c in CLIENTS if c in workers]
    versions = {name: w.versions for name, w in workers.items()}
    load_start = os.getloadavg()
    with _server(args.url, plan) as (url, described):
        say(f"server: {described}")
        try:
            measure(workers, url, plan, results)
        finally:
            for worker in workers.values():
                worker.stop()
        load_end = os.getloadavg()
        print_report(
            results, plan, clients, versions, described, (load_start, load_end)
        )
        if not args.no_server_load:
            server_load(args.quick)
        if args.profile:
            profile_ours(url, plan)
    _write_outputs(args, plan, results, clients)
    return 0


@contextlib.contextmanager
def _server(url: str | None, plan: Plan) -> Iterator[tuple[str, str]]:
    if url:
        yield url, url
        return
    with BundledServer(max_channels=max(plan.channels) + 10) as server:
        yield (
            server.url,
            (f"bundled, own process, --max-channels {server.max_channels}"),
        )


def _write_outputs(
    args: argparse.Namespace, plan: Plan, results: Results, clients: list[str]
) -> None:
    plot_path = args.plot or (None if args.quick else HERE / "results" / "dispatch.png")
    json_path = args.json or (None if args.quick else HERE / "results" / "last.json")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report.to_json(results), indent=1))
        say(f"wrote {json_path}")
    if plot_path is not None:
        ok, why = deps.matplotlib(not args.no_setup)
        if not ok:
            say(f"no plot: {why}")
            return
        title = "Dispatch cost vs channels joined (median, min–max bars)"
        report.plot(results, plan.channels, clients, plot_path, title)
        say(f"wrote {plot_path}")


if __name__ == "__main__":
    sys.exit(main())
