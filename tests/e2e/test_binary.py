"""Binary payloads (vsn 2.0.0): ``bytes`` in, ``bytes`` out, mixed with JSON
on one socket (issue "Binary messages and Presence")."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from phoenix_channels import PushError, Socket

from .conftest import Calls, SocketFactory, bounded, joined

pytestmark = pytest.mark.parametrize("vsn", ["2.0.0"])


async def test_binary_echo_returns_the_same_bytes(socket: Socket) -> None:
    """``binary_echo`` with bytes replies ok with the same bytes, as bytes."""
    channel = await joined(socket, "room:lobby")
    data = bytes(range(256)) + b"\xfe\xff"  # not valid UTF-8
    reply = await bounded(channel.push("binary_echo", data))
    assert isinstance(reply, bytes)
    assert reply == data


async def test_binary_echo_of_empty_bytes(socket: Socket) -> None:
    """An empty binary payload comes back as empty bytes."""
    channel = await joined(socket, "room:lobby")
    assert await bounded(channel.push("binary_echo", b"")) == b""


async def test_bytearray_and_memoryview_payloads_are_sent_as_bytes(
    socket: Socket,
) -> None:
    """bytearray and memoryview payloads travel as binary frames too."""
    channel = await joined(socket, "room:lobby")
    loose: Any = [bytearray(b"ab"), memoryview(b"cd")]  # not in the declared type
    assert await bounded(channel.push("binary_echo", loose[0])) == b"ab"
    assert await bounded(channel.push("binary_echo", loose[1])) == b"cd"


async def test_binary_push_delivers_bytes_before_the_reply(socket: Socket) -> None:
    """``binary_push``: ``on("binary_pushed")`` gets the bytes, then the reply
    ``{"size": N}`` resolves."""
    channel = await joined(socket, "room:lobby")
    order = Calls()
    channel.on("binary_pushed", lambda payload: order("pushed", payload))
    push = channel.push("binary_push", b"\x00\x01\xffhi")
    push.receive("ok", lambda response: order("reply", response))
    assert await bounded(push) == {"size": 5}
    assert order.calls == [("pushed", b"\x00\x01\xffhi"), ("reply", {"size": 5})]
    assert isinstance(order.calls[0][1], bytes)


async def test_json_and_binary_mixed_on_one_socket(socket: Socket) -> None:
    """Pipelined JSON and binary pushes on one socket each get their own reply."""
    channel = await joined(socket, "room:lobby")
    other = await joined(socket, "room:other")
    pushes = []
    for i in range(20):
        pushes.append(channel.push("echo", {"i": i}))
        pushes.append(channel.push("binary_echo", bytes([i]) * (i + 1)))
        pushes.append(other.push("binary_push", b"x" * i))
    replies = await bounded(asyncio.gather(*pushes))
    for i in range(20):
        json_reply, binary_reply, size_reply = replies[3 * i : 3 * i + 3]
        assert json_reply == {"i": i}
        assert binary_reply == bytes([i]) * (i + 1)
        assert size_reply == {"size": i}


async def test_binary_echo_with_a_json_payload_is_unknown(socket: Socket) -> None:
    """``binary_echo`` sent as JSON falls through to unknown_event (fact 5)."""
    channel = await joined(socket, "room:lobby")
    with pytest.raises(PushError) as info:
        await bounded(channel.push("binary_echo", {"not": "bytes"}))
    assert info.value.response == {"reason": "unknown_event"}


async def test_binary_broadcast_reaches_other_sockets_as_bytes(
    connect: SocketFactory,
) -> None:
    """``broadcast`` with bytes reaches every member as bytes (kind-2 frame)."""
    a, b = await connect(), await connect()
    ca, cb = await joined(a, "room:lobby"), await joined(b, "room:lobby")
    got_a, got_b = Calls(), Calls()
    ca.on("broadcasted", got_a)
    cb.on("broadcasted", got_b)
    assert await bounded(ca.push("broadcast", b"\x01\x02")) == b"\x01\x02"
    await got_b.wait()
    assert got_a.first_args == [b"\x01\x02"]
    assert got_b.first_args == [b"\x01\x02"]
