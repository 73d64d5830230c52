"""Differential conformance: our client against the official phoenix.js.

Each scenario of scenarios.py runs twice against its own bundled server:
once with phoenix.js (npm ``phoenix``, pinned in package.json, under node,
driver.mjs) and once with phoenix_channels (py_driver.py). The frames each
client sent (the server's recording, per connection) and the outcomes each
observed (callbacks, in order) must be the same after the normalisation of
compare.py; docs/differences.md lists every deliberate difference.

Needs node and npm: ``npm ci`` runs here once per session when
``node_modules`` is missing or does not match package-lock.json. Without node
or npm these tests fail; they are never skipped.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from phoenix_channels.server import Server

from .compare import differences, view
from .harness import NodeDriver, Run, run_scenario
from .py_driver import PyDriver
from .scenarios import SCENARIOS

pytestmark = pytest.mark.node

HERE = Path(__file__).resolve().parent
NPM_CI_TIMEOUT = 240.0  # seconds
PHOENIX_VERSION = "1.8.16"
STAMP = ".conformance-lock.sha256"


def _lock_digest() -> str:
    return hashlib.sha256((HERE / "package-lock.json").read_bytes()).hexdigest()


def _installed_version(package: str) -> str | None:
    manifest = HERE / "node_modules" / package / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """node_modules as package-lock.json pins it (``npm ci`` when stale)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "the conformance suite needs node (>= 18) and npm on PATH to run the "
            "official phoenix.js client; install them (e.g. apt-get install "
            "nodejs npm) and run the tests again",
            pytrace=False,
        )
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    major = version.lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < 18:
        pytest.fail(
            f"the conformance suite needs node >= 18 (fetch for LongPoll), "
            f"found {version or 'no version'} at {node}",
            pytrace=False,
        )
    modules = HERE / "node_modules"
    stamp = modules / STAMP
    digest = _lock_digest()
    fresh = (
        stamp.is_file()
        and stamp.read_text().strip() == digest
        and _installed_version("phoenix") is not None
    )
    if not fresh:
        try:
            result = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=HERE,
                capture_output=True,
                text=True,
                timeout=NPM_CI_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"npm ci in {HERE} took more than {NPM_CI_TIMEOUT:g} s", pytrace=False
            )
        if result.returncode != 0:
            pytest.fail(
                f"npm ci in {HERE} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}",
                pytrace=False,
            )
        stamp.write_text(digest + "\n")
    installed = _installed_version("phoenix")
    if installed != PHOENIX_VERSION:
        pytest.fail(
            f"node_modules has phoenix {installed}, expected {PHOENIX_VERSION}",
            pytrace=False,
        )
    return modules


def _server_has_longpoll() -> bool:
    return "longpoll" in inspect.signature(Server).parameters


FEATURES = {"server_longpoll": _server_has_longpoll()}


def _param(scenario: dict[str, Any]) -> Any:
    marks = []
    if "xfail" in scenario:
        marks.append(pytest.mark.xfail(strict=True, reason=scenario["xfail"]))
    feature = scenario.get("xfail_unless")
    if feature is not None and not FEATURES[feature]:
        marks.append(
            pytest.mark.xfail(strict=True, reason="waiting for server long-poll")
        )
    return pytest.param(scenario, id=scenario["name"], marks=marks)


def _report(js: Run, py: Run, notes: list[str]) -> str:
    return (
        f"phoenix.js {js.seconds:.2f} s, ours {py.seconds:.2f} s; "
        f"normalised: {notes or 'nothing'}\n"
        f"phoenix.js outcomes: {json.dumps(js.outcomes)}\n"
        f"our outcomes: {json.dumps(py.outcomes)}\n"
        f"node stderr: {js.stderr}"
    )


@pytest.mark.parametrize("scenario", [_param(s) for s in SCENARIOS])
async def test_same_frames_and_outcomes(
    scenario: dict[str, Any], node_modules: Path
) -> None:
    """Our client sends the same frames and observes the same outcomes as
    phoenix.js in this scenario."""
    js = await run_scenario(scenario, NodeDriver())
    py = await run_scenario(scenario, PyDriver())
    js_view, _ = view(js, scenario, ours=False)
    py_view, notes = view(py, scenario, ours=True)
    diffs = differences(js_view, py_view)
    assert not diffs, "\n".join([scenario["doc"], *diffs, _report(js, py, notes)])
