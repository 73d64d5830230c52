"""Port of phoenix.js ``assets/test/channel_test.js`` (PROTOCOL §4, §12.1).

The ``push`` describe block of channel_test.js lives in ``test_push.py``.

phoenix.js stubs ``socket.push``/``isConnected``/``makeRef`` and triggers
events on the channel directly; here the socket runs for real on a fake clock
and an in-memory transport, and the test plays the server by feeding frames.
Refs are real: a new socket's first channel joins with ref "3" (§5.9).
Times are seconds (phoenix.js's 10000 ms default timeout is 10.0).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any
from unittest.mock import Mock

import pytest

from phoenix_channels import JoinError
from phoenix_channels.channel import ChannelState
from tests.fakes import (
    Network,
    channels_of,
    connect,
    events,
    join_ok,
    joined,
    joining,
    make_socket,
    open_socket,
    reply,
    wait_for,
)

TIMEOUT = 10.0


def joins(network: Network, topic: str = "topic") -> list[Any]:
    """Every phx_join frame sent for ``topic`` so far, over any connection."""
    return [f for f in network.frames() if f[2] == topic and f[3] == "phx_join"]


def server_event(channel: Any, event: str, payload: Any = None) -> list[Any]:
    """A server frame for ``channel``'s current join (phx_error, phx_close, ...)."""
    ref = channel.join_ref
    return [ref, ref, channel.topic, event, {} if payload is None else payload]


# -- constructor -----------------------------------------------------------------------


def test_sets_defaults() -> None:
    """A new channel is closed, keeps topic, params and socket, and has no join ref."""
    socket, _, _ = make_socket(timeout=1.234)

    channel = socket.channel("topic", {"one": "two"})

    assert channel.state == "closed"
    assert channel.topic == "topic"
    assert channel.params == {"one": "two"}
    assert channel.socket is socket
    assert channel.join_ref is None
    assert channel.can_push() is False


def test_sets_up_join_push_object_with_literal_params() -> None:
    """The join push carries channel, params, phx_join and the socket timeout."""
    socket, _, _ = make_socket(timeout=1.234)
    channel = socket.channel("topic", {"one": "two"})

    join = channel.join()

    assert join.channel is channel
    assert join.payload == {"one": "two"}
    assert join.event == "phx_join"
    assert join.timeout == 1.234


def test_sets_up_join_push_object_with_closure_params() -> None:
    """Params given as a function are what the join push carries."""
    socket, _, _ = make_socket(timeout=1.234)
    channel = socket.channel("topic", lambda: {"one": "two"})

    join = channel.join()

    assert join.channel is channel
    assert join.payload == {"one": "two"}
    assert join.event == "phx_join"
    assert join.timeout == 1.234


async def test_sets_subprotocols_when_auth_token_is_provided() -> None:
    """An auth token is sent as the bearer subprotocol, base64 without padding."""
    socket, _, network = make_socket(auth_token="1234")

    conn = await connect(socket, network)

    assert conn.options.protocols == ["phoenix", "base64url.bearer.phx.MTIzNA"]


async def test_sets_subprotocols_when_auth_token_is_a_function() -> None:
    """An auth token function is read when connecting, not when constructing."""
    token = "1234"
    socket, _, network = make_socket(auth_token=lambda: token)
    token = "5678"

    conn = await connect(socket, network)

    assert conn.options.protocols == ["phoenix", "base64url.bearer.phx.NTY3OA"]


# -- updating join params --------------------------------------------------------------


def test_can_update_the_join_params() -> None:
    """Params given as a function are re-read on every use, joins included."""
    counter = 0
    socket, _, network = open_socket()
    channel = socket.channel("topic", lambda: {"value": counter})
    assert channel.params == {"value": 0}

    counter += 1
    join = channel.join()

    assert channel.params == {"value": 1}
    assert join.payload == {"value": 1}
    assert network.conn.frames()[-1][4] == {"value": 1}


# -- join ------------------------------------------------------------------------------


def test_sets_state_to_joining() -> None:
    """join() moves the channel to joining."""
    socket, _, _ = make_socket()
    channel = socket.channel("topic", {"one": "two"})

    channel.join()

    assert channel.state == "joining"


