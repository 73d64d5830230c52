"""Port of phoenix.js ``assets/test/serializer_test.js`` (PROTOCOL §6, §12.4).

phoenix.js builds ``ArrayBuffer``s; here binary payloads are ``bytes``. The
client side encodes pushes and decodes what the server sends.
"""

from __future__ import annotations

import pytest

from phoenix_channels.message import Message
from phoenix_channels.serializer import V2JSONSerializer


@pytest.fixture
def serializer() -> V2JSONSerializer:
    return V2JSONSerializer()


# -- JSON ------------------------------------------------------------------------------


def test_encodes_general_pushes(serializer: V2JSONSerializer) -> None:
    """A push encodes to a compact [join_ref, ref, topic, event, payload] array."""
    msg = Message("0", "1", "t", "e", {"foo": 1})

    assert serializer.encode(msg) == '["0","1","t","e",{"foo":1}]'


def test_decodes(serializer: V2JSONSerializer) -> None:
    """A JSON array frame decodes to the message it describes."""
    frame = '["0","1","t","e",{"foo":1}]'

    assert serializer.decode(frame) == Message("0", "1", "t", "e", {"foo": 1})


# -- binary ----------------------------------------------------------------------------


def test_encodes(serializer: V2JSONSerializer) -> None:
    """A bytes payload encodes as a kind-0 client push with four length bytes."""
    msg = Message("0", "1", "t", "e", b"\x01")

    assert serializer.encode(msg) == bytes([0, 1, 1, 1, 1]) + b"01te" + b"\x01"


def test_encodes_variable_length_segments(serializer: V2JSONSerializer) -> None:
    """Each metadata field is prefixed by its own length."""
    msg = Message("10", "1", "top", "ev", b"\x01")

    assert serializer.encode(msg) == bytes([0, 2, 1, 3, 2]) + b"101topev" + b"\x01"


def test_decodes_push(serializer: V2JSONSerializer) -> None:
    """A kind-0 server push has no ref field and decodes with ref None."""
    frame = bytes([0, 3, 3, 10]) + b"123top" + b"some-event" + b"\x01\x01"

    assert serializer.decode(frame) == Message(
        "123", None, "top", "some-event", b"\x01\x01"
    )


def test_decodes_reply(serializer: V2JSONSerializer) -> None:
    """A kind-1 reply decodes to phx_reply with its status and a bytes response."""
    frame = bytes([1, 3, 2, 3, 2]) + b"10012topok" + b"\x01\x01"

    assert serializer.decode(frame) == Message(
        "100", "12", "top", "phx_reply", {"status": "ok", "response": b"\x01\x01"}
    )


def test_encodes_non_ascii_metadata_as_utf8(serializer: V2JSONSerializer) -> None:
    """Lengths count UTF-8 bytes, and the fields are written as UTF-8."""
    msg = Message("🚀", "1", "room:café", "π", b"\x01")

    frame = serializer.encode(msg)

    assert frame[:5] == bytes([0, 4, 1, 10, 2])
    assert frame[5:] == "🚀1room:caféπ".encode() + b"\x01"


def test_throws_when_a_metadata_field_exceeds_255_utf8_bytes(
    serializer: V2JSONSerializer,
) -> None:
    """A topic of 256 UTF-8 bytes cannot be put in a binary frame."""
    msg = Message("1", "2", "é" * 128, "e", b"\x01")

    with pytest.raises(ValueError, match="topic.*256 bytes"):
        serializer.encode(msg)


def test_decodes_broadcast(serializer: V2JSONSerializer) -> None:
    """A kind-2 broadcast decodes with null join_ref and ref."""
    frame = bytes([2, 3, 10]) + b"top" + b"some-event" + b"\x01\x01"

    assert serializer.decode(frame) == Message(
        None, None, "top", "some-event", b"\x01\x01"
    )
