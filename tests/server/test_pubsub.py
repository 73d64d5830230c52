"""PubSub fastlane: one encoding per serializer version, not per subscriber."""

from __future__ import annotations

from phoenix_channels.server import PubSub
from phoenix_channels.server.pubsub import PreparedFrame


class Sink:
    def __init__(self, vsn: str) -> None:
        self.vsn = vsn
        self.frames: list[PreparedFrame] = []

    def deliver(self, frame: PreparedFrame) -> None:
        self.frames.append(frame)


def test_broadcast_is_encoded_once_per_version():
    """Subscribers of one version share the very same encoded frame."""
    pubsub = PubSub()
    v2s = [Sink("2.0.0") for _ in range(3)]
    v1s = [Sink("1.0.0") for _ in range(2)]
    for sink in [*v2s, *v1s]:
        pubsub.subscribe("t", sink)
    assert pubsub.broadcast("t", "e", {"b": 1, "a": 2}) == 5
    assert len({id(s.frames[0]) for s in v2s}) == 1
    assert len({id(s.frames[0]) for s in v1s}) == 1
    assert v2s[0].frames[0].data == '[null,null,"t","e",{"a":2,"b":1}]'
    assert v1s[0].frames[0].data == (
        '{"event":"e","payload":{"a":2,"b":1},"ref":null,"topic":"t"}'
    )


def test_exclude_unsubscribe_and_order():
    """broadcast(exclude=...) skips one subscriber; unsubscribe is idempotent;
    delivery follows subscription order."""
    pubsub = PubSub()
    a, b, c = Sink("2.0.0"), Sink("2.0.0"), Sink("2.0.0")
    for sink in (a, b, c):
        pubsub.subscribe("t", sink)
    assert pubsub.subscribers("t") == [a, b, c]
    assert pubsub.broadcast("t", "e", {}, exclude=b) == 2
    assert (len(a.frames), len(b.frames), len(c.frames)) == (1, 0, 1)
    pubsub.unsubscribe("t", b)
    pubsub.unsubscribe("t", b)
    pubsub.unsubscribe("nope", b)
    assert pubsub.subscribers("t") == [a, c]
    assert pubsub.broadcast("other", "e", {}) == 0


def test_binary_broadcast_is_kind_2_and_skips_v1():
    """bytes become a kind-2 frame; vsn 1.0.0 subscribers are skipped."""
    pubsub = PubSub()
    new, old = Sink("2.0.0"), Sink("1.0.0")
    pubsub.subscribe("t", new)
    pubsub.subscribe("t", old)
    assert pubsub.broadcast("t", "e", b"\x00") == 1
    assert new.frames[0].data == bytes([2, 1, 1]) + b"te\x00"
    assert old.frames == []