def test_sets_joined_once_to_true() -> None:
    """Before join() a push is refused; after it the channel accepts pushes."""
    socket, _, _ = make_socket()
    channel = socket.channel("topic", {"one": "two"})
    with pytest.raises(RuntimeError):
        channel.push("event", {})

    channel.join()

    assert channel.push("event", {}).event == "event"


def test_throws_if_attempting_to_join_multiple_times() -> None:
    """A second join() on the same channel raises RuntimeError."""
    socket, _, _ = make_socket()
    channel = socket.channel("topic", {"one": "two"})
    channel.join()

    with pytest.raises(RuntimeError, match="^tried to join multiple times"):
        channel.join()


def test_triggers_socket_push_with_channel_params() -> None:
    """join() sends one phx_join with the params, whose ref is its join_ref."""
    socket, _, network = open_socket()
    channel = socket.channel("topic", {"one": "two"})

    channel.join()

    assert network.conn.frames() == [["3", "3", "topic", "phx_join", {"one": "two"}]]
    assert channel.join_ref == "3"


def test_can_set_timeout_on_join_push() -> None:
    """join(timeout) sets the join push's timeout."""
    socket, _, _ = make_socket(timeout=TIMEOUT)
    channel = socket.channel("topic", {"one": "two"})

    join = channel.join(2.0)

    assert join.timeout == 2.0


def test_leaves_existing_duplicate_topic_on_new_join() -> None:
    """Joining a topic that another channel has joined closes the older one."""
    socket, _, network = open_socket()
    first = join_ok(socket, network, "topic")

    socket.channel("topic").join()

    assert first.state == "closed"
    assert events(network.conn) == ["phx_join", "phx_leave", "phx_join"]


# -- join: timeout behavior ------------------------------------------------------------


def test_succeeds_before_timeout() -> None:
    """A join answered before its timeout stays joined, with no leave or rejoin."""
    socket, timers, network = open_socket()
    channel = socket.channel("topic", {"one": "two"})
    channel.join()
    assert len(network.conn.sent) == 1

    # t=0.1: the server accepts the join
    timers.advance(0.1)
    network.conn.receive(reply("3", "3", "topic", "ok"))
    assert channel.state == "joined"

    # t=10.1: past the join's deadline, nothing else went out
    timers.advance(TIMEOUT)
    assert len(network.conn.sent) == 1


def test_retries_with_backoff_after_timeout() -> None:
    """A join that times out sends phx_leave and rejoins on the rejoin backoff."""
    socket, timers, network = open_socket()
    channel = socket.channel("topic", {"one": "two"})
    on_timeout = Mock()
    channel.join().receive("timeout", on_timeout)
    assert len(network.conn.sent) == 1

    # t=10: the join times out and a phx_leave goes out
    timers.advance(TIMEOUT)
    assert events(network.conn) == ["phx_join", "phx_leave"]
    assert on_timeout.call_count == 1

    # t=11: rejoin (1 s backoff); t=21: it times out too, with its phx_leave
    timers.advance(TIMEOUT + 1.0)
    assert events(network.conn) == ["phx_join", "phx_leave"] * 2
    assert on_timeout.call_count == 2

    # t=23: rejoin (2 s backoff); t=30: heartbeat; t=31: the server accepts
    timers.advance(10.0)
    network.conn.receive(reply(channel.join_ref, channel.join_ref, "topic", "ok"))
    assert events(network.conn) == ["phx_join", "phx_leave"] * 2 + [
        "phx_join",
        "heartbeat",
    ]
    assert channel.state == "joined"


async def test_with_socket_and_join_delay() -> None:
    """A join made offline times out offline, then rejoins when the socket opens."""
    socket, timers, network = make_socket()
    channel = socket.channel("topic", {"one": "two"})
    channel.join()

    # t=9: still offline, the join waits in the send buffer
    timers.advance(9.0)
    assert channel.state == "joining"

    # t=10: the join times out; its phx_leave is buffered too
    timers.advance(1.0)
    assert channel.state == "errored"

    # the socket connects: the stale join and leave are dropped (phoenix.js
    # 1.8.16; 1.8.12 flushed them first), only the rejoin goes out
    conn = await connect(socket, network)
    assert channel.state == "joining"
    conn.receive(reply(channel.join_ref, channel.join_ref, "topic", "ok"))

    assert channel.state == "joined"
    assert events(conn) == ["phx_join"]


