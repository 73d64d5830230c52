"""Figures, ratios, targets and the plot of one benchmark run.

Every figure is the median of the run's repetitions, with min and max.
Ratios are *paired*: repetition r of our client is divided by repetition r
of the peer (they ran back to back, interleaved with the other clients),
and the table shows the median of those per-repetition ratios.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLIENTS = ("ours", "raw", "phoenix.js", "realtime")
LABELS = {
    "ours": "ours",
    "raw": "raw websockets",
    "phoenix.js": "phoenix.js (node)",
    "realtime": "realtime",
}
PEERS = ("raw", "phoenix.js", "realtime")


@dataclass
class Metric:
    key: str
    title: str
    unit: str
    higher_is_better: bool = False
    digits: int = 1


@dataclass
class Results:
    """Per-repetition values: ``values[metric][client][rep]`` (None: failed)."""

    reps: int
    values: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)  # client -> notes
    #: (metric, client) pairs whose figure carries the † footnote.
    flagged: set[tuple[str, str]] = field(default_factory=set)

    def put(self, metric: str, client: str, rep: int, value: float) -> None:
        row = self.values.setdefault(metric, {})
        row.setdefault(client, [None] * self.reps)[rep] = value

    def series(self, metric: str, client: str) -> list[float]:
        got = self.values.get(metric, {}).get(client, [])
        return [v for v in got if v is not None]

    def paired(self, metric: str, num: str, den: str) -> list[float]:
        """Per repetition: ``metric`` of client ``num`` ÷ that of ``den``."""
        return _divide(self._raw(metric, num), self._raw(metric, den))

    def within(self, num: str, den: str, client: str) -> list[float]:
        """Per repetition: metric ``num`` ÷ metric ``den``, for one client."""
        return _divide(self._raw(num, client), self._raw(den, client))

    def _raw(self, metric: str, client: str) -> list[float | None]:
        return self.values.get(metric, {}).get(client, [None] * self.reps)

    def note(self, client: str, text: str) -> None:
        self.notes.setdefault(client, []).append(text)


def _divide(a: list[float | None], b: list[float | None]) -> list[float]:
    return [x / y for x, y in zip(a, b, strict=True) if x is not None and y]


def summary(values: Sequence[float]) -> tuple[float, float, float] | None:
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def _num(value: float, digits: int) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def cell(values: Sequence[float], digits: int = 1) -> str:
    stats = summary(values)
    if stats is None:
        return "–"
    med, lo, hi = stats
    if len(values) == 1:
        return _num(med, digits)
    return f"{_num(med, digits)} ({_num(lo, digits)}–{_num(hi, digits)})"


def metrics(channel_counts: Sequence[int], pushes: int, pending: int) -> list[Metric]:
    rows = [
        Metric("rt_cpu", "(a) round trip: client CPU", "µs"),
        Metric("rt_wall", "(a) round trip: wall", "µs"),
        Metric("pipe_cpu", f"(b) {pushes:,} pipelined: client CPU per push", "µs"),
        Metric("pipe_wall", f"(b) {pushes:,} pipelined: total time", "ms"),
        Metric(
            "pipe_rate", "(b) pipelined throughput", "pushes/s", higher_is_better=True
        ),
    ]
    for n in channel_counts:
        rows.append(
            Metric(f"dispatch_{n}", f"(c) dispatch, {n:,} channels: CPU per msg", "µs")
        )
    rows.append(
        Metric(
            f"mem_{pending}", f"(d) {pending:,} pending: memory per push", "B", digits=0
        )
    )
    return rows


def figures_table(results: Results, rows: list[Metric], clients: Sequence[str]) -> str:
    head = ["metric", "unit", *(LABELS[c] for c in clients)]
    lines = [_row(head), _row(["---"] * len(head))]
    for m in rows:
        marks = [
            cell(results.series(m.key, c), m.digits) + _mark(results, m.key, c)
            for c in clients
        ]
        lines.append(_row([m.title, m.unit, *marks]))
    return "\n".join(lines)


def _mark(results: Results, metric: str, client: str) -> str:
    return " †" if (metric, client) in results.flagged else ""


def ratios_table(results: Results, rows: list[Metric], clients: Sequence[str]) -> str:
    peers = [p for p in PEERS if p in clients]
    head = ["metric", *(f"ours ÷ {LABELS[p]}" for p in peers)]
    lines = [_row(head), _row(["---"] * len(head))]
    for m in rows:
        lines.append(
            _row([m.title, *(cell(results.paired(m.key, "ours", p), 2) for p in peers)])
        )
    return "\n".join(lines)


@dataclass
class Target:
    name: str
    describe: str
    values: Callable[[Results], list[float]]
    limit: float
    kind: str  # "<=", "<" or ">="
    missing: str = ""  # why it cannot be measured in this run, if so


def evaluate(target: Target, results: Results) -> tuple[str, str]:
    """(measured, verdict) for one target."""
    if target.missing:
        return "–", f"SKIP ({target.missing})"
    values = target.values(results)
    stats = summary(values)
    if stats is None:
        return "–", "SKIP (not measured)"
    med, lo, hi = stats
    ok = {
        "<=": med <= target.limit,
        "<": med < target.limit,
        ">=": med >= target.limit,
    }[target.kind]
    crosses = lo <= target.limit <= hi and len(values) > 1
    verdict = "PASS" if ok else "FAIL"
    if crosses:
        verdict += " (the range crosses the limit)"
    return cell(values, 2), verdict


def targets_table(targets: list[Target], results: Results) -> str:
    lines = [_row(["target", "measured", "limit", "verdict"]), _row(["---"] * 4)]
    for t in targets:
        measured, verdict = evaluate(t, results)
        lines.append(_row([t.describe, measured, f"{t.kind} {t.limit:g}", verdict]))
    return "\n".join(lines)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def plot(
    results: Results,
    channel_counts: Sequence[int],
    clients: Sequence[str],
    path: Path,
    title: str,
) -> None:
    """Dispatch CPU per message against channel count, one line per client."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    for client in clients:
        xs, meds, lows, highs = [], [], [], []
        for n in channel_counts:
            stats = summary(results.series(f"dispatch_{n}", client))
            if stats is None:
                continue
            med, lo, hi = stats
            xs.append(n)
            meds.append(med)
            lows.append(med - lo)
            highs.append(hi - med)
        if not xs:
            continue
        label = LABELS[client]
        if any((f"dispatch_{n}", client) in results.flagged for n in channel_counts):
            label += " † (rejects the events)"
        ax.errorbar(xs, meds, yerr=[lows, highs], marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    ticks = [t for t in (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500) if low <= t <= high]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(list(channel_counts), [f"{n:,}" for n in channel_counts])
    ax.set_xlabel("channels joined on the socket")
    ax.set_ylabel("client CPU per message, µs (lower is better)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def to_json(results: Results) -> dict[str, Any]:
    return {
        "reps": results.reps,
        "values": results.values,
        "notes": results.notes,
        "flagged": sorted(results.flagged),
    }
