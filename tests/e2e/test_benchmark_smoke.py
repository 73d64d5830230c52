"""``benchmarks/server_load.py`` still runs: a tiny ``--quick`` run, so the
script does not rot. Its timings are printed, never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "server_load.py"


def test_server_load_quick_run_prints_both_tables() -> None:
    """A tiny run ramps 20 connections, keeps them alive and measures fan-out."""
    tiny = ["--max-connections", "20", "--step", "10", "--batch", "10"]
    tiny += ["--subscribers", "10", "--broadcasts", "10", "--runs", "2"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", *tiny, "--timeout", "10"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Connections (each joined to room:load" in out
    assert "held: 20 of 20 requested connections alive" in out
    assert "Broadcast fan-out (10 subscribers of room:fanout" in out
    assert "fan-out msgs/s: median" in out
    assert "did not deliver" not in out