async def test_with_socket_delay_only() -> None:
    """A socket that opens after the join's deadline still ends up joined."""
    socket, timers, network = make_socket()
    channel = socket.channel("topic", {"one": "two"})
    channel.join()

    # t=6: connect() starts; the transport is slow to open
    timers.advance(6.0)
    connecting = asyncio.ensure_future(socket.connect())
    await asyncio.sleep(0)

    # t=10: the join times out while connecting; t=11: the transport opens
    timers.advance(5.0)
    network.conn.open()
    await connecting
    ok = reply(channel.join_ref, channel.join_ref, "topic", "ok")
    network.conn.receive(ok)
    network.conn.receive(ok)

    assert channel.state == "joined"


# -- joinPush --------------------------------------------------------------------------


def receive_ok(t: SimpleNamespace, response: Any) -> None:
    """Half the timeout later, the server accepts the join."""
    t.timers.advance(TIMEOUT / 2)
    t.network.conn.receive(reply("3", "3", "topic", "ok", response))


def receive_timeout(t: SimpleNamespace) -> None:
    """Twice the timeout passes without a reply."""
    t.timers.advance(TIMEOUT * 2)


def receive_error(t: SimpleNamespace, response: Any) -> None:
    """Half the timeout later, the server refuses the join."""
    t.timers.advance(TIMEOUT / 2)
    t.network.conn.receive(reply("3", "3", "topic", "error", response))


# joinPush: receives 'ok'

OK_RESPONSE = {"chan": "reply"}


def test_join_ok_sets_channel_state_to_joined() -> None:
    """An ok reply to the join makes the channel joined."""
    t = joining()
    assert t.channel.state != "joined"

    receive_ok(t, OK_RESPONSE)

    assert t.channel.state == "joined"


def test_triggers_receive_ok_callback_after_ok_response() -> None:
    """An ok hook registered before the reply runs once, with the response."""
    t = joining()
    on_ok = Mock()
    t.join.receive("ok", on_ok)

    receive_ok(t, OK_RESPONSE)

    on_ok.assert_called_once_with(OK_RESPONSE)


def test_triggers_receive_ok_callback_if_ok_response_already_received() -> None:
    """An ok hook registered after the reply runs at once, once."""
    t = joining()
    receive_ok(t, OK_RESPONSE)
    on_ok = Mock()

    t.join.receive("ok", on_ok)

    on_ok.assert_called_once_with(OK_RESPONSE)


def test_does_not_trigger_other_receive_callbacks_after_ok_response() -> None:
    """After an ok reply no error or timeout hook runs, even past the deadline."""
    t = joining()
    on_error, on_timeout = Mock(), Mock()
    t.join.receive("error", on_error).receive("timeout", on_timeout)

    receive_ok(t, OK_RESPONSE)
    t.timers.advance(TIMEOUT * 2)

    on_error.assert_not_called()
    on_timeout.assert_not_called()


def test_join_ok_clears_timeout_timer() -> None:
    """After an ok reply the join's deadline passes without a timeout or a phx_leave."""
    t = joining()

    # t=5: ok; t=15: the old deadline (t=10) has passed
    receive_ok(t, OK_RESPONSE)
    t.timers.advance(TIMEOUT)

    assert t.join.status == "ok"
    assert events(t.network.conn) == ["phx_join"]


def test_join_ok_sets_received_resp() -> None:
    """The join push has no result before the reply, and ok with its response after."""
    t = joining()
    assert (t.join.status, t.join.response) == (None, None)

    receive_ok(t, OK_RESPONSE)

    assert (t.join.status, t.join.response) == ("ok", OK_RESPONSE)


def test_join_ok_removes_channel_bindings() -> None:
    """The join is pending (bound to its ref) until the reply, then no longer."""
    t = joining()
    assert t.socket.pending_pushes() == [t.join]

    receive_ok(t, OK_RESPONSE)

    assert t.socket.pending_pushes() == []


