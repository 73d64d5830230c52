"""Wire formats: vsn 1.0.0 (JSON objects), 2.0.0 (JSON arrays + binary frames).

Pure functions on :class:`~phoenix_channels.message.Message`; no I/O.
PROTOCOL §6 describes the formats. Both sides of the wire live here, because
the binary layouts differ by direction (PROTOCOL §6.3): a client push carries
four lengths (join_ref, ref, topic, event), a server push three (no ref).
``side`` names the side doing the encoding.

Text frames are ``str``, binary frames ``bytes``. Anything that does not
decode raises :class:`DecodeError` (a ``ValueError``); callers log it and drop
the frame.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Protocol

from .message import PHX_REPLY, Message

__all__ = [
    "DecodeError",
    "Serializer",
    "V1JSONSerializer",
    "V2JSONSerializer",
    "check_binary_field",
    "serializer_for",
]

Side = Literal["client", "server"]
Frame = str | bytes

KIND_PUSH = 0
KIND_REPLY = 1
KIND_BROADCAST = 2
MAX_BINARY_FIELD = 255


class DecodeError(ValueError):
    """A frame that is not a valid Phoenix message."""


class Serializer(Protocol):
    """Turns messages into frames and back."""

    vsn: str

    def encode(self, msg: Message) -> Frame: ...

    def decode(self, data: Frame) -> Message: ...


def _json_encoder(sort_keys: bool) -> json.JSONEncoder:
    # Compact and raw UTF-8 like JSON.stringify (client) and Jason (server,
    # which also sorts keys: transcripts README fact 1). allow_nan=False keeps
    # NaN/Infinity, which no JSON peer can read, off the wire.
    return json.JSONEncoder(
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        sort_keys=sort_keys,
    )


_decode_json = json.JSONDecoder().decode


def _load(data: Frame) -> Any:
    try:
        if isinstance(data, (bytes, bytearray, memoryview)):
            return _decode_json(bytes(data).decode("utf-8"))
        return _decode_json(data)
    except RecursionError:  # nested deeper than Python can decode
        raise DecodeError("frame is JSON nested too deep to decode") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"frame is not JSON: {exc}") from None


def _check_message(
    join_ref: Any, ref: Any, topic: Any, event: Any, payload: Any
) -> Message:
    if not isinstance(topic, str):
        raise DecodeError(f"topic must be a string, got {topic!r}")
    if not isinstance(event, str):
        raise DecodeError(f"event must be a string, got {event!r}")
    if join_ref is not None and not isinstance(join_ref, str):
        raise DecodeError(f"join_ref must be a string or null, got {join_ref!r}")
    if ref is not None and not isinstance(ref, str):
        raise DecodeError(f"ref must be a string or null, got {ref!r}")
    return Message(join_ref, ref, topic, event, payload)


class V2JSONSerializer:
    """vsn 2.0.0: ``[join_ref, ref, topic, event, payload]`` text frames, and
    binary frames for ``bytes`` payloads (PROTOCOL §6.1, §6.3)."""

    vsn = "2.0.0"

    def __init__(self, side: Side = "client", *, sort_keys: bool = False) -> None:
        self.side = side
        self._encode_json = _json_encoder(sort_keys).encode

    def encode(self, msg: Message) -> Frame:
        payload = msg.payload
        if isinstance(payload, (bytes, bytearray, memoryview)):
            return encode_binary(msg, self.side)
        if (
            msg.event == PHX_REPLY
            and self.side == "server"
            and isinstance(payload, dict)
            and isinstance(payload.get("response"), (bytes, bytearray, memoryview))
        ):
            return encode_binary(msg, self.side)
        return self._encode_json([msg.join_ref, msg.ref, msg.topic, msg.event, payload])

    def decode(self, data: Frame) -> Message:
        if isinstance(data, (bytes, bytearray, memoryview)):
            return decode_binary(bytes(data), self.side)
        value = _load(data)
        if type(value) is not list or len(value) != 5:
            raise DecodeError(
                "a vsn 2.0.0 frame must be a JSON array "
                "[join_ref, ref, topic, event, payload]"
            )
        return _check_message(*value)


class V1JSONSerializer:
    """vsn 1.0.0: JSON objects ``{topic, event, payload, ref[, join_ref]}``
    (PROTOCOL §6.2). No binary frames."""

    vsn = "1.0.0"

    def __init__(self, side: Side = "client", *, sort_keys: bool = False) -> None:
        self.side = side
        self._encode_json = _json_encoder(sort_keys).encode

    def encode(self, msg: Message) -> Frame:
        if isinstance(msg.payload, (bytes, bytearray, memoryview)):
            raise ValueError(
                "binary payloads need serializer vsn 2.0.0; "
                "create the Socket with vsn='2.0.0'"
            )
        obj: dict[str, Any] = {
            "topic": msg.topic,
            "event": msg.event,
            "payload": msg.payload,
            "ref": msg.ref,
        }
        # A v1 server never sends join_ref (PROTOCOL §6.2); a client may.
        if self.side == "client" and msg.join_ref is not None:
            obj["join_ref"] = msg.join_ref
        return self._encode_json(obj)

    def decode(self, data: Frame) -> Message:
        if isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError("vsn 1.0.0 has no binary frames")
        return _check_message(*unpack_v1(_load(data)))


def unpack_v1(value: Any) -> tuple[Any, Any, Any, Any, Any]:
    """``(join_ref, ref, topic, event, payload)`` of a decoded vsn 1.0.0 object;
    the values are not type-checked (the bundled server is lenient there)."""
    if type(value) is not dict:
        raise DecodeError("a vsn 1.0.0 frame must be a JSON object")
    try:
        topic, event = value["topic"], value["event"]
        payload, ref = value["payload"], value["ref"]
    except KeyError as exc:
        raise DecodeError(f"vsn 1.0.0 frame is missing {exc.args[0]!r}") from None
    return value.get("join_ref"), ref, topic, event, payload


def serializer_for(
    vsn: str, side: Side = "client", *, sort_keys: bool = False
) -> Serializer:
    """The serializer of ``vsn``; raises ``ValueError`` for an unknown one."""
    if vsn == "2.0.0":
        return V2JSONSerializer(side, sort_keys=sort_keys)
    if vsn == "1.0.0":
        return V1JSONSerializer(side, sort_keys=sort_keys)
    raise ValueError(f"unknown serializer vsn {vsn!r}; use '2.0.0' or '1.0.0'")


# --- binary frames (PROTOCOL §6.3) -----------------------------------------


def check_binary_field(name: str, value: str | None) -> bytes:
    """UTF-8 bytes of a metadata field; ``ValueError`` above 255 bytes."""
    raw = b"" if value is None else value.encode("utf-8")
    if len(raw) > MAX_BINARY_FIELD:
        raise ValueError(
            f"unable to convert {name} to binary: must be less than or equal "
            f"to {MAX_BINARY_FIELD} bytes, but is {len(raw)} bytes"
        )
    return raw


def encode_binary(msg: Message, side: Side) -> bytes:
    """Encode a message with a binary payload (or a binary reply response)."""
    topic = check_binary_field("topic", msg.topic)
    if side == "client":
        fields = [
            check_binary_field("join_ref", msg.join_ref),
            check_binary_field("ref", msg.ref),
            topic,
            check_binary_field("event", msg.event),
        ]
        return _pack(KIND_PUSH, fields, msg.payload)
    if msg.event == PHX_REPLY:
        status = check_binary_field("status", msg.payload["status"])
        fields = [
            check_binary_field("join_ref", msg.join_ref),
            check_binary_field("ref", msg.ref),
            topic,
            status,
        ]
        return _pack(KIND_REPLY, fields, msg.payload["response"])
    event = check_binary_field("event", msg.event)
    if msg.join_ref is None and msg.ref is None:
        return _pack(KIND_BROADCAST, [topic, event], msg.payload)
    join_ref = check_binary_field("join_ref", msg.join_ref)
    return _pack(KIND_PUSH, [join_ref, topic, event], msg.payload)


def _pack(kind: int, fields: list[bytes], payload: Any) -> bytes:
    header = bytes([kind, *(len(f) for f in fields)])
    return b"".join([header, *fields, bytes(payload)])


def decode_binary(data: bytes, side: Side) -> Message:
    """Decode a binary frame sent by the *other* side of ``side``."""
    if not data:
        raise DecodeError("empty binary frame")
    kind = data[0]
    if side == "server":
        if kind != KIND_PUSH:
            raise DecodeError(f"a client binary frame must be kind 0, got {kind}")
        join_ref, ref, topic, event, rest = _unpack(data, 4)
        return Message(join_ref, ref, topic, event, rest)
    # Empty fields stay "" as in Phoenix and phoenix.js; "" is no join_ref
    # to the membership check, as null is.
    if kind == KIND_PUSH:
        join_ref, topic, event, rest = _unpack(data, 3)
        return Message(join_ref, None, topic, event, rest)
    if kind == KIND_REPLY:
        join_ref, ref, topic, status, rest = _unpack(data, 4)
        payload = {"status": status, "response": rest}
        return Message(join_ref, ref, topic, PHX_REPLY, payload)
    if kind == KIND_BROADCAST:
        topic, event, rest = _unpack(data, 2)
        return Message(None, None, topic, event, rest)
    raise DecodeError(f"unknown binary frame kind {kind}")


def _unpack(data: bytes, count: int) -> list[Any]:
    header_end = 1 + count
    if len(data) < header_end:
        raise DecodeError("binary frame shorter than its header")
    lengths = data[1:header_end]
    out: list[Any] = []
    pos = header_end
    for length in lengths:
        end = pos + length
        if end > len(data):
            raise DecodeError("binary frame shorter than its declared fields")
        try:
            out.append(data[pos:end].decode("utf-8"))
        except UnicodeDecodeError:
            raise DecodeError("binary frame field is not valid UTF-8") from None
        pos = end
    out.append(data[pos:])
    return out
