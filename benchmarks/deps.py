"""Setting up the peers: the ``bench`` extra's packages and the node client.

The pinned requirements live in ``pyproject.toml``'s ``bench`` extra. They are
installed with ``pip install --target`` into ``benchmarks/.deps/<name>``, one
folder each, never into the project's environment: ``realtime`` pins
``websockets<16`` and ``httpx<0.29``, so installing it there would downgrade
the very library our client runs on (and the test suite with it). The realtime
worker gets its folder first on PYTHONPATH; the plot adds matplotlib's folder
at the end of ``sys.path``.

The node client is ``npm ci`` in ``benchmarks/node`` (committed lockfile).
Every failure is returned as a reason, so a missing peer is reported and the
run goes on without it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEPS = HERE / ".deps"
NODE_DIR = HERE / "node"


def bench_requirements() -> dict[str, str]:
    """``{"realtime": "realtime==X", ...}`` from the ``bench`` extra."""
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^bench\s*=\s*\[(.*?)\]", text, re.M | re.S)
    if block is None:
        return {}
    reqs = re.findall(r'"([^"]+)"', block.group(1))
    return {re.split(r"[=<>!~\[ ;]", req, maxsplit=1)[0].lower(): req for req in reqs}


@contextlib.contextmanager
def _exclusive() -> Iterator[None]:
    """One installer at a time (two runs may start together, e.g. in tests)."""
    DEPS.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(DEPS / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _pip_target(name: str, install: bool) -> tuple[Path | None, str]:
    """The folder holding the pinned ``name``, installing it if allowed."""
    requirement = bench_requirements().get(name)
    if requirement is None:
        return None, f"no {name!r} pin in pyproject.toml's bench extra"
    target = DEPS / name
    marker = target / ".requirement"
    if marker.exists() and marker.read_text() == requirement:
        return target, ""
    if not install:
        return None, f"{requirement} is not installed (run without --no-setup)"
    with _exclusive():
        if marker.exists() and marker.read_text() == requirement:
            return target, ""
        return _pip_install(requirement, target, marker)


def _pip_install(
    requirement: str, target: Path, marker: Path
) -> tuple[Path | None, str]:
    shutil.rmtree(target, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "install", "--quiet"]
    command += ["--disable-pip-version-check", "--target", str(target), requirement]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"pip install {requirement} failed: {exc}"
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
        detail = (errors or done.stderr.splitlines() or ["?"])[-1].strip()
        return None, f"pip install {requirement} failed: {detail}"
    marker.write_text(requirement)
    return target, ""


def realtime(install: bool) -> tuple[Path | None, str]:
    """PYTHONPATH folder for the realtime worker, or None and why not."""
    if sys.version_info < (3, 11):
        return None, "realtime needs Python 3.11 or newer"
    return _pip_target("realtime", install)


def matplotlib(install: bool) -> tuple[bool, str]:
    """Make ``import matplotlib`` work in this process, or say why not."""
    if importlib.util.find_spec("matplotlib") is not None:
        return True, ""
    target, why = _pip_target("matplotlib", install)
    if target is None:
        return False, why
    sys.path.append(str(target))
    return True, ""


def node(install: bool) -> tuple[str | None, str]:
    """The node executable with ``npm ci`` done, or None and why not."""
    node_bin = shutil.which("node")
    if node_bin is None:
        return None, "node is not installed (apt-get install nodejs npm)"
    installed = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return node_bin, ""
    if not install:
        return None, "benchmarks/node/node_modules is missing (run without --no-setup)"
    npm = shutil.which("npm")
    if npm is None:
        return None, "npm is not installed (apt-get install npm)"
    command = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        with _exclusive():
            done = subprocess.run(
                command, cwd=NODE_DIR, capture_output=True, text=True, timeout=600
            )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"npm ci failed: {exc}"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["?"]
        return None, f"npm ci failed: {lines[-1]}"
    return node_bin, ""