def test_resets_channel_rejoin_timer() -> None:
    """A join ok resets the rejoin backoff: the next error rejoins after 1 s again."""
    t = joining()
    # t=5: refused; t=6: rejoin after 1 s (backoff try 1), accepted at once
    receive_error(t, {})
    t.timers.advance(1.0)
    assert t.channel.join_ref == "4"
    t.network.conn.receive(reply("4", "4", "topic", "ok"))

    # t=6: the channel crashes; with a reset backoff the rejoin comes 1 s later
    t.network.conn.receive(server_event(t.channel, "phx_error"))
    t.timers.advance(0.99)
    assert len(joins(t.network)) == 2
    t.timers.advance(0.01)
    assert len(joins(t.network)) == 3


def test_sends_and_empties_channels_buffered_push_events() -> None:
    """Pushes buffered while joining are sent by the time user ok hooks run."""
    t = joining()
    t.channel.push("event", {"foo": "bar"})
    seen_in_hook: list[list[str]] = []
    t.join.receive("ok", lambda: seen_in_hook.append(events(t.network.conn)))

    receive_ok(t, OK_RESPONSE)

    assert seen_in_hook == [["phx_join", "event"]]


# joinPush: receives 'timeout'


def test_join_timeout_sets_channel_state_to_errored() -> None:
    """Inside the user's timeout hook the channel is already errored."""
    t = joining()
    states: list[str] = []
    t.join.receive("timeout", lambda: states.append(t.channel.state))

    receive_timeout(t)

    assert states == ["errored"]


def test_triggers_receive_timeout_callback_after_ok_response() -> None:
    """(misnamed in phoenix.js) The timeout hook runs once when the join times out."""
    t = joining()
    on_timeout = Mock()
    t.join.receive("timeout", on_timeout)

    # t=10: timeout; t=11: rejoin, still pending at t=20
    receive_timeout(t)

    on_timeout.assert_called_once_with({})


def test_does_not_trigger_other_receive_callbacks_after_timeout_response() -> None:
    """A late ok reply for a join that timed out runs neither ok nor error hooks."""
    t = joining(rejoin_after=lambda tries: 1000.0)
    on_ok, on_error = Mock(), Mock()
    t.join.receive("ok", on_ok).receive("error", on_error)

    # t=10: timeout; t=25: the server's ok for the timed-out join arrives
    receive_timeout(t)
    receive_ok(t, OK_RESPONSE)

    on_ok.assert_not_called()
    on_error.assert_not_called()
    assert t.channel.state == "errored"


def test_schedules_rejoin_timer_timeout() -> None:
    """After a join timeout the channel rejoins after the first backoff step, 1 s."""
    t = joining()

    # t=10: timeout
    t.timers.advance(TIMEOUT + 0.99)
    assert len(joins(t.network)) == 1

    # t=11: rejoin with a new join ref
    t.timers.advance(0.01)
    assert [f[0] for f in joins(t.network)] == ["3", "5"]


# joinPush: receives 'error'

ERROR_RESPONSE = {"chan": "fail"}


def test_triggers_receive_error_callback_after_error_response() -> None:
    """An error hook runs once, even when the error reply is repeated."""
    t = joining()
    assert t.channel.state == "joining"
    on_error = Mock()
    t.join.receive("error", on_error)

    receive_error(t, ERROR_RESPONSE)
    t.network.conn.receive(reply("3", "3", "topic", "error", {}))

    on_error.assert_called_once_with(ERROR_RESPONSE)


def test_triggers_receive_error_callback_if_error_response_already_received() -> None:
    """An error hook registered after the error reply runs at once, once."""
    t = joining()
    receive_error(t, ERROR_RESPONSE)
    on_error = Mock()

    t.join.receive("error", on_error)

    on_error.assert_called_once_with(ERROR_RESPONSE)


