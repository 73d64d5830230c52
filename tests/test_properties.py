"""Property tests (STYLE §9): serializer round trips, and the push invariant of
API.md ("every sent push ends exactly once per attempt") under any interleaving
of server replies, time, resends, connection drops, channel errors and leaves.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from phoenix_channels.message import Message
from phoenix_channels.serializer import (
    DecodeError,
    V1JSONSerializer,
    V2JSONSerializer,
    decode_binary,
    encode_binary,
)
from tests.fakes import Problems, open_socket, reply

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- strategies ------------------------------------------------------------------------

text = st.text(max_size=12)  # any Unicode but lone surrogates, non-ASCII included
refs = st.none() | st.text(min_size=1, max_size=8)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4)
    ),
    max_leaves=12,
)
payloads = st.dictionaries(text, json_values, max_size=4)
json_messages = st.builds(Message, refs, refs, text, text, payloads)

# Binary metadata: at most 255 UTF-8 bytes each (60 characters of <= 4 bytes).
short = st.text(max_size=60)
nonempty_short = st.text(min_size=1, max_size=60)
blobs = st.binary(max_size=64)


# -- (a) serializer round trips --------------------------------------------------------


@SETTINGS
@given(json_messages)
def test_v2_json_round_trip(msg: Message) -> None:
    """A vsn 2.0.0 JSON frame decodes to the message it was encoded from."""
    client, server = V2JSONSerializer("client"), V2JSONSerializer("server")

    assert server.decode(client.encode(msg)) == msg
    assert client.decode(server.encode(msg)) == msg


@SETTINGS
@given(json_messages)
def test_v1_json_round_trip(msg: Message) -> None:
    """A vsn 1.0.0 frame decodes to its message; the server side sends no join_ref."""
    client, server = V1JSONSerializer("client"), V1JSONSerializer("server")

    assert server.decode(client.encode(msg)) == msg
    assert client.decode(server.encode(msg)) == msg._replace(join_ref=None)


@SETTINGS
@given(
    st.builds(
        Message,
        st.none() | nonempty_short,
        st.none() | nonempty_short,
        short,
        short,
        blobs,
    )
)
def test_binary_client_push_round_trip(msg: Message) -> None:
    """A binary push encoded by the client decodes on the server side."""
    frame = V2JSONSerializer("client").encode(msg)

    # A missing join_ref or ref travels as an empty field and comes back "".
    expected = msg._replace(join_ref=msg.join_ref or "", ref=msg.ref or "")
    assert isinstance(frame, bytes)
    assert V2JSONSerializer("server").decode(frame) == expected
    assert decode_binary(encode_binary(msg, "client"), "server") == expected


@SETTINGS
@given(st.builds(Message, nonempty_short, st.none(), short, short, blobs))
def test_binary_server_push_round_trip(msg: Message) -> None:
    """A binary push encoded by the server (no ref) decodes on the client side."""
    frame = V2JSONSerializer("server").encode(msg)

    assert frame[0] == 0
    assert V2JSONSerializer("client").decode(frame) == msg


@SETTINGS
@given(st.builds(Message, st.none(), st.none(), short, short, blobs))
def test_binary_broadcast_round_trip(msg: Message) -> None:
    """A binary broadcast (no join_ref, no ref) decodes on the client side."""
    frame = V2JSONSerializer("server").encode(msg)

    assert frame[0] == 2
    assert V2JSONSerializer("client").decode(frame) == msg


@SETTINGS
@given(st.none() | nonempty_short, nonempty_short, short, short, blobs)
def test_binary_reply_round_trip(
    join_ref: str | None, ref: str, topic: str, status: str, response: bytes
) -> None:
    """A reply with a binary response decodes to phx_reply with status and bytes."""
    payload = {"status": status, "response": response}
    msg = Message(join_ref, ref, topic, "phx_reply", payload)

    frame = V2JSONSerializer("server").encode(msg)

    assert frame[0] == 1
    assert V2JSONSerializer("client").decode(frame) == msg._replace(
        join_ref=join_ref or ""
    )


@SETTINGS
@given(st.binary(max_size=80), st.sampled_from(["client", "server"]))
def test_binary_decoder_never_crashes(data: bytes, side: Any) -> None:
    """Arbitrary bytes decode to a message or raise DecodeError, nothing else."""
    try:
        msg = decode_binary(data, side)
    except DecodeError:
        return
    assert isinstance(msg, Message)


@SETTINGS
@given(st.lists(st.binary(max_size=40) | st.text(max_size=40), max_size=5))
def test_arbitrary_frames_never_break_the_socket(frames: list[Any]) -> None:
    """Whatever frames arrive, the socket stays open and keeps serving its channel."""
    socket, _, network = open_socket()
    channel = socket.channel("topic")
    join = channel.join()

    for frame in frames:
        network.conn.receive(frame)
    network.conn.receive(reply("3", "3", "topic"))

    assert socket.is_connected()
    assert join.status == "ok"


# -- (b) every push attempt ends exactly once ------------------------------------------

STATUSES = ("ok", "error", "custom", "timeout")
TIMEOUTS = (0.5, 3.0, 12.0)
LONGEST = max(TIMEOUTS)
replies = st.sampled_from(STATUSES[:3])


#: operation -> (weight, strategies of its arguments)
OPERATIONS: dict[str, tuple[int, tuple[st.SearchStrategy[Any], ...]]] = {
    "push": (6, (st.sampled_from((None, *TIMEOUTS)),)),
    # the server answers a pending push (join, push or leave), usually ok
    "answer": (6, (st.integers(0, 5), st.just("ok") | replies)),
    # ... or a pending user push
    "answer_push": (5, (st.integers(0, 5), st.just("ok") | replies)),
    # ... or any frame sent, newest first: duplicates and stale refs
    "reply": (2, (st.integers(0, 3) | st.integers(0, 999), replies)),
    "advance": (5, (st.sampled_from([0.005, 0.01, 0.3, 1.0, 2.5, 6.0, 12.0, 31.0]),)),
    "resend": (3, (st.integers(0, 50), st.sampled_from(TIMEOUTS))),
    "open": (2, ()),
    "bounce": (1, (st.sampled_from([1006, 1011]),)),
    "drop": (1, (st.sampled_from([1006, 1001, 1000]),)),
    "connect": (1, ()),
    "phx_error": (1, ()),
    "unknown_ref": (1, ()),
    "new_channel": (1, ()),
    "phx_close": (1, (st.integers(0, 1),)),  # acts on 0 only: rarer
    "leave": (1, (st.integers(0, 1),)),  # acts on 0 only: rarer
}
operations = st.sampled_from(
    [name for name, (weight, _) in OPERATIONS.items() for _ in range(weight)]
).flatmap(lambda name: st.tuples(st.just(name), *OPERATIONS[name][1]))


class Tracked:
    """A push and the outcomes its hooks saw, by the user's attempt number."""

    def __init__(self, push: Any) -> None:
        self.push = push
        self.attempt = 1  # the user's attempts: the first send, then each resend
        self.replaced: set[int] = set()  # attempts resent before they ended
        self.fired: list[tuple[int, str]] = []
        for status in STATUSES:
            push.receive(
                status, lambda _r, s=status: self.fired.append((self.attempt, s))
            )

    def resend(self, timeout: float) -> None:
        if self.push.status is None:
            self.replaced.add(self.attempt)
        self.attempt += 1
        self.push.resend(timeout)

    def check(self) -> None:
        """Each attempt not replaced fired exactly once; replaced ones never."""
        expected = [n for n in range(1, self.attempt + 1) if n not in self.replaced]
        assert [n for n, _ in self.fired] == expected, (self.push, self.fired)


