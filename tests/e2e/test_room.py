"""The room:* demo channel, event by event, over a real loopback websocket
(vsn 2.0.0 and 1.0.0)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from phoenix_channels import (
    ConnectError,
    JoinError,
    PushError,
    PushTimeout,
    Socket,
)
from phoenix_channels.server import Server, demo_server

from .conftest import WAIT, Calls, SocketFactory, bounded, joined, until

# --- join ---------------------------------------------------------------------


async def test_join_replies_with_topic_and_params(socket: Socket) -> None:
    """A join is answered ok with the topic and the join params echoed."""
    params = {"user": "bob", "n": 1, "nested": {"a": [1, 2]}, "u": "é✓"}
    channel = socket.channel("room:lobby", params)
    reply = await bounded(channel.join())
    assert reply == {"joined": "room:lobby", "params": params}
    assert channel.state == "joined"


async def test_join_without_params_echoes_an_empty_object(socket: Socket) -> None:
    """A join without params gets ``params: {}`` back."""
    reply = await bounded(socket.channel("room:lobby").join())
    assert reply == {"joined": "room:lobby", "params": {}}


async def test_join_private_is_refused_unauthorized(socket: Socket) -> None:
    """Joining room:private raises JoinError with ``{"reason": "unauthorized"}``."""
    channel = socket.channel("room:private")
    with pytest.raises(JoinError) as info:
        await bounded(channel.join())
    assert info.value.status == "error"
    assert info.value.response == {"reason": "unauthorized"}
    assert isinstance(info.value, PushError)
    assert channel.state == "errored"


async def test_join_delay_ms_delays_the_join_reply(socket: Socket) -> None:
    """Join params ``{"delay_ms": 300}`` make the join reply come after 300 ms."""
    channel = socket.channel("room:lobby", {"delay_ms": 300})
    join = channel.join()
    reply = await bounded(join)
    assert reply == {"joined": "room:lobby", "params": {"delay_ms": 300}}
    assert join.duration is not None and join.duration >= 0.29


async def test_join_delay_ms_holds_heartbeats_back(socket: Socket) -> None:
    """A delayed join blocks the whole connection: a ping sent meanwhile is
    answered only after the join reply (fact 11)."""
    channel = socket.channel("room:lobby", {"delay_ms": 300})
    join = channel.join()
    rtt = await bounded(socket.ping())
    assert join.status == "ok"
    assert rtt >= 0.25


async def test_join_delay_ms_beyond_the_timeout_times_out(socket: Socket) -> None:
    """A join whose reply is delayed past its timeout raises PushTimeout."""
    channel = socket.channel("room:lobby", {"delay_ms": 400})
    with pytest.raises(PushTimeout):
        await bounded(channel.join(timeout=0.1))


async def test_join_of_a_topic_nobody_handles_is_unmatched(socket: Socket) -> None:
    """A topic no channel handles is refused with ``{"reason": "unmatched topic"}``."""
    with pytest.raises(JoinError) as info:
        await bounded(socket.channel("nochannel:x").join())
    assert info.value.response == {"reason": "unmatched topic"}


async def test_bad_token_connect_param_raises_connect_error(
    connect: SocketFactory,
) -> None:
    """Connect param ``token=bad`` is refused with HTTP 403: ConnectError."""
    with pytest.raises(ConnectError) as info:
        await connect(params={"token": "bad"})
    assert "403" in str(info.value)


async def test_good_token_connect_param_connects(connect: SocketFactory) -> None:
    """Any token other than ``bad`` is accepted."""
    socket = await connect(params={"token": "good"})
    assert socket.is_connected()


async def test_connect_to_a_stopped_server_raises_connect_error(vsn: str) -> None:
    """A port nobody listens on gives ConnectError and leaves the socket closed."""
    async with demo_server(port=0) as stopped:
        url = stopped.url
    socket = Socket(url, vsn=vsn)
    with pytest.raises(ConnectError):
        await bounded(socket.connect())
    assert socket.connection_state == "closed"


@pytest.fixture
async def small_server() -> AsyncIterator[Server]:
    """The demo server allowing two channels per connection."""
    async with demo_server(port=0, max_channels=2) as server:
        yield server


async def test_joins_past_max_channels_are_refused(
    small_server: Server, connect: SocketFactory
) -> None:
    """The join past ``max_channels`` is refused: too many channels joined."""
    socket = await connect(url=small_server.url)
    await joined(socket, "room:1")
    await joined(socket, "room:2")
    with pytest.raises(JoinError) as info:
        await bounded(socket.channel("room:3").join())
    assert info.value.response == {"reason": "too many channels joined"}


async def test_leaving_frees_a_channel_slot(
    small_server: Server, connect: SocketFactory
) -> None:
    """After a leave, another topic can be joined within ``max_channels``."""
    socket = await connect(url=small_server.url)
    first = await joined(socket, "room:1")
    await joined(socket, "room:2")
    await bounded(first.leave())
    await until(lambda: len(small_server.connections[0].topics) == 1, "leave seen")
    assert await bounded(socket.channel("room:3").join()) == {
        "joined": "room:3",
        "params": {},
    }


#: vsn 1.0.0 frames have no join_ref slot, but Phoenix puts the join_ref of the
#: closing channel in the ``ref`` slot of phx_close/phx_error when the client
#: sent one (transcripts fact 9, ``v1_join_with_join_ref_key``), as ours does,
#: so the client can tell the old channel's late close from its own.
@pytest.mark.parametrize("vsn", ["2.0.0", "1.0.0"])
async def test_leave_then_push_on_a_new_channel(socket: Socket) -> None:
    """After leaving, a new Channel on the same topic joins afresh and pushes."""
    old = await joined(socket, "room:lobby")
    assert await bounded(old.push("count")) == {"count": 1}
    closed = Calls()
    old.on_close(closed)
    assert await bounded(old.leave()) == {}
    await closed.wait()
    assert old.state == "closed"
    new = socket.channel("room:lobby")
    await bounded(new.join(), 2.0)  # 2 s: a loopback join takes milliseconds
    assert await bounded(new.push("echo", {"again": True})) == {"again": True}
    assert await bounded(new.push("count")) == {"count": 1}  # a fresh channel


@pytest.mark.parametrize("vsn", ["2.0.0", "1.0.0"])
async def test_joining_a_topic_twice_replaces_the_first_channel(
    socket: Socket,
) -> None:
    """A second Channel joining the same topic leaves the first (it closes) and
    works on a fresh server channel."""
    first = await joined(socket, "room:lobby")
    assert await bounded(first.push("count")) == {"count": 1}
    closed = Calls()
    first.on_close(closed)
    second = socket.channel("room:lobby")
    await bounded(second.join(), 2.0)
    await closed.wait()
    assert first.state == "closed"
    assert second.state == "joined"
    assert await bounded(second.push("count")) == {"count": 1}


async def test_second_join_on_the_same_channel_raises(socket: Socket) -> None:
    """Calling join() twice on one Channel raises RuntimeError."""
    channel = await joined(socket, "room:lobby")
    with pytest.raises(RuntimeError):
        channel.join()


# --- events -------------------------------------------------------------------


async def test_echo_returns_the_payload(socket: Socket) -> None:
    """``echo`` replies ok with the same payload, non-ASCII text included."""
    channel = await joined(socket, "room:lobby")
    payload = {"body": "hi", "n": 1, "list": [1, "two", None], "u": "é✓ 日本 🎉"}
    assert await bounded(channel.push("echo", payload)) == payload


async def test_echo_of_a_two_mib_payload(socket: Socket) -> None:
    """A 2 MiB payload is echoed whole (Phoenix has no frame-size limit)."""
    channel = await joined(socket, "room:lobby")
    payload = {"big": "é" * (1024 * 1024)}  # 2 MiB of UTF-8
    assert await bounded(channel.push("echo", payload)) == payload


async def test_echo_of_none_payload_is_an_empty_object(socket: Socket) -> None:
    """A ``None`` payload is sent as ``{}``."""
    channel = await joined(socket, "room:lobby")
    assert await bounded(channel.push("echo")) == {}


async def test_fail_raises_push_error(socket: Socket) -> None:
    """``fail`` raises PushError with status error and the changeset errors."""
    channel = await joined(socket, "room:lobby")
    push = channel.push("fail", {"title": ""})
    with pytest.raises(PushError) as info:
        await bounded(push)
    assert not isinstance(info.value, JoinError)
    assert info.value.status == "error"
    assert info.value.response == {"errors": {"title": ["can't be blank"]}}
    assert info.value.push is push
    assert push.status == "error"


async def test_fail_fires_the_error_receive_hook(socket: Socket) -> None:
    """``receive("error", cb)`` gets the error response of ``fail``."""
    channel = await joined(socket, "room:lobby")
    errors = Calls()
    channel.push("fail").receive("error", errors)
    await errors.wait()
    assert errors.first_args == [{"errors": {"title": ["can't be blank"]}}]


async def test_noreply_times_out(socket: Socket) -> None:
    """``noreply`` gets no reply: PushTimeout (a TimeoutError) after its timeout."""
    channel = await joined(socket, "room:lobby")
    push = channel.push("noreply", {}, timeout=0.2)
    with pytest.raises(PushTimeout) as info:
        await bounded(push)
    assert isinstance(info.value, TimeoutError)
    assert info.value.push is push
    assert push.status == "timeout"
    assert push.duration is not None and push.duration >= 0.19


async def test_slow_replies_after_the_delay(socket: Socket) -> None:
    """``slow {"ms": 200}`` replies ok with the payload after about 200 ms."""
    channel = await joined(socket, "room:lobby")
    push = channel.push("slow", {"ms": 200})
    assert await bounded(push) == {"ms": 200}
    assert push.duration is not None and push.duration >= 0.19


async def test_slow_blocks_only_its_own_channel(socket: Socket) -> None:
    """While ``slow`` runs, another topic and a heartbeat are answered at once."""
    busy = await joined(socket, "room:busy")
    free = await joined(socket, "room:free")
    slow = busy.push("slow", {"ms": 500})
    echo = free.push("echo", {"x": 1})
    assert await bounded(echo) == {"x": 1}
    assert await bounded(socket.ping()) < 0.5
    assert slow.status is None  # still running
    assert await bounded(slow) == {"ms": 500}


async def test_same_channel_pushes_wait_behind_slow(socket: Socket) -> None:
    """An echo on the same topic is answered only after the slow push."""
    channel = await joined(socket, "room:lobby")
    order = Calls()
    channel.push("slow", {"ms": 200}).receive("ok", lambda r: order("slow"))
    channel.push("echo", {}).receive("ok", lambda r: order("echo"))
    await order.wait_count(2)
    assert order.first_args == ["slow", "echo"]


async def test_count_counts_only_count_calls(socket: Socket) -> None:
    """``count`` replies 1, 2, 3; other events in between do not count."""
    channel = await joined(socket, "room:lobby")
    assert await bounded(channel.push("count")) == {"count": 1}
    await bounded(channel.push("echo", {}))
    assert await bounded(channel.push("count")) == {"count": 2}
    with pytest.raises(PushError):
        await bounded(channel.push("fail"))
    assert await bounded(channel.push("count")) == {"count": 3}


async def test_count_is_per_channel(socket: Socket) -> None:
    """Each topic's channel counts from 1 on its own."""
    a = await joined(socket, "room:a")
    b = await joined(socket, "room:b")
    assert await bounded(a.push("count")) == {"count": 1}
    assert await bounded(a.push("count")) == {"count": 2}
    assert await bounded(b.push("count")) == {"count": 1}