def test_does_not_trigger_other_receive_callbacks_after_error_response() -> None:
    """An error hook that leaves runs once; ok and timeout hooks never run."""
    t = joining()
    on_ok, on_error, on_timeout = Mock(), Mock(), Mock()

    def error_then_leave() -> None:
        on_error()
        t.channel.leave()

    t.join.receive("ok", on_ok).receive("error", error_then_leave)
    t.join.receive("timeout", on_timeout)

    receive_error(t, ERROR_RESPONSE)
    t.timers.advance(TIMEOUT * 2)

    assert on_error.call_count == 1
    on_ok.assert_not_called()
    on_timeout.assert_not_called()


def test_join_error_clears_timeout_timer() -> None:
    """After an error reply the join's deadline passes without a timeout."""
    t = joining(rejoin_after=lambda tries: 1000.0)
    on_timeout = Mock()
    t.join.receive("timeout", on_timeout)

    # t=5: refused; t=15: the old deadline (t=10) has passed
    receive_error(t, ERROR_RESPONSE)
    t.timers.advance(TIMEOUT)

    on_timeout.assert_not_called()
    assert t.join.status == "error"


def test_sets_received_resp_with_error_trigger_after_binding() -> None:
    """An error hook registered before the reply gets the error response."""
    t = joining()
    responses: list[Any] = []
    t.join.receive("error", responses.append)

    receive_error(t, ERROR_RESPONSE)

    assert responses == [ERROR_RESPONSE]
    assert (t.join.status, t.join.response) == ("error", ERROR_RESPONSE)


def test_sets_received_resp_with_error_trigger_before_binding() -> None:
    """An error hook registered after the reply gets the error response too."""
    t = joining()
    receive_error(t, ERROR_RESPONSE)
    responses: list[Any] = []

    t.join.receive("error", responses.append)

    assert responses == [ERROR_RESPONSE]


def test_does_not_set_channel_state_to_joined() -> None:
    """A refused join leaves the channel errored."""
    t = joining()

    receive_error(t, ERROR_RESPONSE)

    assert t.channel.state == "errored"


def test_does_not_trigger_channels_buffered_push_events() -> None:
    """A refused join does not send the pushes buffered meanwhile."""
    t = joining()
    t.channel.push("event", {"foo": "bar"})

    receive_error(t, ERROR_RESPONSE)

    assert events(t.network.conn) == ["phx_join"]


# -- onError ---------------------------------------------------------------------------


def test_sets_state_to_errored() -> None:
    """A phx_error from the server makes a joined channel errored."""
    t = joined()
    assert t.channel.state != "errored"

    t.network.conn.receive(server_event(t.channel, "phx_error"))

    assert t.channel.state == "errored"


def test_does_not_trigger_redundant_errors_during_backoff() -> None:
    """Errors for the previous join do not add rejoins to the backoff schedule."""
    t = joined()

    # t=0: the channel crashes; t=1: one rejoin
    t.network.conn.receive(server_event(t.channel, "phx_error"))
    t.timers.advance(1.0)
    assert len(joins(t.network)) == 2

    # errors tagged with the old join ref "3" are dropped
    t.network.conn.receive(reply("3", "3", "topic", "error", {}))
    t.network.conn.receive(["3", "3", "topic", "phx_error", {}])

    # t=10.99: still the one rejoin (it would time out at t=11)
    t.timers.advance(9.99)
    assert len(joins(t.network)) == 2


def test_does_not_rejoin_if_channel_leaving() -> None:
    """A transport error leaves a leaving channel alone (state forced, as in JS)."""
    t = joined()
    t.channel._state = ChannelState.LEAVING

    t.network.conn.fail(OSError("boom"))

    t.timers.advance(1.0)
    assert len(joins(t.network)) == 1
    t.timers.advance(2.0)
    assert len(joins(t.network)) == 1
    assert t.channel.state == "leaving"


def test_does_not_rejoin_if_channel_closed() -> None:
    """A transport error leaves a closed channel alone (state forced, as in JS)."""
    t = joined()
    t.channel._state = ChannelState.CLOSED

    t.network.conn.fail(OSError("boom"))

    t.timers.advance(1.0)
    assert len(joins(t.network)) == 1
    t.timers.advance(2.0)
    assert len(joins(t.network)) == 1
    assert t.channel.state == "closed"


