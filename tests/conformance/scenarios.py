"""The conformance scenarios: one description, interpreted by both drivers.

Each scenario is plain JSON data (see harness.py for the steps and
driver.mjs for the ops), built here with a few helpers so that the common
prefixes read short. Times are in milliseconds, as phoenix.js takes them;
py_driver.py turns them into our seconds.

Every scenario ends with the sockets disconnected and their ``disconnected``
outcome seen, so both runs stop at the same point.

A scenario may carry ``"xfail"``: the reason the test is expected to fail
(``CLIENT DIFF: ...`` for a difference that is our client's fault).
test_conformance.py turns it into a strict xfail. ``"xfail_unless":
"server_longpoll"`` is a strict xfail while the bundled server has no
long-poll transport.
"""

from __future__ import annotations

from typing import Any

Step = dict[str, Any]

LONG = 5000  # a timeout that must not fire within a scenario


# -- helpers: ops ------------------------------------------------------------------


def socket(id: str = "a", **opts: Any) -> dict[str, Any]:
    """A socket; ``opts`` are phoenix.js option names (times in ms)."""
    return {"op": "socket", "id": id, "opts": opts}


def connect(s: str = "a") -> dict[str, Any]:
    return {"op": "connect", "socket": s}


def disconnect(s: str = "a") -> dict[str, Any]:
    return {"op": "disconnect", "socket": s}


def channel(
    id: str,
    topic: str,
    s: str = "a",
    params: dict[str, Any] | None = None,
    on: tuple[str, ...] = (),
    params_seq: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"op": "channel", "socket": s, "id": id, "topic": topic}
    if params is not None:
        op["params"] = params
    if params_seq is not None:
        op["params_seq"] = params_seq
    if on:
        op["on"] = list(on)
    return op


def join(chan: str, push: str, timeout: int | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"op": "join", "chan": chan, "push": push}
    if timeout is not None:
        op["timeout"] = timeout
    return op


def push(
    chan: str,
    id: str,
    event: str,
    payload: Any = None,
    timeout: int | None = None,
    statuses: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"op": "push", "chan": chan, "push": id, "event": event}
    if payload is not None:
        op["payload"] = payload
    if timeout is not None:
        op["timeout"] = timeout
    if statuses is not None:
        op["statuses"] = list(statuses)
    return op


def leave(chan: str, push: str, timeout: int | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"op": "leave", "chan": chan, "push": push}
    if timeout is not None:
        op["timeout"] = timeout
    return op


def on(chan: str, id: str, event: str) -> dict[str, Any]:
    """``channel.on(event, cb)``; its outcomes carry ``tag: id``."""
    return {"op": "on", "chan": chan, "id": id, "event": event}


def off(chan: str, event: str, id: str | None = None) -> dict[str, Any]:
    """``channel.off(event, ref of binding id)`` (every binding if no id)."""
    op = {"op": "off", "chan": chan, "event": event}
    if id is not None:
        op["id"] = id
    return op


def resend(push: str, timeout: int) -> dict[str, Any]:
    return {"op": "resend", "push": push, "timeout": timeout}


def receive(push: str, status: str, tag: str) -> dict[str, Any]:
    return {"op": "receive", "push": push, "status": status, "tag": tag}


def presence(chan: str, id: str) -> dict[str, Any]:
    return {"op": "presence", "chan": chan, "id": id}


def caught(op: dict[str, Any], id: str, s: str = "a") -> dict[str, Any]:
    """``op``, reporting whether it raised as outcome ``caught: id``."""
    return {**op, "catch": id, "s": s}


def binary(hex_bytes: str) -> dict[str, str]:
    return {"$bytes": hex_bytes}


# -- helpers: steps ----------------------------------------------------------------


def do(*ops: dict[str, Any]) -> Step:
    return {"do": list(ops)}


def got(count: int = 1, **pattern: Any) -> Step:
    """Wait for ``count`` outcomes matching ``pattern``."""
    return {"wait": {"outcome": pattern, "count": count}}


def frame(count: int = 1, **pattern: Any) -> Step:
    """Wait for ``count`` frames recorded by the server (``dir`` "in" by default)."""
    return {"wait": {"frame": pattern, "count": count}}


def connections(n: int) -> Step:
    return {"wait": {"connections": n}}


def server(action: Any) -> Step:
    return {"server": action}


