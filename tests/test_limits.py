"""Bounded buffers: past a documented limit a push fails at the call."""

from __future__ import annotations

import pytest

from phoenix_channels.errors import BufferFull, PhoenixError
from tests.fakes import make_socket, open_socket, reply


def test_push_buffer_limit_raises_buffer_full_at_the_call() -> None:
    """A channel not yet joined holds at most max_buffered_pushes pushes."""
    socket, _, _ = open_socket(max_buffered_pushes=3)
    channel = socket.channel("room:1")
    channel.join()
    pushes = [channel.push("ev", {"i": i}) for i in range(3)]
    with pytest.raises(BufferFull, match="max_buffered_pushes") as info:
        channel.push("ev", {"i": 3})
    assert isinstance(info.value, PhoenixError) and isinstance(info.value, BufferError)
    assert len(channel._push_buffer) == 3
    assert all(p.status is None for p in pushes)


def test_timed_out_buffered_pushes_make_room() -> None:
    """Buffered pushes that timed out no longer count against the limit."""
    socket, timers, _ = open_socket(max_buffered_pushes=2)
    channel = socket.channel("room:1")
    channel.join(timeout=100.0)
    channel.push("ev", {}, timeout=1.0)
    channel.push("ev", {}, timeout=1.0)
    timers.advance(1.0)  # t=1.0: both buffered pushes time out
    channel.push("ev", {})
    assert len(channel._push_buffer) == 1


def test_buffered_pushes_flush_in_order_below_the_limit() -> None:
    """Under the limit, buffered pushes go out in order once joined."""
    socket, _, network = open_socket(max_buffered_pushes=2)
    channel = socket.channel("room:1")
    channel.join()
    channel.push("a", {})
    channel.push("b", {})
    network.conn.receive(reply("3", "3", "room:1"))
    assert [f[3] for f in network.conn.frames()[1:]] == ["a", "b"]


def test_send_buffer_limit_raises_buffer_full() -> None:
    """While the connection is not open the socket holds max_send_buffer frames."""
    socket, _, _ = make_socket(max_send_buffer=2)
    socket.channel("room:1").join()
    socket.channel("room:2").join()
    with pytest.raises(BufferFull, match="max_send_buffer"):
        socket.channel("room:3").join()
    assert len(socket._send_buffer) == 2


def test_join_refused_by_a_full_send_buffer_leaves_the_channel_untouched() -> None:
    """BufferFull from join() changes nothing: the channel can join later."""
    socket, _, network = make_socket(max_send_buffer=1)
    socket.channel("room:1").join()
    channel = socket.channel("room:2")
    with pytest.raises(BufferFull):
        channel.join()
    assert channel.state == "closed"
    socket._transport_connect()
    network.conn.open()
    channel.join()
    assert channel.state == "joining"


def test_leave_with_a_full_send_buffer_still_closes_locally() -> None:
    """leave() never fails: offline with a full buffer it closes locally."""
    socket, _, _ = make_socket(max_send_buffer=1)
    channel = socket.channel("room:1")
    channel.join()
    leave = channel.leave()
    assert channel.state == "closed"
    assert leave.status == "ok"