def test_triggers_additional_callbacks_after_join() -> None:
    """A user on_error callback gets the phx_error payload once."""
    t = joined()
    on_error = Mock()
    t.channel.on_error(on_error)
    on_error.assert_not_called()

    t.network.conn.receive(
        server_event(t.channel, "phx_error", {"reason": "channel_crash"})
    )

    on_error.assert_called_once()
    assert on_error.call_args.args[0] == {"reason": "channel_crash"}


async def test_phx_error_while_joining_ends_the_join_attempt_with_error() -> None:
    """Deliberate difference (2): a phx_error while joining ends the join with "error"
    and the phx_error payload (phoenix.js silently resets the join push)."""
    t = joining()
    on_error = Mock()
    t.join.receive("error", on_error)
    waiting = asyncio.ensure_future(wait_for(t.join))
    await asyncio.sleep(0)  # the awaiter is registered

    t.network.conn.receive(
        ["3", "3", "topic", "phx_error", {"reason": "channel_crash"}]
    )

    on_error.assert_called_once_with({"reason": "channel_crash"})
    with pytest.raises(JoinError) as caught:
        await waiting
    assert caught.value.response == {"reason": "channel_crash"}
    assert t.channel.state == "errored"


def test_phx_error_while_joining_rejoins_once_after_backoff() -> None:
    """Deliberate difference (2): the ended join does not run the internal join-error
    handling, so the phx_error schedules the only rejoin, 1 s later."""
    t = joining()

    t.network.conn.receive(["3", "3", "topic", "phx_error", {}])

    # t=0.99: nothing yet; t=1: exactly one rejoin
    t.timers.advance(0.99)
    assert len(joins(t.network)) == 1
    t.timers.advance(0.01)
    assert len(joins(t.network)) == 2
    t.timers.advance(5.0)
    assert len(joins(t.network)) == 2


# -- onClose ---------------------------------------------------------------------------


def test_sets_state_to_closed() -> None:
    """A phx_close from the server closes a joining channel."""
    t = joining()
    assert t.channel.state != "closed"

    t.network.conn.receive(server_event(t.channel, "phx_close"))

    assert t.channel.state == "closed"


def test_does_not_rejoin() -> None:
    """A channel closed by the server never sends another phx_join."""
    t = joining()

    t.network.conn.receive(server_event(t.channel, "phx_close"))

    t.timers.advance(1.0)
    assert len(joins(t.network)) == 1
    t.timers.advance(2.0)
    assert len(joins(t.network)) == 1


def test_triggers_additional_callbacks() -> None:
    """A user on_close callback runs once, with the phx_close payload."""
    t = joining()
    on_close = Mock()
    t.channel.on_close(on_close)
    on_close.assert_not_called()

    t.network.conn.receive(server_event(t.channel, "phx_close"))

    on_close.assert_called_once()
    assert on_close.call_args.args[0] == {}


def test_removes_channel_from_socket() -> None:
    """A channel closed by the server is removed from the socket."""
    t = joining()
    assert channels_of(t.socket) == [t.channel]

    t.network.conn.receive(server_event(t.channel, "phx_close"))

    assert channels_of(t.socket) == []


# -- onMessage: phoenix.js's overridable channel.onMessage has no Python twin. ---------

# -- canPush ---------------------------------------------------------------------------


def _connected_joined() -> tuple[Any, Any]:
    socket, _, network = open_socket()
    return socket, join_ok(socket, network)


def _closing_joined() -> tuple[Any, Any]:
    socket, _, network = open_socket()
    channel = join_ok(socket, network)
    network.conn.auto_close = False
    socket._teardown(1000, "", lambda: None)  # the close handshake is in progress
    return socket, channel


def _connected_joining() -> tuple[Any, Any]:
    socket, _, _ = open_socket()
    channel = socket.channel("topic")
    channel.join()
    return socket, channel


def _disconnected_joining() -> tuple[Any, Any]:
    socket, _, _ = make_socket()
    channel = socket.channel("topic")
    channel.join()
    return socket, channel