async def test_unknown_event_is_an_error(socket: Socket) -> None:
    """Any other event replies error ``{"reason": "unknown_event"}``."""
    channel = await joined(socket, "room:lobby")
    with pytest.raises(PushError) as info:
        await bounded(channel.push("no_such_thing", {"a": 1}))
    assert info.value.response == {"reason": "unknown_event"}


async def test_push_me_event_fires_before_the_reply(socket: Socket) -> None:
    """``push_me``: the ``pushed`` callback runs before the reply resolves."""
    channel = await joined(socket, "room:lobby")
    order = Calls()
    channel.on("pushed", lambda payload: order("pushed", payload))
    push = channel.push("push_me", {"x": 1})
    push.receive("ok", lambda response: order("reply", response))
    assert await bounded(push) == {"x": 1}
    assert order.calls == [("pushed", {"x": 1}), ("reply", {"x": 1})]


async def test_pushed_event_reaches_only_the_pusher(connect: SocketFactory) -> None:
    """``pushed`` goes to the pushing client only, not to other members."""
    a, b = await connect(), await connect()
    ca, cb = await joined(a, "room:lobby"), await joined(b, "room:lobby")
    got_a, got_b = Calls(), Calls()
    ca.on("pushed", got_a)
    cb.on("pushed", got_b)
    await bounded(ca.push("push_me", {"x": 1}))
    await bounded(cb.push("echo", {}))  # b's connection is drained up to here
    assert got_a.first_args == [{"x": 1}]
    assert got_b.calls == []


