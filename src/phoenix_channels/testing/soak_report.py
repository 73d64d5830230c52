"""The figures of a soak (:mod:`.soak`) and the invariant violations found."""

from __future__ import annotations

import dataclasses
import logging
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SoakReport"]

_log = logging.getLogger("phoenix_channels.soak")

#: Violations kept in a report; past that only the count grows.
MAX_VIOLATIONS = 1000


@dataclass
class SoakReport:
    """What one soak did, what it measured, and what went wrong.

    Times are in seconds, memory in bytes (tracemalloc, library only).
    """

    target: str
    transport: str
    seed: int
    seconds: float = 0.0
    channels: int = 0
    rate: float = 0.0
    #: Faults injected, by kind.
    faults: Counter[str] = field(default_factory=Counter)
    #: Faults after which nothing had broken, so nothing had to heal.
    absorbed: Counter[str] = field(default_factory=Counter)
    #: Seconds from each fault (its end, for the ones that last) until the
    #: socket was open and every channel joined again, by kind.
    heal_times: dict[str, list[float]] = field(default_factory=dict)
    #: Seconds from a freeze or stall to the client noticing it.
    detect_times: list[float] = field(default_factory=list)
    #: Pushes made (``channel.push`` returned).
    pushes: int = 0
    #: Pushes refused at the call with ``BufferFull``.
    rejected: int = 0
    #: How the push attempts ended, by status, and by event then status.
    outcomes: Counter[str] = field(default_factory=Counter)
    by_event: dict[str, Counter[str]] = field(default_factory=dict)
    #: Seconds from ``channel.push`` to its ok reply.
    latencies: list[float] = field(default_factory=list)
    #: Join attempts (the first ones and every rejoin), by outcome.
    joins: Counter[str] = field(default_factory=Counter)
    opens: int = 0
    closes: int = 0
    transport_errors: int = 0
    #: Socket closes that happened between faults, with no fault to blame.
    spontaneous_closes: int = 0
    max_push_buffer: int = 0
    max_send_buffer: int = 0
    #: WARNING lines of the library, numbers masked, by text.
    warnings: Counter[str] = field(default_factory=Counter)
    #: ERROR lines that were expected: crash reports of channels the soak
    #: crashed on purpose.
    expected_errors: int = 0
    tasks: dict[str, int] = field(default_factory=dict)
    memory: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    violation_count: int = 0

    @property
    def ok(self) -> bool:
        """True when no invariant was violated."""
        return self.violation_count == 0

    def violate(self, text: str) -> None:
        """Record a broken invariant (and log it as a warning)."""
        self.violation_count += 1
        if len(self.violations) < MAX_VIOLATIONS:
            self.violations.append(text)
        _log.warning("! soak invariant violated: %s", text)

    def all_heal_times(self) -> list[float]:
        """Every time to heal, sorted."""
        return sorted(t for times in self.heal_times.values() for t in times)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-compatible data (latencies summarised)."""
        data: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, dict):  # Counters too: asdict would miscount
                value = {
                    k: dict(v) if isinstance(v, dict) else v for k, v in value.items()
                }
            data[item.name] = value
        data["ok"] = self.ok
        data["latencies"] = summary(self.latencies)
        data["heal_summary"] = summary(self.all_heal_times())
        return data

    def format(self) -> str:
        """A human-readable summary in Markdown."""
        return "\n".join([*self._fault_table(), "", *self._figures()])

    def _fault_table(self) -> list[str]:
        lines = [
            f"Soak of {self.target} over {self.transport}: "
            f"{self.seconds:.1f} s, seed {self.seed}, {self.channels} channels, "
            f"{self.rate:g} pushes/s.",
            "",
            "| fault | injected | broke nothing | healed | median heal (s) "
            "| max heal (s) |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        faults, absorbed = self.faults, self.absorbed
        rows = [
            (kind, faults[kind], absorbed[kind], self.heal_times.get(kind, []))
            for kind in sorted(faults)
        ]
        rows.append(
            ("**all**", faults.total(), absorbed.total(), self.all_heal_times())
        )
        for kind, injected, untouched, times in rows:
            lines.append(
                f"| {kind} | {injected} | {untouched} | {len(times)} | "
                f"{_fmt(_median(times))} | {_fmt(max(times, default=None))} |"
            )
        return lines

    def _figures(self) -> list[str]:
        lat = summary(self.latencies)
        lines = [
            f"- pushes: {self.pushes} made, {self.rejected} refused at the call "
            f"(BufferFull); attempts ended {_counts(self.outcomes)}",
            *(
                f"  - {event}: {_counts(self.by_event[event])}"
                for event in sorted(self.by_event)
            ),
            f"- ok latency (from the call): median {_ms(lat['median'])}, "
            f"p99 {_ms(lat['p99'])}, max {_ms(lat['max'])}",
            f"- freeze/stall noticed after: {_summary_text(self.detect_times)}",
            f"- joins: {_counts(self.joins)}; socket opens {self.opens}, closes "
            f"{self.closes} ({self.spontaneous_closes} between faults), "
            f"transport errors {self.transport_errors}",
            f"- client buffers at most: {self.max_push_buffer} pushes in a "
            f"channel, {self.max_send_buffer} frames in the send buffer",
            f"- asyncio tasks: {_counts(self.tasks)}",
            f"- library memory (bytes): {_counts(self.memory)}",
            f"- warnings logged: {sum(self.warnings.values())}; expected errors "
            f"(crash reports of channels crashed on purpose): "
            f"{self.expected_errors}",
            *(f"  - {n} x {text}" for text, n in self.warnings.most_common(10)),
            f"- invariant violations: {self.violation_count}",
            *(f"  - {v}" for v in self.violations[:50]),
        ]
        return lines


def summary(values: Sequence[float]) -> dict[str, float | None]:
    """Count, median, 99th percentile and maximum of ``values``."""
    if not values:
        return {"count": 0, "median": None, "p99": None, "max": None}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "count": len(ordered),
        "median": statistics.median(ordered),
        "p99": p99,
        "max": ordered[-1],
    }


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _summary_text(values: Sequence[float]) -> str:
    s = summary(values)
    if not s["count"]:
        return "-"
    return f"{s['count']} times, median {_fmt(s['median'])} s, max {_fmt(s['max'])} s"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


def _counts(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "-"
