"""Fuzzing the client's decoders: whatever a server sends, nothing crashes.

``tests/test_properties.py`` already feeds short random frames to a socket;
here the inputs are shaped like Phoenix frames (right topics and refs, wrong
types and values), for both serializer versions, and the property is
stronger: every push attempt still ends at most once, nothing is logged at
ERROR, and the socket stays usable — a later valid reply still resolves a
push, on the fuzzed channel and on a fresh one.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from phoenix_channels.message import Message
from phoenix_channels.serializer import (
    DecodeError,
    V1JSONSerializer,
    V2JSONSerializer,
    serializer_for,
)
from tests.fakes import Problems, open_socket

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- strategies --------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
# The topics, refs and events a socket actually knows, and odd ones (the
# socket of ``Fuzzed`` joins room:f with ref "3" and pushes with ref "4").
topics = st.sampled_from(["room:f", "room:probe", "phoenix", "", "room:other"])
refs = st.none() | st.sampled_from(["1", "2", "3", "4", "5", "99"]) | json_values
events = st.sampled_from(
    ["phx_reply", "phx_error", "phx_close", "phx_join", "pushed", "presence_diff"]
) | st.text(max_size=8)
statuses = st.sampled_from(["ok", "error", "timeout", ""]) | json_values
replies = st.fixed_dictionaries(
    {}, optional={"status": statuses, "response": json_values}
)
payloads = replies | json_values


def _v2_text(join_ref: Any, ref: Any, topic: Any, event: Any, payload: Any) -> str:
    return json.dumps([join_ref, ref, topic, event, payload])


def _v1_text(join_ref: Any, ref: Any, topic: Any, event: Any, payload: Any) -> str:
    frame = {"topic": topic, "event": event, "payload": payload, "ref": ref}
    if join_ref is not None:
        frame["join_ref"] = join_ref
    return json.dumps(frame)


fields = st.tuples(refs, refs, topics | json_values, events | json_values, payloads)
v2_frames = fields.map(lambda f: _v2_text(*f))
v1_frames = fields.map(lambda f: _v1_text(*f))
short_fields = st.text(max_size=6).map(str.encode)


@st.composite
def binary_frames(draw: st.DrawFn) -> bytes:
    """A binary frame with a plausible header: kind, lengths, fields, data;
    now and then lengths that lie about the fields, or an unknown kind."""
    kind = draw(st.sampled_from([0, 1, 2, 3, 255]))
    count = {0: 3, 1: 4, 2: 2}.get(kind)
    if count is None:
        count = draw(st.integers(0, 4))
    field = st.sampled_from([b"3", b"4", b"room:f", b"ok"]) | short_fields
    parts = [draw(field) for _ in range(count)]
    lengths = [len(p) for p in parts]
    if draw(st.booleans()):
        lengths = [draw(st.integers(0, 255)) for _ in parts]
    data = draw(st.binary(max_size=12))
    return bytes([kind, *lengths]) + b"".join(parts) + data


def frames_for(vsn: str) -> st.SearchStrategy[str | bytes]:
    shaped = v2_frames if vsn == "2.0.0" else v1_frames
    return (
        shaped
        | binary_frames()
        | st.binary(max_size=40)
        | st.text(max_size=40)
        | st.just("[" * 5000)  # deeper than Python's recursion limit
    )


# -- the decoders ----------------------------------------------------------------


def _check_decoded(msg: Message) -> None:
    """What the socket relies on from a decoded message."""
    assert isinstance(msg, Message)
    assert isinstance(msg.topic, str) and isinstance(msg.event, str)
    assert msg.join_ref is None or isinstance(msg.join_ref, str)
    assert msg.ref is None or isinstance(msg.ref, str)


@pytest.mark.parametrize("vsn", ["1.0.0", "2.0.0"])
@pytest.mark.parametrize("side", ["client", "server"])
@FUZZ
@given(data=st.data())
def test_decoders_return_a_message_or_raise_decode_error(vsn, side, data):
    """Any bytes or text: a well-typed Message, or DecodeError; nothing else."""
    frame = data.draw(frames_for(vsn))
    try:
        msg = serializer_for(vsn, side).decode(frame)
    except DecodeError:
        return
    _check_decoded(msg)


@pytest.mark.parametrize("serializer", [V1JSONSerializer(), V2JSONSerializer()])
def test_deeply_nested_json_raises_decode_error(serializer):
    """serializer.py promises DecodeError for anything that does not decode,
    JSON nested deeper than Python's recursion limit included (this fuzzing
    found RecursionError there)."""
    with pytest.raises(DecodeError):
        serializer.decode("[" * 5000)


# -- the socket --------------------------------------------------------------------


class Fuzzed:
    """A socket with a joined channel and a pending push, fed fuzzed frames."""

    def __init__(self, vsn: str) -> None:
        self.vsn = vsn
        self.socket, self.timers, self.network = open_socket(vsn=vsn)
        self.errors = Problems()
        self.socket._log.addHandler(self.errors)
        self.channel = self.socket.channel("room:f")
        self.join = self.channel.join()  # ref "1"... whatever the counter says
        self.reply(self.join, "ok")
        self.fired: dict[str, list[str]] = {}
        self.push = self.track("probe", self.channel.push("ev", {"a": 1}))

    def close(self) -> None:
        self.socket._log.removeHandler(self.errors)

    def track(self, name: str, push: Any) -> Any:
        fired = self.fired.setdefault(name, [])
        for status in ("ok", "error", "timeout", "custom"):
            push.receive(status, lambda _r, s=status: fired.append(s))
        return push

    def frame(
        self, join_ref: Any, ref: Any, topic: str, event: str, payload: Any
    ) -> str:
        encode = _v2_text if self.vsn == "2.0.0" else _v1_text
        return encode(join_ref, ref, topic, event, payload)

    def reply(self, push: Any, status: str) -> None:
        payload = {"status": status, "response": {"n": 1}}
        join_ref = push.channel.join_ref
        self.feed(
            self.frame(join_ref, push.ref, push.channel.topic, "phx_reply", payload)
        )

    def feed(self, data: str | bytes) -> None:
        self.network.conn.receive(data)  # raises if the socket does

    def assert_ended_once(self) -> None:
        """The probe push ended (its timeout has passed), and its hooks fired
        once for it (a status nobody registered for fires nothing)."""
        status = self.push.status
        assert status is not None
        tracked = status in ("ok", "error", "timeout", "custom")
        assert self.fired["probe"] == ([status] if tracked else [])

    def assert_usable(self) -> None:
        """A fresh channel joins and gets its push answered; the probe push,
        if still pending, is resolved by a valid reply too."""
        assert self.socket.is_connected()
        if self.push.status is None and self.channel.state == "joined":
            self.reply(self.push, "ok")
            assert self.push.status == "ok"
        fresh = self.socket.channel("room:probe2")
        join = fresh.join()
        self.reply(join, "ok")
        assert fresh.state == "joined"
        push = self.track("fresh", fresh.push("ev", {}))
        self.reply(push, "ok")
        assert push.status == "ok" and self.fired["fresh"] == ["ok"]


@pytest.mark.parametrize("vsn", ["1.0.0", "2.0.0"])
@FUZZ
@given(data=st.data())
def test_fuzzed_frames_leave_the_socket_usable(vsn, data):
    """Phoenix-shaped and shapeless frames, then time passes: no exception
    escapes the transport callback, nothing is logged at ERROR, every push
    attempt ends at most once (exactly once when its timeout has passed),
    and the socket keeps working."""
    frames = data.draw(st.lists(frames_for(vsn), min_size=1, max_size=8))
    fuzzed = Fuzzed(vsn)
    try:
        for frame in frames:
            fuzzed.feed(frame)
        assert all(len(fired) <= 1 for fired in fuzzed.fired.values()), fuzzed.fired
        fuzzed.assert_usable()
        fuzzed.timers.advance(fuzzed.socket.timeout + 0.01)
        fuzzed.assert_ended_once()
        assert fuzzed.errors.records == []
    finally:
        fuzzed.close()


@FUZZ
@given(
    st.lists(
        st.tuples(st.text(max_size=8) | st.just("ok"), st.binary(max_size=16)),
        min_size=1,
        max_size=4,
    )
)
def test_binary_replies_with_any_status_and_body(replies):
    """Binary replies (kind 1) to the pending push's real ref, with any status
    and any body: the push ends exactly once, and the socket keeps working."""
    fuzzed = Fuzzed("2.0.0")
    try:
        header = [fuzzed.channel.join_ref.encode(), fuzzed.push.ref.encode(), b"room:f"]
        for status, body in replies:
            fields = [*header, status.encode()]
            if len(fields[3]) > 255:
                continue
            frame = bytes([1, *(len(f) for f in fields)]) + b"".join(fields) + body
            fuzzed.feed(frame)
        fuzzed.assert_ended_once()
        fuzzed.assert_usable()
        assert fuzzed.errors.records == []
    finally:
        fuzzed.close()