async def test_channel_off_stops_a_callback(socket: Socket) -> None:
    """``off(event, ref)`` removes that callback only."""
    channel = await joined(socket, "room:lobby")
    kept, removed = Calls(), Calls()
    channel.on("pushed", kept)
    ref = channel.on("pushed", removed)
    channel.off("pushed", ref)
    await bounded(channel.push("push_me", {"x": 2}))
    assert kept.first_args == [{"x": 2}]
    assert removed.calls == []


async def test_broadcast_reaches_every_socket(connect: SocketFactory) -> None:
    """``broadcast`` sends ``broadcasted`` to every member; the sender gets it
    before its own reply."""
    a, b = await connect(), await connect()
    ca, cb = await joined(a, "room:lobby"), await joined(b, "room:lobby")
    order_a, got_b = Calls(), Calls()
    ca.on("broadcasted", lambda payload: order_a("broadcasted", payload))
    cb.on("broadcasted", got_b)
    push = ca.push("broadcast", {"b": 2, "u": "é"})
    push.receive("ok", lambda response: order_a("reply", response))
    assert await bounded(push) == {"b": 2, "u": "é"}
    await got_b.wait()
    assert got_b.first_args == [{"b": 2, "u": "é"}]
    assert order_a.calls == [
        ("broadcasted", {"b": 2, "u": "é"}),
        ("reply", {"b": 2, "u": "é"}),
    ]


