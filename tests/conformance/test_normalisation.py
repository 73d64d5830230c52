"""The normalisation rules of compare.py stay as narrow as their reasons."""

from __future__ import annotations

from typing import Any

from .compare import (
    drop_abandoned_join,
    drop_connect_error,
    drop_join_timeout_after_leave,
    normalise_close,
    normalise_close_outcomes,
    normalise_path,
    normalise_presence,
)

SCENARIO: dict[str, Any] = {
    "steps": [{"do": [{"op": "join", "chan": "c", "push": "j"}]}],
}
ERROR = {"source": "transport", "reason": "connection_closed"}


def test_abandoned_join_drops_only_the_pair_before_the_channel_error() -> None:
    """A join error is dropped only right before its channel's error with the
    same payload; a refused join (server error reply) stays."""
    outcomes = [
        {"s": "a", "p": "j", "status": "error", "payload": ERROR},
        {"s": "a", "c": "c", "cb": "error", "payload": ERROR},
        {"s": "a", "p": "j", "status": "error", "payload": {"reason": "unauthorized"}},
        {"s": "a", "p": "j", "status": "error", "payload": ERROR},
        {"s": "a", "cb": "close", "code": 1006},
    ]
    assert drop_abandoned_join(outcomes, SCENARIO) == 1
    assert outcomes[0] == {"s": "a", "c": "c", "cb": "error", "payload": ERROR}
    assert len(outcomes) == 4


def test_join_timeout_dropped_only_after_a_leave() -> None:
    """A join timeout before the channel left, or of another push, stays."""
    outcomes = [
        {"s": "a", "p": "j", "status": "timeout", "payload": {}},
        {"s": "a", "c": "c", "cb": "close", "payload": {}},
        {"s": "a", "p": "j", "status": "timeout", "payload": {}},
        {"s": "a", "c": "c", "cb": "close", "payload": "leave"},
        {"s": "a", "p": "x", "status": "timeout", "payload": {}},
        {"s": "a", "p": "j", "status": "timeout", "payload": {}},
    ]
    assert drop_join_timeout_after_leave(outcomes, SCENARIO) == 1
    assert len(outcomes) == 5
    assert outcomes[-1]["p"] == "x"


def test_connect_error_dropped() -> None:
    outcomes = [
        {"s": "a", "cb": "close", "code": 1006},
        {"s": "a", "cb": "connect_error"},
    ]
    assert drop_connect_error(outcomes, SCENARIO) == 1
    assert outcomes == [{"s": "a", "cb": "close", "code": 1006}]


def test_only_a_codeless_close_counts_as_the_default_1000() -> None:
    frames = ["close 1005 ''", "close 1000 'heartbeat timeout'", "close 1001 ''"]
    assert normalise_close(frames) == 1
    assert frames == [
        "close 1000 ''",
        "close 1000 'heartbeat timeout'",
        "close 1001 ''",
    ]
    outcomes = [{"s": "a", "cb": "close", "code": 1005}, {"s": "a", "cb": "close"}]
    assert normalise_close_outcomes(outcomes) == 1
    assert outcomes[0]["code"] == 1000


def test_paths_lose_only_empty_query_segments() -> None:
    assert normalise_path("/socket/longpoll?vsn=2.0.0&") == "/socket/longpoll?vsn=2.0.0"
    assert normalise_path("/s/websocket?a=1&&vsn=2.0.0") == "/s/websocket?a=1&vsn=2.0.0"
    assert normalise_path("/s/websocket?b=2&a=1") == "/s/websocket?b=2&a=1"
    assert normalise_path("/s/websocket") == "/s/websocket"


def test_presence_refs_numbered_by_first_appearance() -> None:
    meta = {"online_at": "1796403516", "phx_ref": "Fx1"}
    outcomes = [
        {"pr": "p", "cb": "join", "key": "u", "current": None, "joined": [meta]},
        {"pr": "p", "cb": "leave", "key": "u", "current": [], "left": [meta]},
    ]
    normalise_presence(outcomes)
    assert outcomes[0]["joined"] == [{"online_at": "<ts>", "phx_ref": "<phx_ref 1>"}]
    assert outcomes[1]["left"] == outcomes[0]["joined"]