def _connected_errored() -> tuple[Any, Any]:
    socket, _, network = open_socket()
    channel = join_ok(socket, network)
    network.conn.receive(server_event(channel, "phx_error"))
    return socket, channel


def _connected_closed() -> tuple[Any, Any]:
    socket, _, network = open_socket()
    channel = join_ok(socket, network)
    channel.leave()
    return socket, channel


@pytest.mark.parametrize(
    ("setup", "socket_state", "channel_state", "expected"),
    [
        (_connected_joined, "open", "joined", True),
        (_closing_joined, "closing", "joined", False),
        (_connected_joining, "open", "joining", False),
        (_disconnected_joining, "closed", "joining", False),
        (_connected_errored, "open", "errored", False),
        (_connected_closed, "open", "closed", False),
    ],
)
def test_can_push(
    setup: Any, socket_state: str, channel_state: str, expected: bool
) -> None:
    """can_push() is true only when the socket is open and the channel joined."""
    socket, channel = setup()

    assert (socket.connection_state, channel.state) == (socket_state, channel_state)
    assert channel.can_push() is expected


# -- on --------------------------------------------------------------------------------


def test_sets_up_callback_for_event() -> None:
    """A callback bound with on() runs for its event, and not before it is bound."""
    socket, _, network = open_socket()
    channel = socket.channel("topic", {"one": "two"})
    spy = Mock()
    network.conn.receive([None, None, "topic", "event", {}])
    spy.assert_not_called()

    channel.on("event", spy)
    network.conn.receive([None, None, "topic", "event", {}])

    spy.assert_called_once()


def test_other_event_callbacks_are_ignored() -> None:
    """A callback is not called for other events."""
    socket, _, network = open_socket()
    channel = socket.channel("topic", {"one": "two"})
    ignored = Mock()
    channel.on("other", ignored)

    network.conn.receive([None, None, "topic", "event", {}])

    ignored.assert_not_called()


def test_generates_unique_refs_for_callbacks() -> None:
    """Consecutive on() calls return consecutive refs."""
    socket, _, _ = make_socket()
    channel = socket.channel("topic", {"one": "two"})

    ref1 = channel.on("event1", lambda: None)
    ref2 = channel.on("event2", lambda: None)

    assert ref1 + 1 == ref2


def test_calls_all_callbacks_for_event_if_they_modified_during_event_processing() -> (
    None
):
    """A callback that unbinds itself does not stop the next one in that dispatch."""
    socket, _, network = open_socket()
    channel = socket.channel("topic", {"one": "two"})
    spy = Mock()
    ref = channel.on("event", lambda: channel.off("event", ref))
    channel.on("event", spy)

    network.conn.receive([None, None, "topic", "event", {}])

    spy.assert_called_once()


# -- off -------------------------------------------------------------------------------


def test_removes_all_callbacks_for_event() -> None:
    """off(event) removes every callback of that event and no other."""
    socket, _, network = open_socket()
    channel = socket.channel("topic", {"one": "two"})
    spy1, spy2, spy3 = Mock(), Mock(), Mock()
    channel.on("event", spy1)
    channel.on("event", spy2)
    channel.on("other", spy3)

    channel.off("event")
    network.conn.receive([None, None, "topic", "event", {}])
    network.conn.receive([None, None, "topic", "other", {}])

    spy1.assert_not_called()
    spy2.assert_not_called()
    spy3.assert_called_once()


def test_removes_callback_by_its_ref() -> None:
    """off(event, ref) removes only that callback."""
    socket, _, network = open_socket()
    channel = socket.channel("topic", {"one": "two"})
    spy1, spy2 = Mock(), Mock()
    ref1 = channel.on("event", spy1)
    channel.on("event", spy2)

    channel.off("event", ref1)
    network.conn.receive([None, None, "topic", "event", {}])

    spy1.assert_not_called()
    spy2.assert_called_once()


# -- leave -----------------------------------------------------------------------------


def test_unsubscribes_from_server_events() -> None:
    """leave() sends phx_leave with an empty payload and the current join_ref."""
    t = joined()
    join_ref = t.channel.join_ref

    t.channel.leave()

    assert t.network.conn.frames()[-1] == [join_ref, "4", "topic", "phx_leave", {}]


