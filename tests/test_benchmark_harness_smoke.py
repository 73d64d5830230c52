"""The benchmark harness still runs end to end (benchmarks/run.py --quick).

Timings are never asserted here: only that every part of the harness works
and prints its table. The node and realtime peers are installed by the
harness itself when the machine can (npm, PyPI); when it cannot, the run
must say why and carry on without them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"
PEERS = {"phoenix.js (node)": "phoenix.js", "realtime": "realtime"}


def test_quick_run_prints_every_figure_ratio_and_target() -> None:
    """A quick run measures every metric for our client, judges every target
    and reaches the server-load section."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, str(RUN), "--quick"],
        capture_output=True,
        text=True,
        timeout=900,  # a first run installs the peers (npm ci, pip)
        cwd=ROOT,
        env=env,
    )
    out, err = done.stdout, done.stderr
    assert done.returncode == 0, f"exit {done.returncode}\n{out}\n{err}"

    figures = _table(out, "| metric | unit |")
    for row in (
        "(a) round trip: client CPU",
        "(a) round trip: wall",
        "(b) 200 pipelined: client CPU per push",
        "(b) pipelined throughput",
        "(c) dispatch, 10 channels: CPU per msg",
        "(c) dispatch, 50 channels: CPU per msg",
        "(d) 500 pending: memory per push",
    ):
        cells = figures[row]
        assert cells[1] not in ("", "–"), f"ours has no {row!r}: {cells}"
        assert cells[2] not in ("", "–"), f"raw websockets has no {row!r}: {cells}"

    verdicts = _table(out, "| target |")
    del verdicts["metric"]
    assert len(verdicts) == 5
    for target, cells in verdicts.items():
        assert cells[-1].startswith(("PASS", "FAIL", "SKIP")), (target, cells)

    # (e) comes from benchmarks/server_load.py, or says why it cannot.
    assert "### (e) Bundled server" in out

    # A peer that is missing must be explained, never silently dropped.
    columns = figures["metric"]
    for label, name in PEERS.items():
        if label not in columns:
            assert f"skipping {label}" in err, f"{name} vanished without a reason"
            print(f"{name} was skipped:", _reason(err, label))


def _table(out: str, header: str) -> dict[str, list[str]]:
    """Rows of the markdown table whose header starts with ``header``,
    keyed by their first cell (the header row included)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = {"metric": [c.strip() for c in lines[start].strip("|").split("|")]}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells
    return rows


def _reason(err: str, label: str) -> str:
    return next(line for line in err.splitlines() if f"skipping {label}" in line)
