"""The server's codec: lenient where Phoenix is, strict where it crashes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from phoenix_channels.message import Message
from phoenix_channels.serializer import DecodeError
from phoenix_channels.server.wire import V1, V2, negotiate_vsn, reply_message

from .helpers import binary_push


@pytest.mark.parametrize(
    ("requested", "vsn"),
    [
        (None, "1.0.0"),  # Phoenix: params["vsn"] || "1.0.0"
        ("1.0.0", "1.0.0"),
        ("2.0.0", "2.0.0"),
        ("2.0.7", "2.0.0"),  # ~> 2.0.0
        ("1.0.3+build", "1.0.0"),
        ("2.1.0", None),
        ("3.0.0", None),
        ("2.0.0-rc.1", None),  # pre-releases never match
        ("2.0", None),
        ("02.0.0", None),
        ("", None),  # "" is truthy in Elixir, and no version
        ("abc", None),
    ],
)
def test_negotiate_vsn(requested, vsn):
    """vsn negotiation follows Phoenix's ~> 1.0.0 / ~> 2.0.0 requirements."""
    assert negotiate_vsn(requested) == vsn


def test_v2_decodes_five_element_arrays():
    """A v2 text frame is [join_ref, ref, topic, event, payload]."""
    assert V2.decode('["1","2","room:a","echo",{"x":1}]') == Message(
        "1", "2", "room:a", "echo", {"x": 1}
    )


def test_v2_ignores_elements_past_the_fifth():
    """Phoenix matches [join_ref, ref, topic, event, payload | _] (arity 6 ok)."""
    assert V2.decode('["1","2","t","e",{},"extra",7]') == Message(
        "1", "2", "t", "e", {}
    )


def test_v2_passes_non_string_fields_through():
    """Numbers and null stay as they are: the reply echoes them (fact 5)."""
    assert V2.decode('[1,2,42,123,"s"]') == Message(1, 2, 42, 123, "s")


@pytest.mark.parametrize(
    "frame",
    [
        "hello",
        "",
        '{"topic":"t","event":"e","payload":{},"ref":"1"}',
        '["1","2","t","e"]',
        "[]",
        '"string"',
        '[NaN,"2","t","e",{}]',
        '["1","2","t","e",Infinity]',
        '["1","2","t","e",{"s":"\\ud800"}]',
    ],
)
def test_v2_rejects_what_crashes_phoenix(frame):
    """Undecodable v2 text frames raise DecodeError (the server closes 1011)."""
    with pytest.raises(DecodeError):
        V2.decode(frame)


def test_v2_accepts_escaped_surrogate_pairs():
    """A proper surrogate pair escape is one character, not an error."""
    assert V2.decode('["1","2","t","e","\\ud83d\\ude00"]').payload == "\U0001f600"


def test_v2_binary_push_keeps_empty_fields():
    """A kind-0 binary push decodes; empty fields stay "" as in Elixir."""
    frame = binary_push("", "10", "room:lobby", "binary_echo", b"\x00\xff")
    assert V2.decode(frame) == Message(
        "", "10", "room:lobby", "binary_echo", b"\x00\xff"
    )


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        bytes([0, 1, 2, 10, 11]) + b"1",  # truncated
        bytes([1, 1, 1, 10, 4]) + b"12room:lobbyecho{}",  # kind 1 from a client
        bytes([2, 1, 1]) + b"te",  # kind 2 from a client
        bytes([0, 1, 0, 0, 0]) + b"\xff",  # field not UTF-8
    ],
)
def test_v2_rejects_bad_binary(frame):
    """Only well-formed kind-0 binary frames decode."""
    with pytest.raises(DecodeError):
        V2.decode(frame)


def test_v1_decodes_objects_and_ignores_extra_keys():
    """v1: topic, event, payload, ref required; join_ref optional; rest ignored."""
    frame = '{"topic":"t","event":"e","payload":{},"ref":"2","join_ref":"1","x":1}'
    assert V1.decode(frame) == Message("1", "2", "t", "e", {})


def test_v1_decodes_json_in_a_binary_frame():
    """Phoenix's V1 serializer JSON-decodes whatever the opcode."""
    frame = b'{"topic":"t","event":"e","payload":{},"ref":"2"}'
    assert V1.decode(frame) == Message(None, "2", "t", "e", {})


@pytest.mark.parametrize(
    "frame",
    [
        '["1","2","t","e",{}]',
        '{"topic":"t","event":"e","payload":{}}',
        "hello",
        bytes([0, 1, 1, 10, 11]) + b"12room:lobbybinary_echo\x00\x01",
    ],
)
def test_v1_rejects_what_crashes_phoenix(frame):
    """Undecodable v1 frames raise DecodeError."""
    with pytest.raises(DecodeError):
        V1.decode(frame)


def test_outbound_json_is_compact_sorted_and_raw_utf8():
    """Jason's output: sorted keys, no spaces, no \\u escapes (fact 1)."""
    msg = reply_message("1", "2", "room:lobby", "ok", {"u": "é✓", "b": "hi", "n": 1})
    assert V2.encode(msg) == (
        '["1","2","room:lobby","phx_reply",'
        '{"response":{"b":"hi","n":1,"u":"é✓"},"status":"ok"}]'
    )
    assert V1.encode(msg) == (
        '{"event":"phx_reply","payload":{"response":{"b":"hi","n":1,"u":"é✓"},'
        '"status":"ok"},"ref":"2","topic":"room:lobby"}'
    )


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=64), st.text(max_size=64)))
def test_decoding_arbitrary_input_never_raises_anything_but_decode_error(data):
    """Fuzz: garbage in gives a Message or DecodeError, nothing else."""
    for wire in (V1, V2):
        try:
            wire.decode(data)
        except DecodeError:
            pass