def test_closes_channel_on_ok_from_server() -> None:
    """A left channel is removed from the socket; other channels stay."""
    t = joined()
    another = t.socket.channel("another", {"three": "four"})
    assert len(channels_of(t.socket)) == 2

    t.channel.leave()

    assert channels_of(t.socket) == [another]


def test_sets_state_to_closed_on_ok_event() -> None:
    """leave() closes the channel locally at once, without waiting for the server."""
    t = joined()
    assert t.channel.state != "closed"

    leave = t.channel.leave()

    assert t.channel.state == "closed"
    assert (leave.status, leave.response) == ("ok", {})


def test_leave_calls_on_close_with_leave() -> None:
    """on_close callbacks get "leave" when the channel is left (PROTOCOL §4.5)."""
    t = joined()
    on_close = Mock()
    t.channel.on_close(on_close)

    t.channel.leave()

    on_close.assert_called_once()
    assert on_close.call_args.args[0] == "leave"


def test_leave_while_joining_ends_the_join_with_timeout_at_its_deadline() -> None:
    """Deliberate difference (3): leave() keeps a pending join's timer, so that join
    attempt ends with "timeout" at its deadline (phoenix.js cancels it)."""
    t = joining()
    on_timeout = Mock()
    t.join.receive("timeout", on_timeout)

    # t=0: leave while joining; t=9.99: the join is still pending
    t.channel.leave()
    t.timers.advance(TIMEOUT - 0.01)
    on_timeout.assert_not_called()

    # t=10: the join attempt ends, and nothing rejoins
    t.timers.advance(0.01)
    on_timeout.assert_called_once_with({})
    t.timers.advance(TIMEOUT)
    assert len(joins(t.network)) == 1
    assert t.socket.pending_pushes() == []


# -- messages routed by join_ref (PROTOCOL §4.8) ---------------------------------------


def test_drops_messages_of_an_outdated_join() -> None:
    """Messages tagged with another join's ref are dropped; untagged ones pass."""
    t = joined()
    received = Mock()
    t.channel.on("event", received)

    t.network.conn.receive(["1", None, "topic", "event", {"stale": True}])
    t.network.conn.receive([None, None, "topic", "event", {"broadcast": True}])
    t.network.conn.receive(["3", None, "topic", "event", {"current": True}])

    assert [c.args[0] for c in received.call_args_list] == [
        {"broadcast": True},
        {"current": True},
    ]


# -- scenario timelines (PROTOCOL §11) -------------------------------------------------


def test_join_timeout_sends_phx_leave_with_the_timed_out_join_ref() -> None:
    """Scenario A: a timed-out join is left with its own join_ref, then rejoined."""
    t = joining()

    # t=10: the join times out; t=11: rejoin
    t.timers.advance(TIMEOUT + 1.0)

    assert t.network.conn.frames() == [
        ["3", "3", "topic", "phx_join", {"one": "two"}],
        ["3", "4", "topic", "phx_leave", {}],
        ["5", "5", "topic", "phx_join", {"one": "two"}],
    ]


def test_one_backoff_counter_serves_every_rejoin_cause() -> None:
    """Scenario B: after a phx_error rejoin, refused rejoins back off 2, 5, 10, 10,
    10 s, and the user's join error hook runs for each refusal."""
    t = joining()
    on_join_error = Mock()
    t.join.receive("error", on_join_error)
    t.network.conn.receive(reply("3", "3", "topic", "ok"))

    # t=0: the channel crashes; t=1: rejoin
    t.network.conn.receive(server_event(t.channel, "phx_error", {"reason": "crash"}))
    t.timers.advance(1.0)
    for delay in (2.0, 5.0, 10.0, 10.0, 10.0):
        # the server refuses the rejoin; the next one comes ``delay`` later
        ref = t.channel.join_ref
        t.network.conn.receive(reply(ref, ref, "topic", "error", {}))
        count = len(joins(t.network))
        t.timers.advance(delay - 0.01)
        assert len(joins(t.network)) == count
        t.timers.advance(0.01)
        assert len(joins(t.network)) == count + 1

    assert on_join_error.call_count == 5
