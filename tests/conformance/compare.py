"""Normalising two runs of a scenario and comparing them.

What is compared, per scenario:

1. the frames each client sent, per connection, in order (with the
   connection's request path, which carries the params and ``vsn``);
2. the outcomes each client observed, in order, per socket (two sockets in
   one run talk over two connections, whose relative timing is not part of
   any contract).

Normalisation (each rule names its reason; docs/differences.md lists them):

- refs: none needed. Both clients mint refs from one socket-wide counter in
  the same order, so frames are compared with their refs as sent.
- timestamps: presence metas carry the server's ``online_at`` and
  ``phx_ref``; they become ``<ts>`` and ``<phx_ref N>`` (N by first
  appearance), as they differ between runs of the same client.
- close codes: phoenix.js ``disconnect()`` closes without a code, ours with
  1000 by default (API.md); the code-less close is written as 1000.
- request paths: empty query segments (phoenix.js LongPoll's null token)
  are dropped.
- deliberate differences of our client (API.md, the docstrings of push.py,
  channel.py, socket.py), applied to our client's outcomes only, and each
  as narrow as the difference itself: see :data:`DELIBERATE`.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from typing import Any

from .harness import Run

Outcome = dict[str, Any]


def _join_channels(scenario: dict[str, Any]) -> dict[str, str]:
    """Join push id -> its channel id, from the scenario's ops."""
    found: dict[str, str] = {}
    for step in scenario["steps"]:
        for op in step.get("do", []):
            if op["op"] == "join":
                found[op["push"]] = op["chan"]
    return found


def drop_connect_error(outcomes: list[Outcome], scenario: dict[str, Any]) -> int:
    """API.md: ``await socket.connect()`` raises ConnectError when the first
    attempt fails; phoenix.js has no result for ``connect()``. The driver
    reports that as a ``connect_error`` outcome, which has no counterpart."""
    before = len(outcomes)
    outcomes[:] = [o for o in outcomes if o.get("cb") != "connect_error"]
    return before - len(outcomes)


def drop_abandoned_join(outcomes: list[Outcome], scenario: dict[str, Any]) -> int:
    """push.py (``Push._abandon``): when the channel errors while its join is
    pending, our join attempt ends with ``"error"`` (the error's payload)
    just before the channel's ``on_error`` callbacks run; phoenix.js resets
    the join push silently. Only that exact pair is matched: a join-push
    error directly followed by the same channel's error with the same
    payload."""
    joins = _join_channels(scenario)
    kept: list[Outcome] = []
    dropped = 0
    for i, o in enumerate(outcomes):
        nxt = outcomes[i + 1] if i + 1 < len(outcomes) else None
        if (
            o.get("p") in joins
            and o.get("status") == "error"
            and "tag" not in o
            and nxt is not None
            and nxt.get("c") == joins[o["p"]]
            and nxt.get("cb") == "error"
            and nxt.get("payload") == o.get("payload")
        ):
            dropped += 1
            continue
        kept.append(o)
    outcomes[:] = kept
    return dropped


def drop_join_timeout_after_leave(
    outcomes: list[Outcome], scenario: dict[str, Any]
) -> int:
    """channel.py (``Channel.leave`` keeps the join's timer; API.md: every
    sent push ends exactly once per attempt, also when the channel leaves):
    a join still pending at ``leave()`` ends with ``"timeout"`` when its
    timer runs out; phoenix.js cancels that timer, so its join never ends.
    Matched: a join-push timeout after its channel's close with ``"leave"``."""
    joins = _join_channels(scenario)
    left: set[str] = set()
    kept: list[Outcome] = []
    dropped = 0
    for o in outcomes:
        if o.get("cb") == "close" and o.get("payload") == "leave" and "c" in o:
            left.add(o["c"])
        if (
            o.get("p") in joins
            and o.get("status") == "timeout"
            and joins[o["p"]] in left
        ):
            dropped += 1
            continue
        kept.append(o)
    outcomes[:] = kept
    return dropped


#: Deliberate differences normalised away on our client's side only.
DELIBERATE: list[Callable[[list[Outcome], dict[str, Any]], int]] = [
    drop_connect_error,
    drop_abandoned_join,
    drop_join_timeout_after_leave,
]