async def test_broadcast_stays_in_its_topic(connect: SocketFactory) -> None:
    """Members of another topic do not get the broadcast."""
    a, b = await connect(), await connect()
    ca, cb = await joined(a, "room:one"), await joined(b, "room:two")
    got_b = Calls()
    cb.on("broadcasted", got_b)
    await bounded(ca.push("broadcast", {"b": 1}))
    await bounded(cb.push("echo", {}))
    assert got_b.calls == []


async def test_server_broadcast_reaches_members(server: Server, socket: Socket) -> None:
    """``server.broadcast`` delivers to every joined channel of the topic."""
    channel = await joined(socket, "room:lobby")
    got = Calls()
    channel.on("news", got)
    assert server.broadcast("room:lobby", "news", {"n": 1}) == 1
    await got.wait()
    assert got.first_args == [{"n": 1}]


# --- stop and crash -------------------------------------------------------------


async def test_stop_replies_bye_and_closes_without_rejoin(
    connect: SocketFactory,
) -> None:
    """``stop`` replies ok ``{"bye": true}``, on_close fires, the channel is
    closed and no rejoin is ever scheduled."""
    rejoins = Calls()

    def rejoin_after(tries: int) -> float:
        rejoins(tries)
        return 0.01

    socket = await connect(rejoin_after=rejoin_after)
    channel = await joined(socket, "room:lobby")
    closed = Calls()
    channel.on_close(closed)
    assert await bounded(channel.push("stop")) == {"bye": True}
    await closed.wait()
    assert channel.state == "closed"
    assert await bounded(socket.ping()) >= 0  # the socket stays open
    assert socket.is_connected()
    assert channel.state == "closed"
    assert rejoins.calls == []


async def test_stop_leaves_other_channels_working(socket: Socket) -> None:
    """After one channel stops, the other channels of the socket still work."""
    stopped = await joined(socket, "room:a")
    other = await joined(socket, "room:b")
    closed = Calls()
    stopped.on_close(closed)
    await bounded(stopped.push("stop"))
    await closed.wait()
    assert await bounded(other.push("echo", {"still": "here"})) == {"still": "here"}


async def test_crash_errors_the_channel_which_rejoins_itself(socket: Socket) -> None:
    """``crash``: the channel gets phx_error ``{}``, rejoins on its own, and the
    new server channel counts from 1 again."""
    channel = socket.channel("room:lobby")
    rejoined = Calls()
    join = channel.join().receive("ok", rejoined)  # fires again at every rejoin
    await bounded(join)
    assert await bounded(channel.push("count")) == {"count": 1}
    assert await bounded(channel.push("count")) == {"count": 2}
    errors = Calls()
    channel.on_error(errors)
    channel.push("crash", {}, timeout=1.0)
    await errors.wait()
    assert errors.first_args == [{}]
    await rejoined.wait_count(2)
    assert channel.state == "joined"
    assert await bounded(channel.push("count")) == {"count": 1}


async def test_crash_push_itself_gets_no_reply(socket: Socket) -> None:
    """The ``crash`` push has no reply (Phoenix sends none): it times out."""
    channel = await joined(socket, "room:lobby")
    with pytest.raises(PushTimeout):
        await bounded(channel.push("crash", {}, timeout=0.3))


async def test_crash_leaves_the_socket_and_other_channels_alone(
    socket: Socket,
) -> None:
    """A crashing channel does not disturb the socket or its other channels."""
    crashing = await joined(socket, "room:a")
    other = await joined(socket, "room:b")
    opened = Calls()
    socket.on_open(opened)
    errors = Calls()
    crashing.on_error(errors)
    crashing.push("crash", {}, timeout=WAIT)
    await errors.wait()
    assert await bounded(other.push("count")) == {"count": 1}
    assert other.state == "joined"
    assert opened.calls == []  # no reconnect happened


@pytest.mark.parametrize("vsn", ["1.0.0"])
async def test_bytes_payload_on_vsn_1_raises_at_the_call(socket: Socket) -> None:
    """vsn 1.0.0 has no binary frames: a bytes payload raises ValueError at once."""
    channel = await joined(socket, "room:lobby")
    with pytest.raises(ValueError):
        channel.push("binary_echo", b"ab")
    assert socket.pending_pushes() == []