def opened(s: str = "a", **opts: Any) -> list[Step]:
    """A connected socket."""
    return [do(socket(s, **opts), connect(s)), got(s=s, cb="open")]


def joined(
    topic: str = "room:lobby",
    s: str = "a",
    c: str = "c",
    j: str = "j",
    on: tuple[str, ...] = (),
    params: dict[str, Any] | None = None,
    **opts: Any,
) -> list[Step]:
    """A connected socket with one joined channel."""
    return [
        *opened(s, **opts),
        do(channel(c, topic, s, params=params, on=on), join(c, j)),
        got(p=j, status="ok"),
    ]


def finish(*sockets: str, count: int = 1) -> list[Step]:
    """Disconnect every socket and wait for it (its ``count``-th disconnect)."""
    names = sockets or ("a",)
    steps: list[Step] = []
    for s in names:
        steps += [do(disconnect(s)), got(count, s=s, cb="disconnected")]
    return steps


def scenario(name: str, doc: str, steps: list[Step], **extra: Any) -> dict[str, Any]:
    return {"name": name, "doc": doc, "steps": steps, **extra}


FAST = {"reconnectAfterMs": [50], "rejoinAfterMs": [50]}


# -- the scenarios -------------------------------------------------------------------


SCENARIOS: list[dict[str, Any]] = [
    scenario(
        "push_ok",
        "socket and join params, then echo and three pipelined counts: ok "
        "replies in order, URL params before vsn",
        [
            *opened(params={"user": "ada", "n": 1, "tags": ["x", "y"]}),
            do(channel("c", "room:lobby", params={"nick": "ada"}), join("c", "j")),
            got(p="j", status="ok"),
            do(
                push(
                    "c", "e", "echo", {"body": "hi", "n": 1, "u": "é✓", "l": [1, None]}
                )
            ),
            got(p="e", status="ok"),
            do(
                push("c", "n1", "count"),
                push("c", "n2", "count"),
                push("c", "n3", "count"),
            ),
            got(p="n3", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "push_error",
        "a server error reply, and an unknown event",
        [
            *joined(),
            do(push("c", "f", "fail", {"title": ""})),
            got(p="f", status="error"),
            do(push("c", "u", "no_such_event")),
            got(p="u", status="error"),
            *finish(),
        ],
    ),
    scenario(
        "push_custom_status",
        "a reply with a status that is neither ok nor error reaches the hook "
        "for that status only",
        [
            *joined("status:x"),
            do(
                push(
                    "c",
                    "a",
                    "accepted",
                    {"id": 7},
                    statuses=("ok", "error", "timeout", "accepted"),
                ),
                push(
                    "c",
                    "r",
                    "rate_limited",
                    {},
                    statuses=("ok", "error", "rate_limited"),
                ),
            ),
            got(p="a", status="accepted"),
            got(p="r", status="rate_limited"),
            *finish(),
        ],
    ),
    scenario(
        "push_timeout",
        "a push the server never answers times out with an empty response",
        [
            *joined(),
            do(push("c", "n", "noreply", {}, timeout=100)),
            got(p="n", status="timeout"),
            do(push("c", "e", "echo", {"after": True})),
            got(p="e", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "push_resend_after_timeout",
        "a push that timed out is resent with a new ref; the late reply to the "
        "first attempt is ignored, the second attempt gets ok and the hooks "
        "fire again",
        [
            *joined(),
            do(push("c", "s", "slow", {"ms": 300}, timeout=100)),
            got(p="s", status="timeout"),
            do(resend("s", LONG)),
            got(p="s", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "late_reply_ignored",
        "the server's reply after the push timed out fires nothing",
        [
            *joined(),
            do(push("c", "s", "slow", {"ms": 200}, timeout=50)),
            got(p="s", status="timeout"),
            frame(dir="out", event="phx_reply", count=2),  # join reply, late reply
            do(push("c", "e", "echo", {"next": 1})),
            got(p="e", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "late_receive",
        "a hook registered after the reply fires at once for that status only",
        [
            *joined(),
            do(push("c", "e", "echo", {"x": 1})),
            got(p="e", status="ok"),
            do(receive("e", "ok", "late"), receive("e", "error", "late")),
            got(p="e", status="ok", tag="late"),
            do(receive("j", "ok", "late-join")),
            got(p="j", status="ok", tag="late-join"),
            *finish(),
        ],
    ),
    scenario(
        "buffered_pushes_before_join",
        "pushes made while the join is pending are sent after the join ok, in "
        "order, each with a new ref",
        [
            *opened(),
            do(
                channel("c", "room:lobby", params={"delay_ms": 200}),
                join("c", "j"),
                push("c", "p1", "echo", {"i": 1}),
                push("c", "p2", "count"),
                push("c", "p3", "echo", {"i": 3}),
            ),
            got(p="p3", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "join_and_push_before_connect",
        "join and pushes made before connect: the join waits in the send "
        "buffer, the pushes in the channel until the join ok (PROTOCOL §11.C)",
        [
            do(
                socket("a"),
                channel("c", "room:lobby"),
                join("c", "j"),
                push("c", "p1", "echo", {"i": 1}),
                push("c", "p2", "echo", {"i": 2}),
                connect("a"),
            ),
            got(p="p2", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "leave_with_pushes_in_flight",
        "leave closes the channel at once; pushes in flight are never "
        "answered and time out",
        [
            *joined(),
            do(
                push("c", "s", "slow", {"ms": 200}, timeout=600),
                push("c", "n", "noreply", {}, timeout=300),
                leave("c", "l"),
            ),
            got(p="l", status="ok"),
            got(p="s", status="timeout"),
            *finish(),
        ],
    ),
    scenario(
        "push_after_leave",
        "a push after leave is buffered forever and times out, never sent",
        [
            *joined(),
            do(leave("c", "l")),
            got(c="c", cb="close"),
            do(push("c", "e", "echo", {}, timeout=100)),
            got(p="e", status="timeout"),
            *finish(),
        ],
    ),
    scenario(
        "join_refused_rejoin_backoff",
        "a refused join is retried on the rejoin backoff and its error hook "
        "fires on every attempt; leave stops the retries",
        [
            *opened(rejoinAfterMs=[50, 100, 150]),
            do(channel("c", "room:private"), join("c", "j")),
            got(p="j", status="error", count=3),
            do(leave("c", "l")),
            frame(event="phx_leave"),
            *finish(),
        ],
    ),
    scenario(
        "join_timeout_then_rejoin",
        "the server delays the join past its timeout: the client sends "
        "phx_leave with the timed-out join_ref, errors, and rejoins with "
        "re-read params; the stale join reply is dropped",
        [
            *opened(rejoinAfterMs=[300]),
            do(
                channel(
                    "c",
                    "room:slowjoin",
                    params_seq=[{"delay_ms": 400}, {"again": True}],
                ),
                join("c", "j", timeout=200),
            ),
            got(p="j", status="timeout"),
            got(p="j", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "crash_error_rejoin",
        "crash: phx_error errors the channel, it rejoins (the join hooks fire "
        "again) and the crashed push times out",
        [
            *joined(**FAST),
            do(channel("o", "room:other"), join("o", "jo"), push("o", "n1", "count")),
            got(p="n1", status="ok"),
            do(push("c", "x", "crash", {}, timeout=500)),
            got(c="c", cb="error"),
            got(p="j", status="ok", count=2),
            got(p="x", status="timeout"),
            do(push("c", "n", "count"), push("o", "n2", "count")),
            got(p="n", status="ok"),
            got(p="n2", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "stop_close",
        "stop: ok {bye: true}, then phx_close closes the channel for good; a "
        "push afterwards is never sent and times out",
        [
            *joined(**FAST),
            do(push("c", "s", "stop")),
            got(p="s", status="ok"),
            got(c="c", cb="close"),
            do(push("c", "e", "echo", {}, timeout=100)),
            got(p="e", status="timeout"),
            *finish(),
        ],
    ),
    scenario(
        "broadcast_two_clients",
        "a broadcast reaches both sockets; the sender gets it before its reply",
        [
            *opened("a"),
            *opened("b"),
            do(channel("ca", "room:lobby", "a", on=("broadcasted",)), join("ca", "ja")),
            got(p="ja", status="ok"),
            do(channel("cb", "room:lobby", "b", on=("broadcasted",)), join("cb", "jb")),
            got(p="jb", status="ok"),
            do(push("ca", "bc", "broadcast", {"b": 2})),
            got(p="bc", status="ok"),
            got(c="cb", on="broadcasted"),
            *finish("a", "b"),
        ],
    ),
    scenario(
        "server_broadcast",
        "a broadcast made by the server (Endpoint.broadcast) reaches the "
        "channel's on() callbacks",
        [
            *joined(on=("news",)),
            server({"broadcast": ["room:lobby", "news", {"n": 1}]}),
            got(c="c", on="news"),
            *finish(),
        ],
    ),
    scenario(
        "push_me",
        "a server push to this client arrives before the reply",
        [
            *joined(on=("pushed",)),
            do(push("c", "m", "push_me", {"x": 1})),
            got(p="m", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "on_off",
        "off(event, ref) removes one binding, off(event) all of them",
        [
            *joined(),
            do(
                on("c", "b1", "pushed"),
                on("c", "b2", "pushed"),
                on("c", "b3", "pushed"),
            ),
            do(push("c", "m1", "push_me", {"n": 1})),
            got(p="m1", status="ok"),
            do(off("c", "pushed", "b2"), push("c", "m2", "push_me", {"n": 2})),
            got(p="m2", status="ok"),
            do(off("c", "pushed"), push("c", "m3", "push_me", {"n": 3})),
            got(p="m3", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "push_in_flight_during_drop",
        "a push whose reply is lost with the connection times out, even "
        "though the channel rejoined meanwhile",
        [
            *joined(**FAST),
            do(push("c", "s", "slow", {"ms": 300}, timeout=500)),
            frame(event="slow"),
            server("drop"),
            got(p="j", status="ok", count=2),
            got(p="s", status="timeout"),
            *finish(),
        ],
    ),
    scenario(
        "presence_key_order",
        "Presence.list order is JavaScript property order: integer-like keys "
        "first, ascending, then the others in insertion order",
        [
            *opened("a"),
            *opened("b"),
            *opened("d"),
            do(
                channel("pb", "presence:lobby", "b", params={"user_id": "u3"}),
                join("pb", "jb"),
            ),
            got(p="jb", status="ok"),
            do(
                channel("pd", "presence:lobby", "d", params={"user_id": "10"}),
                join("pd", "jd"),
            ),
            got(p="jd", status="ok"),
            do(
                channel("pa", "presence:lobby", "a", params={"user_id": "2"}),
                presence("pa", "pr"),
                join("pa", "ja"),
            ),
            got(pr="pr", cb="sync"),
            *finish("a", "b", "d"),
        ],
    ),
    scenario(
        "duplicate_join",
        "joining a topic again closes the old channel locally (leave) and the "
        "server's phx_close for the old join_ref is dropped by the new one",
        [
            *joined(),
            do(channel("c2", "room:lobby"), join("c2", "j2")),
            got(p="j2", status="ok"),
            frame(dir="out", event="phx_close"),
            do(push("c2", "e", "echo", {"second": True})),
            got(p="e", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "heartbeat_frames",
        "heartbeats go out every heartbeatIntervalMs, timed from each reply",
        [
            *opened(heartbeatIntervalMs=100),
            frame(topic="phoenix", event="heartbeat", count=3),
            *finish(),
        ],
    ),
    scenario(
        "heartbeat_timeout_reconnect",
        "an unanswered heartbeat errors the channels (heartbeat_timeout), "
        "closes the connection (1000) and reconnects; the channel rejoins",
        [
            *joined(heartbeatIntervalMs=200, **FAST),
            server("pause_heartbeats"),
            connections(2),
            server("resume_heartbeats"),
            got(p="j", status="ok", count=2),
            *finish(),
        ],
    ),
    scenario(
        "heartbeat_timeout_rejoin",
        "heartbeat_timeout_reconnect without observing the close code: "
        "frames, channel error, rejoin",
        [
            *joined(heartbeatIntervalMs=200, close_code=False, **FAST),
            server("pause_heartbeats"),
            connections(2),
            server("resume_heartbeats"),
            got(p="j", status="ok", count=2),
            *finish(),
        ],
    ),
    scenario(
        "server_drop_reconnect_rejoin",
        "the server drops the TCP connection: channels error, the socket "
        "reconnects on its backoff and the channel rejoins",
        [
            *joined(**FAST, params_seq=[{"try": 1}, {"try": 2}]),
            server("drop"),
            got(c="c", cb="error"),
            got(p="j", status="ok", count=2),
            do(push("c", "e", "echo", {"after": "drop"})),
            got(p="e", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "push_while_reconnecting",
        "a push made while the channel is errored waits for the rejoin and "
        "goes out on the new connection with a new ref",
        [
            *joined(reconnectAfterMs=[150], rejoinAfterMs=[50]),
            server("drop"),
            got(c="c", cb="error"),
            do(push("c", "e", "echo", {"buffered": True})),
            got(p="e", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "server_close_1001",
        "the server closes with 1001 (going away): reconnect and rejoin",
        [
            *joined(**FAST),
            server({"close": 1001}),
            got(s="a", cb="close"),
            got(p="j", status="ok", count=2),
            *finish(),
        ],
    ),
    scenario(
        "server_close_1000",
        "the server closes with 1000: phoenix.js 1.8.16 reconnects after any "
        "close it did not ask for, whatever the code",
        [
            *joined(**FAST),
            server({"close": 1000}),
            got(s="a", cb="close"),
            got(p="j", status="ok", count=2),
            *finish(),
        ],
    ),
    scenario(
        "disconnect_then_connect",
        "disconnect errors the channels (not closes); connect again rejoins them",
        [
            *joined(),
            *finish(),
            do(connect("a")),
            got(s="a", cb="open", count=2),
            got(p="j", status="ok", count=2),
            *finish(count=2),
        ],
    ),
    scenario(
        "disconnect_and_connect_at_once",
        "connect() right after disconnect(), in the same tick: the channel "
        "errors and rejoins on the new connection",
        [
            *joined(),
            # phoenix.js reports the end of disconnect() from a 150 ms poll of
            # readyState, ours when the close is done: the order of that
            # report and the new connection's events is not observed here.
            do({**disconnect("a"), "report": False}, connect("a")),
            got(s="a", cb="open", count=2),
            got(p="j", status="ok", count=2),
            do(push("c", "e", "echo", {"again": True})),
            got(p="e", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "connect_during_backoff",
        "connect() while a reconnect is pending on the backoff: phoenix.js "
        "keeps its connection and waits for the backoff, so a push buffered "
        "meanwhile times out before the channel rejoins",
        [
            *joined(reconnectAfterMs=[1000]),
            server("drop"),
            got(c="c", cb="error"),
            do(connect("a"), push("c", "n", "echo", {}, timeout=300)),
            got(p="n", status="timeout"),
            got(p="j", status="ok", count=2),
            *finish(),
        ],
    ),
    scenario(
        "connect_refused",
        "a refused websocket upgrade (token=bad): error and close",
        [
            do(
                socket("a", params={"token": "bad"}, reconnectAfterMs=[3000]),
                connect("a"),
            ),
            got(s="a", cb="close"),
            *finish(),
        ],
    ),
    scenario(
        "leave_while_joining",
        "leave while the join is pending: the channel closes at once and the "
        "join reply that comes later is dropped",
        [
            *opened(),
            do(
                channel("c", "room:slowjoin", params={"delay_ms": 200}),
                channel("o", "room:other"),
                join("c", "j", timeout=400),
                leave("c", "l"),
                join("o", "jo"),
                push("o", "n", "noreply", {}, timeout=600),
            ),
            got(p="n", status="timeout"),
            *finish(),
        ],
    ),
    scenario(
        "error_while_joining",
        "the connection drops while the join is pending: the channel errors "
        "and rejoins on the next connection",
        [
            *opened(**FAST),
            do(
                channel("c", "room:slowjoin", params_seq=[{"delay_ms": 300}, {}]),
                join("c", "j"),
            ),
            frame(event="phx_join"),
            server("drop"),
            got(c="c", cb="error"),
            got(p="j", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "join_timeout_sets_default",
        "join(timeout) becomes the channel's default for later pushes",
        [
            *opened(),
            do(channel("c", "room:lobby"), join("c", "j", timeout=150)),
            got(p="j", status="ok"),
            do(push("c", "n", "noreply", {})),
            got(p="n", status="timeout"),
            *finish(),
        ],
    ),
    scenario(
        "misuse_throws",
        "push before join and a second join both throw; nothing is sent",
        [
            *opened(),
            do(
                channel("c", "room:lobby"),
                caught(push("c", "early", "echo", {}), "push before join"),
                join("c", "j"),
                caught(join("c", "j2"), "second join"),
            ),
            got(p="j", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "join_timeout_while_offline",
        "a join made before connect times out while offline; on connect the "
        "channel rejoins (phoenix.js 1.8.16 drops the outdated buffered join "
        "and leave instead of flushing them)",
        [
            do(
                socket("a", rejoinAfterMs=[50]),
                channel("c", "room:lobby"),
                join("c", "j", timeout=100),
            ),
            got(p="j", status="timeout"),
            do(connect("a")),
            got(p="j", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "leave_while_offline",
        "leave while the connection is down: the channel closes at once; "
        "phoenix.js 1.8.16 never sends that leave, as its channel is closed",
        [
            *joined(reconnectAfterMs=[150]),
            server("drop"),
            got(c="c", cb="error"),
            do(leave("c", "l")),
            got(p="l", status="ok"),
            got(s="a", cb="open", count=2),
            do(channel("c2", "room:other"), join("c2", "j2")),
            got(p="j2", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "presence_rejoin",
        "Presence across a reconnect: the new presence_state replaces the "
        "old meta (join of the new phx_ref, leave of the old one)",
        [
            *opened("a", **FAST),
            do(
                channel("pa", "presence:lobby", "a", params={"user_id": "u1"}),
                presence("pa", "pr"),
                join("pa", "ja"),
            ),
            got(pr="pr", cb="sync"),
            server("drop"),
            got(p="ja", status="ok", count=2),
            got(pr="pr", cb="sync", count=2),
            *finish(),
        ],
    ),
    scenario(
        "vsn_1",
        "vsn 1.0.0 JSON objects (phoenix.js gets a v1 encode/decode, "
        "PROTOCOL §6.2): join, echo, push_me, broadcast, leave",
        [
            *joined(vsn="1.0.0", on=("pushed", "broadcasted")),
            do(push("c", "e", "echo", {"v": 1})),
            got(p="e", status="ok"),
            do(push("c", "m", "push_me", {"x": 1})),
            got(p="m", status="ok"),
            do(push("c", "b", "broadcast", {"b": 2})),
            got(p="b", status="ok"),
            do(leave("c", "l")),
            frame(event="phx_leave"),
            *finish(),
        ],
        vsn1=True,
    ),
    scenario(
        "vsn_2_explicit",
        "vsn 2.0.0 given explicitly: the same URL and frames as the default",
        [
            *joined(vsn="2.0.0"),
            do(push("c", "e", "echo", {"v": 2})),
            got(p="e", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "binary_echo",
        "a binary push (kind 0 frame) gets a binary reply (kind 1)",
        [
            *joined(),
            do(push("c", "b", "binary_echo", binary("000102feff"))),
            got(p="b", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "binary_push",
        "a binary server push (kind 0, no ref) reaches on(), then the JSON reply",
        [
            *joined(on=("binary_pushed",)),
            do(push("c", "b", "binary_push", binary("deadbeef"))),
            got(p="b", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "binary_broadcast",
        "a binary broadcast (kind 2) from the server and from a client push",
        [
            *joined(on=("broadcasted", "bin_news")),
            server({"broadcast": ["room:lobby", "bin_news", binary("cafe")]}),
            got(c="c", on="bin_news"),
            do(push("c", "b", "broadcast", binary("0a0b"))),
            got(p="b", status="ok"),
            *finish(),
        ],
    ),
    scenario(
        "presence_join_leave",
        "Presence: own join (diff before state), another user joins, then leaves",
        [
            *opened("a"),
            do(
                channel("pa", "presence:lobby", "a", params={"user_id": "u1"}),
                presence("pa", "pr"),
                join("pa", "ja"),
            ),
            got(pr="pr", cb="sync"),
            *opened("b"),
            do(
                channel("pb", "presence:lobby", "b", params={"user_id": "u2"}),
                join("pb", "jb"),
            ),
            got(pr="pr", cb="join", key="u2"),
            got(pr="pr", cb="sync", count=2),
            do(leave("pb", "lb")),
            got(pr="pr", cb="leave", key="u2"),
            got(pr="pr", cb="sync", count=3),
            *finish("a", "b"),
        ],
    ),
    scenario(
        "longpoll",
        "the LongPoll transport: join, echo, push_me, leave",
        [
            *joined(transport="longpoll", on=("pushed",)),
            do(push("c", "e", "echo", {"lp": 1})),
            got(p="e", status="ok"),
            do(push("c", "m", "push_me", {"x": 1})),
            got(p="m", status="ok"),
            do(leave("c", "l")),
            got(p="l", status="ok"),
            frame(event="phx_leave"),  # a long-poll POST is still on its way
            *finish(),
        ],
    ),
]