def normalise_presence(outcomes: list[Outcome]) -> None:
    """``online_at`` -> ``<ts>``; ``phx_ref`` -> ``<phx_ref N>`` by first
    appearance (the server makes both up anew on every run)."""
    refs: dict[str, str] = {}

    def fix(value: Any) -> Any:
        if isinstance(value, list):
            return [fix(v) for v in value]
        if isinstance(value, dict):
            out = {}
            for key, v in value.items():
                if key == "online_at":
                    out[key] = "<ts>"
                elif key in ("phx_ref", "phx_ref_prev") and isinstance(v, str):
                    out[key] = refs.setdefault(v, f"<phx_ref {len(refs) + 1}>")
                else:
                    out[key] = fix(v)
            return out
        return value

    for o in outcomes:
        if "pr" in o:
            for key in ("current", "joined", "left"):
                if key in o:
                    o[key] = fix(o[key])


#: phoenix.js ``disconnect()`` calls ``WebSocket.close()`` with no code, so the
#: close frame has no status (the server records 1005); our
#: ``disconnect(code=1000)`` sends 1000 by default (API.md).
JS_NO_CODE_CLOSE = "close 1005 ''"
OUR_DEFAULT_CLOSE = "close 1000 ''"


def normalise_close(frames: list[str]) -> int:
    """phoenix.js's code-less close frame is written as our default 1000."""
    count = frames.count(JS_NO_CODE_CLOSE)
    frames[:] = [OUR_DEFAULT_CLOSE if f == JS_NO_CODE_CLOSE else f for f in frames]
    return count


def normalise_close_outcomes(outcomes: list[Outcome]) -> int:
    """The same for the close event a transport reports without a server
    echo (LongPoll): phoenix.js ``close()`` without a code gives 1005."""
    count = 0
    for o in outcomes:
        if o.get("cb") == "close" and o.get("code") == 1005 and "c" not in o:
            o["code"] = 1000
            count += 1
    return count


def normalise_path(path: str) -> str:
    """Empty query segments dropped: phoenix.js 1.8's LongPoll appends its
    session token even while it is null, which serialises to nothing and
    leaves ``?vsn=2.0.0&`` (PROTOCOL §8.2); the query means the same."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    segments = [s for s in query.split("&") if s]
    return base + ("?" + "&".join(segments) if segments else "")


def view(run: Run, scenario: dict[str, Any], ours: bool) -> tuple[Any, list[str]]:
    """The comparable form of a run, and notes on the rules that applied."""
    outcomes = [dict(o) for o in run.outcomes]
    notes = []
    if ours:
        for rule in DELIBERATE:
            count = rule(outcomes, scenario)
            if count:
                notes.append(f"{rule.__name__}: {count}")
    elif normalise_close_outcomes(outcomes):
        notes.append("normalise_close_outcomes")
    normalise_presence(outcomes)
    by_socket: dict[str, list[str]] = {}
    for o in outcomes:
        by_socket.setdefault(o.get("s", "?"), []).append(
            json.dumps(o, sort_keys=True, ensure_ascii=False)
        )
    connections = []
    for c in run.connections:
        frames = list(c["frames"])
        if not ours and normalise_close(frames):
            notes.append("normalise_close")
        connections.append([f"path {normalise_path(c['path'])}", *frames])
    return {"connections": connections, "outcomes": by_socket}, notes


def differences(js: Any, py: Any) -> list[str]:
    """Human-readable differences between two views (empty if equal)."""
    out: list[str] = []
    n = max(len(js["connections"]), len(py["connections"]))
    for i in range(n):
        a = js["connections"][i] if i < len(js["connections"]) else ["<none>"]
        b = py["connections"][i] if i < len(py["connections"]) else ["<none>"]
        if a != b:
            out.append(f"frames sent on connection {i} differ:")
            out += difflib.unified_diff(a, b, "phoenix.js", "ours", lineterm="", n=50)
    for s in sorted(set(js["outcomes"]) | set(py["outcomes"])):
        a = js["outcomes"].get(s, [])
        b = py["outcomes"].get(s, [])
        if a != b:
            out.append(f"outcomes of socket {s!r} differ:")
            out += difflib.unified_diff(a, b, "phoenix.js", "ours", lineterm="", n=50)
    return out
