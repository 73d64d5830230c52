"""Server-side wire codec: lenient decoding in, sorted compact JSON out.

The shared :mod:`phoenix_channels.serializer` is strict, which is right for a
client but wrong for a server that must answer malformed frames exactly as
Phoenix 1.7.24 does. Phoenix decodes with plain pattern matches, so
(transcripts README, fact 5):

- vsn 2.0.0 text: any JSON array of *at least* five elements is a message
  (``[join_ref, ref, topic, event, payload | _]``); extra elements are
  ignored, and the five values may be any JSON (a numeric ref is echoed back
  as a number, a numeric or null topic reaches no channel).
- vsn 2.0.0 binary: only kind 0 (a client push) decodes; the four length
  bytes must fit the frame (fields stay ``""`` when empty, as in Elixir).
- vsn 1.0.0: a JSON object with ``topic``, ``event``, ``payload`` and ``ref``
  (``join_ref`` optional, other keys ignored). Phoenix's V1 serializer
  JSON-decodes the frame whatever its opcode, so a binary frame holding a
  valid JSON object is decoded too; any other binary frame is not.

Everything else raises :class:`~phoenix_channels.serializer.DecodeError`; the
connection answers it by closing with 1011 (fact 4). :class:`Message` fields
produced here may therefore hold any JSON value, not only ``str``.

Outbound frames go through the shared serializer with ``side="server"`` and
``sort_keys=True``: Jason emits compact UTF-8 with sorted keys (fact 1).
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..message import PHX_REPLY, Message
from ..serializer import (
    DecodeError,
    Serializer,
    decode_binary,
    serializer_for,
    unpack_v1,
)

__all__ = [
    "DEFAULT_VSN",
    "V1",
    "V2",
    "WireFormat",
    "negotiate_vsn",
    "reply_message",
    "wire_for",
]

#: Phoenix reads ``params["vsn"] || "1.0.0"``: a client that sends no vsn
#: speaks 1.0.0, not 2.0.0 (``Phoenix.Socket.__connect__``).
DEFAULT_VSN = "1.0.0"

_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?"
)


def negotiate_vsn(requested: str | None) -> str | None:
    """The serializer version for a client's ``vsn`` param, or ``None``.

    Phoenix matches the requested version against ``~> 1.0.0`` and
    ``~> 2.0.0``: any ``1.0.x`` or ``2.0.x`` is accepted, a pre-release or an
    unparsable version is not. ``None`` means no serializer fits; Phoenix then
    refuses the connection exactly like a refused ``connect`` (HTTP 403).
    """
    vsn = DEFAULT_VSN if requested is None else requested
    match = _SEMVER.fullmatch(vsn)
    if match is None or match.group(4) is not None:
        return None
    major, minor = match.group(1), match.group(2)
    if minor != "0":
        return None
    if major == "1":
        return "1.0.0"
    if major == "2":
        return "2.0.0"
    return None


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity; Jason does not.
    raise ValueError(f"{name} is not valid JSON")


_decode_json = json.JSONDecoder(parse_constant=_reject_constant).decode
# A "\ud800"-style escape may decode to a lone surrogate, which can never be
# sent back as UTF-8; Jason rejects such input, and so do we.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _load(text: str) -> Any:
    try:
        value = _decode_json(text)
    except ValueError as exc:
        raise DecodeError(f"frame is not JSON: {exc}") from None
    except RecursionError:
        # "[[[[..." deeper than Python's recursion limit; Jason has no such
        # limit, but a frame we cannot decode is answered alike: 1011.
        raise DecodeError("frame is nested too deeply") from None
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise DecodeError("frame contains a lone UTF-16 surrogate") from None
        except RecursionError:
            raise DecodeError("frame is nested too deeply") from None
    return value


class WireFormat:
    """One serializer version as the server speaks it.

    Attributes:
        vsn: ``"1.0.0"`` or ``"2.0.0"``; also the key under which a broadcast
            is encoded once for every subscriber of this version.
    """

    def __init__(self, vsn: str) -> None:
        self.vsn = vsn
        self._serializer: Serializer = serializer_for(vsn, "server", sort_keys=True)

    def encode(self, msg: Message) -> str | bytes:
        """Encode an outbound message (raises ``TypeError``/``ValueError``)."""
        return self._serializer.encode(msg)

    def decode(self, data: str | bytes) -> Message:
        """Decode an inbound frame leniently; raises :class:`DecodeError`."""
        if self.vsn == "2.0.0":
            return _decode_v2(data)
        return _decode_v1(data)

    def __repr__(self) -> str:
        return f"WireFormat({self.vsn!r})"


def _decode_v2(data: str | bytes) -> Message:
    if isinstance(data, bytes):
        return decode_binary(data, "server")  # kind 0 only, fields kept as ""
    value = _load(data)
    if type(value) is not list or len(value) < 5:
        raise DecodeError(
            "a vsn 2.0.0 text frame must be a JSON array "
            "[join_ref, ref, topic, event, payload]"
        )
    return Message(value[0], value[1], value[2], value[3], value[4])


def _decode_v1(data: str | bytes) -> Message:
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("vsn 1.0.0 frame is not UTF-8 JSON") from None
    else:
        text = data
    return Message(*unpack_v1(_load(text)))


def reply_message(
    join_ref: Any, ref: Any, topic: Any, status: str, response: Any
) -> Message:
    """A ``phx_reply`` message (PROTOCOL §6.1)."""
    return Message(
        join_ref, ref, topic, PHX_REPLY, {"status": status, "response": response}
    )


V1 = WireFormat("1.0.0")
V2 = WireFormat("2.0.0")
_WIRES = {"1.0.0": V1, "2.0.0": V2}


def wire_for(vsn: str) -> WireFormat:
    """The shared :class:`WireFormat` of a negotiated ``vsn``."""
    return _WIRES[vsn]