class Session:
    """One socket and its channels, with the test playing the server."""

    def __init__(self) -> None:
        self.socket, self.timers, self.network = open_socket()
        self.problems = Problems()
        self.socket._log.addHandler(self.problems)
        self.pushes: list[Tracked] = []
        self.joins: list[tuple[str, list[str]]] = []  # (topic, join outcomes)
        self.opened: set[int] = {id(self.network.conn)}
        self.made: list[Any] = []  # every frame the client encoded, sent or not
        encode = self.socket._serializer.encode

        def recording_encode(msg: Any) -> Any:
            data = encode(msg)
            self.made.append(json.loads(data))
            return data

        self.socket._serializer.encode = recording_encode  # type: ignore[method-assign]
        self.new_channel()

    def close(self) -> None:
        self.socket._log.removeHandler(self.problems)

    def new_channel(self) -> None:
        """A channel on a topic of its own, so its phx_join frames can be counted."""
        topic = f"room:{len(self.joins)}"
        self.channel = self.socket.channel(topic, {"p": 1})
        join = self.channel.join()
        outcomes: list[str] = []
        for status in STATUSES:
            join.receive(status, lambda _r, s=status: outcomes.append(s))
        self.joins.append((topic, outcomes))

    def client_frames(self) -> list[Any]:
        """Every frame the client made, in order: sent, buffered, or dropped from
        the send buffer as outdated once the connection opened."""
        return self.made

    def server_says(self, frame: list[Any]) -> None:
        """The server sends ``frame``, if the connection is open."""
        if self.socket.is_connected():
            self.network.conn.receive(frame)

    def run(self, op: tuple[Any, ...]) -> None:
        kind, args = op[0], op[1:]
        getattr(self, "op_" + kind)(*args)

    # operations -------------------------------------------------------------------

    def answer(self, pending: list[Any], index: int, status: str) -> None:
        """The server replies to one of ``pending``, echoing its frame's join_ref."""
        if pending:
            push = pending[index % len(pending)]
            frame = [f for f in self.client_frames() if f[1] == push.ref][-1]
            payload = {"status": status, "response": {"n": index}}
            self.server_says([frame[0], push.ref, frame[2], "phx_reply", payload])

    def op_answer(self, index: int, status: str) -> None:
        self.answer(self.socket.pending_pushes(), index, status)

    def op_answer_push(self, index: int, status: str) -> None:
        pending = self.socket.pending_pushes()
        self.answer([t.push for t in self.pushes if t.push in pending], index, status)

    def op_reply(self, index: int, status: str) -> None:
        frames = [f for f in self.network.frames() if f[1] is not None]
        if frames:
            join_ref, ref, topic = frames[-1 - index % len(frames)][:3]
            payload = {"status": status, "response": {"n": index}}
            self.server_says([join_ref, ref, topic, "phx_reply", payload])

    def op_unknown_ref(self) -> None:
        payload = {"status": "ok", "response": {}}
        self.server_says(["999", "999999", self.channel.topic, "phx_reply", payload])

    def op_push(self, timeout: float | None) -> None:
        push = self.channel.push("ev", {"n": len(self.pushes)}, timeout)
        self.pushes.append(Tracked(push))

    def op_resend(self, index: int, timeout: float) -> None:
        if self.pushes:
            self.pushes[index % len(self.pushes)].resend(timeout)

    def op_advance(self, seconds: float) -> None:
        self.timers.advance(seconds)

    def op_drop(self, code: int) -> None:
        if not self.network.conn.closed:
            self.network.conn.server_close(code)

    def op_bounce(self, code: int) -> None:
        """The connection drops, and the reconnect 10 ms later opens."""
        self.op_drop(code)
        self.timers.advance(0.01)
        self.op_open()

    def op_open(self) -> None:
        conn, link = self.network.conn, self.socket._link
        if link is not None and link.conn is conn and id(conn) not in self.opened:
            self.opened.add(id(conn))
            conn.open()

    def op_connect(self) -> None:  # what connect() does, without awaiting
        if self.socket._link is None:
            self.socket._transport_connect()

    def op_phx_error(self) -> None:
        ref = self.channel.join_ref
        self.server_says([ref, ref, self.channel.topic, "phx_error", {"reason": "x"}])

    def op_phx_close(self, chance: int) -> None:
        if chance == 0:
            ref = self.channel.join_ref
            self.server_says([ref, ref, self.channel.topic, "phx_close", {}])

    def op_leave(self, chance: int) -> None:
        if chance == 0:
            self.channel.leave()

    def op_new_channel(self) -> None:
        if self.channel.state == "closed":
            self.new_channel()

    # the end ----------------------------------------------------------------------

    def finish(self) -> None:
        # Every push attempt that exists now ends within the longest timeout.
        self.timers.advance(LONGEST + 0.01)
        for tracked in self.pushes:
            tracked.check()

        # Leave (no more rejoins): then every join attempt has ended too, once.
        self.channel.leave()
        self.timers.advance(LONGEST + 0.01)
        frames = self.client_frames()
        for topic, outcomes in self.joins:
            sent = [f for f in frames if f[2] == topic and f[3] == "phx_join"]
            assert len(outcomes) == len(sent), (topic, outcomes, sent)
        for tracked in self.pushes:
            tracked.check()
        assert self.socket.pending_pushes() == []
        assert self.problems.records == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operations, min_size=10, max_size=50))
def test_every_push_attempt_ends_exactly_once(ops: list[tuple[Any, ...]]) -> None:
    """Each attempt not replaced by a resend fires its hooks once, all in time."""
    session = Session()
    try:
        for op in ops:
            session.run(op)
        session.finish()
    finally:
        session.close()
