"""Port of phoenix.js ``assets/test/socket_test.js`` and ``socket_http_test.js``
(PROTOCOL §5, §12.2, §12.3).

phoenix.js drives ``socket.onConnOpen()`` etc. on a mock WebSocket; here the
in-memory transport plays the server (``open()``, ``receive()``,
``server_close()``, ``fail()``) and the fake clock stands in for jest's. There
is no browser page: endpoints are absolute URLs (deliberate difference 5).
Times are seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from unittest.mock import Mock

import pytest

from phoenix_channels import ConnectError, PhoenixError, Socket
from phoenix_channels.message import Message
from phoenix_channels.socket import CloseEvent
from tests.fakes import (
    FakeTimers,
    LongPollMemoryTransport,
    Network,
    channels_of,
    connect,
    events,
    join_ok,
    make_socket,
    open_socket,
    reply,
)

ENDPOINT = "ws://example.com/socket"


def start_connecting(**options: Any) -> tuple[Socket, Any, Network]:
    """A socket whose first transport exists but has not opened yet."""
    socket, timers, network = make_socket(**options)
    socket._transport_connect()
    return socket, timers, network


# -- constructor -----------------------------------------------------------------------


def test_sets_defaults() -> None:
    """A new socket is closed, empty, and has the phoenix.js defaults in seconds."""
    socket = Socket(ENDPOINT)

    assert socket.connection_state == "closed"
    assert channels_of(socket) == []
    assert socket._send_buffer == []
    assert socket.pending_pushes() == []
    assert socket.endpoint_url() == "ws://example.com/socket/websocket?vsn=2.0.0"
    assert socket.transport == "websocket"
    assert socket.timeout == 10.0
    assert socket.heartbeat_interval == 30.0
    assert socket.vsn == "2.0.0"
    assert callable(socket.reconnect_after)
    assert socket.make_ref() == "1"


@pytest.mark.parametrize(
    ("tries", "seconds"),
    [(1, 0.01), (2, 0.05), (3, 0.1), (4, 0.15), (5, 0.2), (6, 0.25), (7, 0.5),
     (8, 1.0), (9, 2.0), (10, 5.0), (50, 5.0)],
)  # fmt: skip
def test_sets_defaults_reconnect_schedule(tries: int, seconds: float) -> None:
    """The default reconnect backoff is phoenix.js's, in seconds."""
    assert Socket(ENDPOINT).reconnect_after(tries) == seconds


@pytest.mark.parametrize(
    ("tries", "seconds"), [(1, 1.0), (2, 2.0), (3, 5.0), (4, 10.0), (20, 10.0)]
)
def test_sets_defaults_rejoin_schedule(tries: int, seconds: float) -> None:
    """The default rejoin backoff is phoenix.js's, in seconds."""
    assert Socket(ENDPOINT).rejoin_after(tries) == seconds


def test_supports_closure_or_literal_params() -> None:
    """Params may be a mapping or a function, which is re-read at each use."""
    literal = Socket(ENDPOINT, params={"one": "two"})
    counter = iter(range(10))
    closure = Socket(ENDPOINT, params=lambda: {"three": next(counter)})

    assert literal.endpoint_url().endswith("/websocket?one=two&vsn=2.0.0")
    assert closure.endpoint_url().endswith("/websocket?three=0&vsn=2.0.0")
    assert closure.endpoint_url().endswith("/websocket?three=1&vsn=2.0.0")


async def test_overrides_some_defaults_with_options(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Options for timeouts, transport, logger, reconnect_after and params are used."""
    network = Network()
    logger = logging.getLogger("custom.logger")
    reconnect = Mock(return_value=1.0)
    socket = Socket(
        ENDPOINT,
        timeout=40.0,
        heartbeat_interval=60.0,
        transport=network,
        logger=logger,
        reconnect_after=reconnect,
        params={"one": "two"},
    )
    caplog.set_level(logging.INFO, logger="custom.logger")

    await connect(socket, network)

    assert (socket.timeout, socket.heartbeat_interval) == (40.0, 60.0)
    assert socket.reconnect_after is reconnect
    assert network.conn.url == "ws://example.com/socket/websocket?one=two&vsn=2.0.0"
    assert any(r.name == "custom.logger" for r in caplog.records)


def fallback_socket(monkeypatch: pytest.MonkeyPatch) -> tuple[Socket, Network, Network]:
    """A websocket socket with longpoll_fallback_after=0.02, on fake transports."""
    websockets, longpolls = Network(), Network(LongPollMemoryTransport)
    monkeypatch.setattr(
        "phoenix_channels.socket._transport_factory", lambda name: longpolls
    )
    socket = Socket(ENDPOINT, longpoll_fallback_after=0.02, timers=FakeTimers())
    socket._transport_factory = websockets
    return socket, websockets, longpolls


async def test_falls_back_to_longpoll_when_set_after_primary_transport_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With longpoll_fallback_after, a websocket failing before it opens is replaced
    by long-poll, and connect() returns once that opens."""
    socket, websockets, longpolls = fallback_socket(monkeypatch)
    connecting = asyncio.ensure_future(socket.connect())
    await asyncio.sleep(0)

    websockets.conn.fail(ConnectionRefusedError("no websocket here"))
    assert socket.transport == "longpoll"
    longpolls.conn.open()
    await connecting

    assert len(websockets.transports) == len(longpolls.transports) == 1
    assert socket.is_connected()


def test_defaults_to_websocket_transport_if_available() -> None:
    """Without a transport option the socket uses the websocket transport."""
    from phoenix_channels.transports.websocket import WebSocketTransport

    socket = Socket(ENDPOINT)

    assert socket.transport == "websocket"
    assert socket._transport_factory is WebSocketTransport


# -- protocol --------------------------------------------------------------------------


def test_returns_wss_when_location_protocol_is_https() -> None:
    """An https endpoint connects with wss (there is no page location to read)."""
    assert Socket("https://example.com/socket").endpoint_url().startswith("wss://")


# -- endpointURL -----------------------------------------------------------------------


def test_returns_endpoint_for_given_full_url() -> None:
    """A full URL gets /websocket and the vsn param."""
    socket = Socket("wss://example.org/chat")

    assert socket.endpoint_url() == "wss://example.org/chat/websocket?vsn=2.0.0"


def test_returns_endpoint_for_given_protocol_relative_url() -> None:
    """Deliberate difference (5): a protocol-relative endpoint is refused."""
    with pytest.raises(ValueError, match="absolute"):
        Socket("//example.org/chat")


def test_returns_endpoint_for_given_path_on_https_host() -> None:
    """The https URL of the host stands in for the page location phoenix.js uses."""
    socket = Socket("https://example.com/socket")

    assert socket.endpoint_url() == "wss://example.com/socket/websocket?vsn=2.0.0"


def test_refuses_a_bare_path_endpoint() -> None:
    """Deliberate difference (5): an endpoint without scheme and host is refused."""
    with pytest.raises(ValueError, match="absolute"):
        Socket("/socket")


def test_drops_a_trailing_slash_of_the_endpoint() -> None:
    """Deliberate difference (5): a trailing / does not give //websocket."""
    assert Socket("ws://example.com/socket/").endpoint_url() == (
        "ws://example.com/socket/websocket?vsn=2.0.0"
    )


def test_does_not_double_websocket_in_the_endpoint() -> None:
    """Deliberate difference (5): an endpoint ending in /websocket is kept as is."""
    assert Socket("ws://example.com/socket/websocket").endpoint_url() == (
        "ws://example.com/socket/websocket?vsn=2.0.0"
    )


def test_serializes_nested_params_before_vsn() -> None:
    """Nested params become key[sub]=v, percent-encoded, and vsn comes last (§5.3)."""
    socket = Socket(ENDPOINT, params={"a": {"b": 1}, "l": ["x", "y"], "s": "a b&c"})

    assert socket.endpoint_url() == (
        "ws://example.com/socket/websocket"
        "?a%5Bb%5D=1&l%5B0%5D=x&l%5B1%5D=y&s=a%20b%26c&vsn=2.0.0"
    )


# -- socket_http_test.js ---------------------------------------------------------------


def test_returns_ws_when_location_protocol_is_http() -> None:
    """An http endpoint connects with ws."""
    assert Socket("http://example.com/socket").endpoint_url().startswith("ws://")


def test_returns_endpoint_for_given_path_on_http_host() -> None:
    """The http URL of the host stands in for the page location phoenix.js uses."""
    socket = Socket("http://example.com/socket")

    assert socket.endpoint_url() == "ws://example.com/socket/websocket?vsn=2.0.0"


# -- connect with WebSocket ------------------------------------------------------------


async def check_connection_callbacks(network: Network) -> None:
    """Open, error, message and close of ``network``'s transport reach the socket's
    callbacks."""
    socket, _, network = make_socket(network=network)
    opens, closes, errors, messages = Mock(), Mock(), Mock(), Mock()
    socket.on_open(opens)
    socket.on_close(closes)
    socket.on_error(errors)
    socket.on_message(lambda message: messages(message.payload))
    conn = await connect(socket, network)
    assert opens.call_count == 1

    error = OSError("error")
    conn.fail(error)
    assert errors.call_args.args[0] is error

    conn.receive([None, None, "topic", "event", "payload"])
    messages.assert_called_once_with("payload")

    conn.server_close(1006)
    assert closes.call_count == 1


async def test_establishes_websocket_connection_with_endpoint() -> None:
    """connect() opens one transport on endpoint_url()."""
    socket, _, network = make_socket()

    await connect(socket, network)

    assert len(network.transports) == 1
    assert network.conn.url == socket.endpoint_url()
    assert socket.connection_state == "open"


async def test_sets_callbacks_for_connection() -> None:
    """Transport open, error, message and close reach the socket's callbacks."""
    await check_connection_callbacks(Network())


async def test_is_idempotent() -> None:
    """connect() while connecting or connected makes no second transport."""
    socket, _, network = make_socket()
    first = asyncio.ensure_future(socket.connect())
    second = asyncio.ensure_future(socket.connect())
    await asyncio.sleep(0)
    network.conn.open()
    await asyncio.gather(first, second)

    await socket.connect()

    assert len(network.transports) == 1


async def test_uses_updated_auth_token_function_value_when_reconnecting() -> None:
    """The auth token function is read again for each reconnect."""
    token = "old-token"
    socket, timers, network = make_socket(auth_token=lambda: token)
    await connect(socket, network)

    token = "new-token"
    # t=0: the connection drops; t=0.01: reconnect
    network.conn.server_close(1006)
    timers.advance(0.01)

    assert len(network.transports) == 2
    assert [c.options.protocols for c in network.transports] == [
        ["phoenix", "base64url.bearer.phx.b2xkLXRva2Vu"],
        ["phoenix", "base64url.bearer.phx.bmV3LXRva2Vu"],
    ]


# -- connect with long poll ---------------------------------------------------------


def test_establishes_long_poll_connection_with_endpoint() -> None:
    """transport="longpoll" polls <endpoint>/longpoll with the vsn, 20 s per poll."""
    from phoenix_channels.transports import longpoll

    socket = Socket("https://example.com/socket", transport="longpoll")

    assert socket.transport == "longpoll"
    assert socket._transport_factory is longpoll.LongPollTransport
    assert longpoll.poll_endpoint(socket.endpoint_url()) == (
        "https://example.com/socket/longpoll?vsn=2.0.0"
    )
    assert longpoll.DEFAULT_POLL_TIMEOUT == 20.0


async def test_long_poll_sets_callbacks_for_connection() -> None:
    """Open, error, message and close of a long-poll transport reach the callbacks."""
    await check_connection_callbacks(Network(LongPollMemoryTransport))


async def test_long_poll_is_idempotent() -> None:
    """connect() on a connected long-poll socket makes no second transport."""
    socket, _, network = make_socket(network=Network(LongPollMemoryTransport))
    await connect(socket, network)

    await socket.connect()

    assert len(network.transports) == 1


async def test_long_poll_sends_no_heartbeat() -> None:
    """A long-poll connection has no client heartbeat (PROTOCOL §5.7)."""
    socket, timers, network = make_socket(network=Network(LongPollMemoryTransport))
    conn = await connect(socket, network)

    timers.advance(90.0)

    assert conn.sent == []
    assert socket.is_connected()


# -- disconnect ------------------------------------------------------------------------


async def test_removes_existing_connection() -> None:
    """After disconnect() the socket is closed and holds no connection."""
    socket, _, network = open_socket()

    await socket.disconnect()

    assert socket.connection_state == "closed"
    assert socket._link is None
    assert network.conn.closed


async def test_calls_callback() -> None:
    """disconnect() returns once, when the transport has reported its close."""
    socket, _, network = open_socket()
    network.conn.auto_close = False
    disconnecting = asyncio.ensure_future(socket.disconnect())
    await asyncio.sleep(0)
    assert not disconnecting.done()

    network.conn.server_close(1000)
    await asyncio.sleep(0)

    assert disconnecting.done()
    assert await disconnecting is None


async def test_calls_connection_close_callback() -> None:
    """disconnect(code, reason) closes the transport with that code and reason."""
    socket, _, network = open_socket()

    await socket.disconnect(1000, "reason")

    assert network.conn.close_calls == [(1000, "reason")]


async def test_does_not_throw_when_no_connection() -> None:
    """disconnect() on a socket that never connected just returns."""
    socket, _, network = make_socket()

    await socket.disconnect()

    assert network.transports == []


async def test_properly_tears_down_old_connection_when_immediately_reconnecting() -> (
    None
):
    """connect() during a slow disconnect makes a new connection that the old close
    does not disturb."""
    socket, timers, network = open_socket()
    old = network.conn
    old.auto_close = False
    disconnecting = asyncio.ensure_future(socket.disconnect())
    await asyncio.sleep(0)

    # the old connection is still closing when connect() is called
    new = await connect(socket, network)

    # t=1: the old connection finally reports its close
    timers.advance(1.0)
    old.server_close(1000)
    await disconnecting
    timers.advance(10.0)

    assert new is not old
    assert network.transports == [old, new]
    assert socket.connection_state == "open"
    assert socket._link.conn is new
    assert not new.closed


async def test_properly_tears_down_old_connection_when_disconnecting_twice() -> None:
    """Two overlapping disconnect() calls both return and leave no connection."""
    socket, timers, network = open_socket()
    network.conn.auto_close = False
    first = asyncio.ensure_future(socket.disconnect())
    await asyncio.sleep(0)

    # t=1: a second disconnect while the first waits; t=10: the close never
    # came, the teardown stopped waiting
    timers.advance(1.0)
    second = asyncio.ensure_future(socket.disconnect())
    await asyncio.sleep(0)
    timers.advance(9.0)
    await asyncio.gather(first, second)

    assert socket.connection_state == "closed"
    assert socket._link is None
    assert len(network.transports) == 1


async def test_rejoins_channels_when_connecting_before_the_old_connection_closed() -> (
    None
):
    """A channel joined before disconnect() rejoins over the next connection even
    when connect() comes before the old connection has closed."""
    socket, timers, network = open_socket()
    channel = join_ok(socket, network)
    old = network.conn
    old.auto_close = False
    disconnecting = asyncio.ensure_future(socket.disconnect())
    await asyncio.sleep(0)
    new = await connect(socket, network)

    # t=0: the old connection reports its close; t=5: backoffs have passed
    old.server_close(1000)
    await disconnecting
    timers.advance(5.0)

    assert [f[3] for f in new.frames() if f[2] == "topic"] == ["phx_join"]
    assert channel.state == "joining"


async def test_ignores_the_close_event_of_a_connection_that_was_replaced() -> None:
    """A late close of a replaced connection only finishes its teardown: no close
    callback, no reconnect, the new connection stays (phoenix.js 1.8.16)."""
    socket, timers, network = open_socket()
    old = network.conn
    old.auto_close = False
    disconnecting = asyncio.ensure_future(socket.disconnect())
    await asyncio.sleep(0)
    new = await connect(socket, network)
    closes = Mock()
    socket.on_close(closes)

    old.server_close(1006)
    await disconnecting
    timers.advance(10.0)

    closes.assert_not_called()
    assert network.transports == [old, new]
    assert socket.is_connected()


async def test_disconnect_then_connect_rejoins_joined_channels() -> None:
    """disconnect() errors joined channels; the next connect() rejoins them (§5.5)."""
    socket, _, network = open_socket()
    channel = join_ok(socket, network)

    await socket.disconnect()
    assert channel.state == "errored"
    new = await connect(socket, network)

    assert [f[3] for f in new.frames() if f[2] == "topic"] == ["phx_join"]
    assert channel.state == "joining"


# -- connectionState -------------------------------------------------------------------


def _never_connected() -> Socket:
    return make_socket()[0]


def _connecting() -> Socket:
    return start_connecting()[0]


def _open() -> Socket:
    return open_socket()[0]


def _closing() -> Socket:
    socket, _, network = open_socket()
    network.conn.auto_close = False
    socket._teardown(1000, "", lambda: None)
    return socket


def _closed() -> Socket:
    socket, _, network = open_socket()
    network.conn.server_close(1000)
    return socket


@pytest.mark.parametrize(
    ("setup", "state", "connected"),
    [
        pytest.param(_never_connected, "closed", False, id="defaults to closed"),
        pytest.param(_connecting, "connecting", False, id="returns connecting"),
        pytest.param(_open, "open", True, id="returns open"),
        pytest.param(_closing, "closing", False, id="returns closing"),
        pytest.param(_closed, "closed", False, id="returns closed"),
    ],
)
def test_connection_state(setup: Any, state: str, connected: bool) -> None:
    """connection_state follows the transport; is_connected() only when open."""
    socket = setup()

    assert socket.connection_state == state
    assert socket.is_connected() is connected


# -- channel ---------------------------------------------------------------------------


def test_returns_channel_with_given_topic_and_params() -> None:
    """socket.channel() returns a channel of this socket with the topic and params."""
    socket, _, _ = make_socket()

    channel = socket.channel("topic", {"one": "two"})

    assert channel.socket is socket
    assert channel.topic == "topic"
    assert channel.params == {"one": "two"}


def test_adds_channel_to_sockets_channels_list() -> None:
    """socket.channel() registers the new channel with the socket."""
    socket, _, _ = make_socket()
    assert channels_of(socket) == []

    channel = socket.channel("topic", {"one": "two"})

    assert channels_of(socket) == [channel]


# -- remove ----------------------------------------------------------------------------


def test_removes_given_channel_from_channels() -> None:
    """A closed channel leaves the socket's channels and drops its socket hooks."""
    socket, _, _ = make_socket()
    channel1 = socket.channel("topic-1")
    channel2 = socket.channel("topic-2")
    assert len(socket._callbacks["open"]) == 2

    channel1.leave()

    assert len(socket._callbacks["open"]) == 1
    assert channels_of(socket) == [channel2]


# -- push ------------------------------------------------------------------------------


def test_sends_data_to_connection_when_connected() -> None:
    """A frame pushed while open goes straight to the transport, encoded."""
    socket, _, network = open_socket()

    socket._push("topic", "event", {"p": 1}, "ref", None)

    assert network.conn.sent == ['[null,"ref","topic","event",{"p":1}]']


def test_buffers_data_when_not_connected() -> None:
    """A frame pushed while connecting waits in the send buffer until open."""
    socket, _, network = start_connecting()

    socket._push("topic", "event", {"p": 1}, "ref", None)
    assert network.conn.sent == []
    assert [b.data for b in socket._send_buffer] == [
        '[null,"ref","topic","event",{"p":1}]'
    ]

    network.conn.open()
    assert network.conn.sent == ['[null,"ref","topic","event",{"p":1}]']


# -- makeRef ---------------------------------------------------------------------------


def test_returns_next_message_ref() -> None:
    """make_ref() counts up from 1, as strings."""
    socket, _, _ = make_socket()

    assert [socket.make_ref(), socket.make_ref()] == ["1", "2"]


# -- sendHeartbeat ---------------------------------------------------------------------


def test_closes_socket_when_heartbeat_is_not_acked_within_heartbeat_window() -> None:
    """A heartbeat unanswered for one interval closes the connection (1000)."""
    socket, timers, network = open_socket()

    # t=30: heartbeat; t=59.99: still waiting
    timers.advance(59.99)
    assert events(network.conn) == ["heartbeat"]
    assert network.conn.close_calls == []

    # t=60: no reply within the interval
    timers.advance(0.01)
    assert network.transports[0].close_calls == [(1000, "heartbeat timeout")]


def test_pushes_heartbeat_data_when_connected() -> None:
    """The heartbeat frame is [null, ref, "phoenix", "heartbeat", {}]."""
    socket, timers, network = open_socket()

    timers.advance(30.0)

    assert network.conn.sent == ['[null,"1","phoenix","heartbeat",{}]']


def test_no_ops_when_not_connected() -> None:
    """No heartbeat is sent or buffered while the socket is not open."""
    socket, timers, network = start_connecting()

    timers.advance(90.0)

    assert network.conn.sent == []
    assert socket._send_buffer == []


def test_times_the_next_heartbeat_from_the_reply() -> None:
    """The next heartbeat goes out one interval after the previous reply (§5.7)."""
    socket, timers, network = open_socket()

    # t=30: heartbeat "1"; t=35: its reply
    timers.advance(35.0)
    network.conn.receive(reply(None, "1", "phoenix"))

    # t=64.99: nothing yet; t=65: heartbeat "2"
    timers.advance(29.99)
    assert events(network.conn) == ["heartbeat"]
    timers.advance(0.01)
    assert network.conn.sent[-1] == '[null,"2","phoenix","heartbeat",{}]'


def test_reconnects_after_a_heartbeat_timeout() -> None:
    """After a heartbeat timeout the socket reconnects after the first backoff step."""
    socket, timers, network = open_socket()

    # t=60: heartbeat timeout closes with 1000; t=60.01: reconnect anyway
    timers.advance(60.0)
    assert len(network.transports) == 1
    timers.advance(0.01)
    assert len(network.transports) == 2


# -- flushSendBuffer -------------------------------------------------------------------


def test_calls_callbacks_in_buffer_when_connected() -> None:
    """Every buffered frame is sent, in order, once the socket is open."""
    socket, _, network = start_connecting()
    socket._push("topic", "first", {}, "1", None)
    socket._push("topic", "second", {}, "2", None)

    network.conn.open()

    assert events(network.conn) == ["first", "second"]


def test_empties_send_buffer() -> None:
    """Flushed frames leave the buffer and are not sent again on a later connection."""
    socket, timers, network = start_connecting()
    socket._push("topic", "first", {}, "1", None)
    network.conn.open()
    assert socket._send_buffer == []

    # the connection drops; t=0.01: reconnect and open
    network.conn.server_close(1006)
    timers.advance(0.01)
    network.conn.open()

    assert network.conn.sent == []


# -- onConnOpen ------------------------------------------------------------------------


def test_flushes_the_send_buffer() -> None:
    """Buffered frames go out before the open callbacks run (§5.6)."""
    socket, _, network = start_connecting()
    socket._push("topic", "event", {}, "1", None)
    seen: list[list[str]] = []
    socket.on_open(lambda: seen.append(events(network.conn)))

    network.conn.open()

    assert seen == [["event"]]


def test_resets_reconnect_timer() -> None:
    """An open resets the reconnect backoff to its first step."""
    socket, timers, network = open_socket()
    # drop; t=0.01: reconnect, which fails; t=0.06: second try (0.05 s later)
    network.conn.server_close(1006)
    timers.advance(0.01)
    network.conn.server_close(1006)
    timers.advance(0.05)
    assert len(network.transports) == 3
    network.conn.open()
    network.conn.receive(reply(None, "99", "phoenix"))  # the server is alive

    # the next drop reconnects after 0.01 s again
    network.conn.server_close(1006)
    timers.advance(0.01)

    assert len(network.transports) == 4


def test_a_connection_dropped_before_any_frame_keeps_backing_off() -> None:
    """Deliberate difference: an open followed by a close before the server sent
    a single frame does not reset the backoff, so a server that accepts and
    drops at once is retried on the growing schedule, not every 10 ms."""
    socket, timers, network = open_socket()
    delays = []
    for _ in range(5):
        network.conn.server_close(1006)
        delay = socket._reconnect_timer._handle.when - timers.now()  # type: ignore[union-attr]
        delays.append(round(delay, 3))
        timers.advance(delay)
        network.conn.open()

    assert delays == [0.01, 0.05, 0.1, 0.15, 0.2]


def test_triggers_on_open_callback() -> None:
    """on_open callbacks run once per open."""
    socket, _, network = start_connecting()
    on_open = Mock()
    socket.on_open(on_open)

    network.conn.open()

    on_open.assert_called_once_with()


# -- heartbeatTimeout ------------------------------------------------------------------


def test_triggers_channel_error_with_the_heartbeat_timeout_reason() -> None:
    """A heartbeat timeout errors joined channels with reason heartbeat_timeout."""
    socket, timers, network = open_socket()
    channel = join_ok(socket, network)
    on_error = Mock()
    channel.on_error(on_error)

    timers.advance(60.0)

    on_error.assert_called_once()
    assert on_error.call_args.args[0] == {
        "source": "transport",
        "reason": "heartbeat_timeout",
    }


# -- onConnClose -----------------------------------------------------------------------


def test_schedules_reconnect_timer_even_if_normal_close() -> None:
    """A server close with 1000 reconnects too: phoenix.js 1.8.16 reconnects after
    any close it did not ask for (PROTOCOL §5.6 describes 1.8.12, which did not)."""
    socket, timers, network = open_socket()

    network.conn.server_close(1000)
    timers.advance(0.01)

    assert len(network.transports) == 2


def test_schedules_reconnect_timer_timeout_if_abnormal_close() -> None:
    """An abnormal close (1006) reconnects once after the first backoff step."""
    socket, timers, network = open_socket()

    network.conn.server_close(1006)
    timers.advance(0.0099)
    assert len(network.transports) == 1
    timers.advance(0.0001)

    assert len(network.transports) == 2


async def test_does_not_schedule_reconnect_timer_timeout_if_normal_close_after_explicit_disconnect() -> (  # noqa: E501
    None
):
    """An explicit disconnect() never reconnects."""
    socket, timers, network = open_socket()

    await socket.disconnect()
    timers.advance(10.0)

    assert len(network.transports) == 1


def test_schedules_reconnect_timer_timeout_if_not_normal_close() -> None:
    """A close with 1001 (server going away) reconnects."""
    socket, timers, network = open_socket()

    network.conn.server_close(1001)
    timers.advance(0.01)

    assert len(network.transports) == 2


async def test_schedules_reconnect_timer_timeout_if_connection_cannot_be_made_after_a_previous_clean_disconnect() -> (  # noqa: E501
    None
):
    """Deliberate difference (1): after disconnect(), a connect() whose attempt fails
    raises ConnectError and schedules no reconnect (phoenix.js does reconnect)."""
    socket, timers, network = open_socket()
    await socket.disconnect()
    connecting = asyncio.ensure_future(socket.connect())
    await asyncio.sleep(0)

    network.conn.server_close(1001)

    with pytest.raises(ConnectError):
        await connecting
    timers.advance(10.0)
    assert len(network.transports) == 2


async def test_a_first_connect_that_fails_raises_and_does_not_reconnect() -> None:
    """Deliberate difference (1): a failed first connect() raises ConnectError and
    nothing retries in the background."""
    socket, timers, network = make_socket()
    connecting = asyncio.ensure_future(socket.connect())
    await asyncio.sleep(0)

    network.conn.fail(ConnectionRefusedError("refused"))
    network.conn.server_close(1006)

    with pytest.raises(ConnectError, match="refused"):
        await connecting
    timers.advance(10.0)
    assert len(network.transports) == 1
    assert socket.connection_state == "closed"


def test_triggers_on_close_callback() -> None:
    """on_close callbacks get the close event."""
    socket, _, network = open_socket()
    on_close = Mock()
    socket.on_close(on_close)

    network.conn.server_close(1006, "gone")

    on_close.assert_called_once_with(CloseEvent(1006, "gone", False))


def test_triggers_channel_error_if_joining() -> None:
    """A close errors a joining channel with reason connection_closed."""
    socket, _, network = open_socket()
    channel = socket.channel("topic")
    on_error = Mock()
    channel.on_error(on_error)
    channel.join()
    assert channel.state == "joining"

    network.conn.server_close(1006)

    assert on_error.call_args.args[0] == {
        "source": "transport",
        "reason": "connection_closed",
    }


def test_triggers_channel_error_if_joined() -> None:
    """A close errors a joined channel with reason connection_closed."""
    socket, _, network = open_socket()
    channel = join_ok(socket, network)
    on_error = Mock()
    channel.on_error(on_error)

    network.conn.server_close(1006)

    assert on_error.call_args.args[0] == {
        "source": "transport",
        "reason": "connection_closed",
    }
    assert channel.state == "errored"


def test_does_not_trigger_channel_error_after_leave() -> None:
    """A close does not error a channel that was left."""
    socket, _, network = open_socket()
    channel = join_ok(socket, network)
    on_error = Mock()
    channel.on_error(on_error)
    channel.leave()
    assert channel.state == "closed"

    network.conn.server_close(1006)

    on_error.assert_not_called()


async def test_does_not_send_heartbeat_after_explicit_disconnect() -> None:
    """After disconnect() no heartbeat goes out."""
    socket, timers, network = open_socket()

    await socket.disconnect()
    timers.advance(30.0)

    assert "heartbeat" not in events(network.conn)
    assert socket._send_buffer == []


async def test_does_not_timeout_the_heartbeat_after_explicit_disconnect() -> None:
    """After disconnect() no heartbeat times out (no error, no reconnect)."""
    socket, timers, network = open_socket()
    channel = join_ok(socket, network)
    on_error = Mock()
    channel.on_error(on_error)

    await socket.disconnect()
    timers.advance(60.0)

    reasons = [c.args[0]["reason"] for c in on_error.call_args_list]
    assert reasons == ["connection_closed"]
    assert len(network.transports) == 1


# -- onConnError -----------------------------------------------------------------------


def test_on_conn_error_triggers_on_error_callback() -> None:
    """(misnamed "triggers onClose callback" in phoenix.js) on_error callbacks get the
    error, the transport and the count of connections opened so far."""
    socket, _, network = start_connecting()
    on_error = Mock()
    socket.on_error(on_error)
    error = OSError("error")

    network.conn.fail(error)

    on_error.assert_called_once_with(error, socket.transport, 0)


def test_triggers_channel_error_if_joining_with_open_connection() -> None:
    """A transport error errors a joining channel with reason connection_error."""
    socket, _, network = open_socket()
    channel = socket.channel("topic")
    on_error = Mock()
    channel.on_error(on_error)
    channel.join()

    network.conn.fail(OSError("error"))

    assert on_error.call_args.args[0] == {
        "source": "transport",
        "reason": "connection_error",
    }


def test_triggers_channel_error_if_joining_with_no_connection() -> None:
    """A transport error before open errors a joining channel too."""
    socket, _, network = start_connecting()
    channel = socket.channel("topic")
    on_error = Mock()
    channel.on_error(on_error)
    channel.join()

    network.conn.fail(OSError("error"))

    assert on_error.call_args.args[0] == {
        "source": "transport",
        "reason": "connection_error",
    }


def test_on_conn_error_triggers_channel_error_if_joined() -> None:
    """A transport error errors a joined channel; on_error counts one connection."""
    socket, _, network = open_socket()
    channel = join_ok(socket, network)
    socket_errors, channel_errors = Mock(), Mock()
    socket.on_error(socket_errors)
    channel.on_error(channel_errors)
    error = OSError("error")

    network.conn.fail(error)

    socket_errors.assert_called_once_with(error, socket.transport, 1)
    assert channel_errors.call_args.args[0]["reason"] == "connection_error"
    assert channel.state == "errored"


def test_on_conn_error_does_not_trigger_channel_error_after_leave() -> None:
    """A transport error does not error a channel that was left."""
    socket, _, network = open_socket()
    channel = join_ok(socket, network)
    on_error = Mock()
    channel.on_error(on_error)
    channel.leave()

    network.conn.fail(OSError("error"))

    on_error.assert_not_called()


async def test_does_not_trigger_channel_error_if_transport_replaced_with_no_previous_connection(  # noqa: E501
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A websocket error that switches to long-poll before any connection opened
    errors no channel; the buffered join goes out over long-poll."""
    socket, websockets, longpolls = fallback_socket(monkeypatch)
    channel = socket.channel("topic")
    on_error = Mock()
    channel.on_error(on_error)
    channel.join()
    connecting = asyncio.ensure_future(socket.connect())
    await asyncio.sleep(0)

    websockets.conn.fail(ConnectionRefusedError("no websocket here"))
    longpolls.conn.open()
    await connecting

    on_error.assert_not_called()
    assert channel.state == "joining"
    assert events(longpolls.conn) == ["phx_join"]


# -- onConnMessage ---------------------------------------------------------------------


def test_parses_raw_message_and_triggers_channel_event() -> None:
    """A message is delivered to the channels of its topic only."""
    socket, _, network = open_socket()
    target, other = socket.channel("topic"), socket.channel("other")
    target_cb, other_cb = Mock(), Mock()
    target.on("event", target_cb)
    other.on("event", other_cb)

    network.conn.receive([None, "ref", "topic", "event", {"p": 1}])

    target_cb.assert_called_once_with({"p": 1}, "ref", None)
    other_cb.assert_not_called()


def test_triggers_on_message_callback() -> None:
    """on_message callbacks get every decoded message."""
    socket, _, network = open_socket()
    on_message = Mock()
    socket.on_message(on_message)

    network.conn.receive([None, "ref", "topic", "event", {"p": 1}])

    on_message.assert_called_once_with(Message(None, "ref", "topic", "event", {"p": 1}))


def test_on_message_sees_frames_that_channels_drop() -> None:
    """Socket message callbacks see messages of an outdated join too (§5.11)."""
    socket, _, network = open_socket()
    channel = join_ok(socket, network)
    channel_cb, socket_cb = Mock(), Mock()
    channel.on("event", channel_cb)
    socket.on_message(socket_cb)

    network.conn.receive(["1", None, "topic", "event", {}])

    channel_cb.assert_not_called()
    socket_cb.assert_called_once()


# -- ping ------------------------------------------------------------------------------


async def test_pushes_when_connected() -> None:
    """ping() sends a heartbeat and returns the round trip time in seconds."""
    socket, timers, network = open_socket()
    pinging = asyncio.ensure_future(socket.ping())
    await asyncio.sleep(0)
    ref = network.conn.frames()[-1][1]
    assert network.conn.frames()[-1] == [None, ref, "phoenix", "heartbeat", {}]

    # t=0.1: the reply
    timers.advance(0.1)
    network.conn.receive(reply(None, ref, "phoenix"))

    assert await pinging == pytest.approx(0.1)


async def test_returns_false_when_disconnected() -> None:
    """ping() on a socket that is not connected raises PhoenixError."""
    socket, _, _ = make_socket()

    with pytest.raises(PhoenixError, match="not connected"):
        await socket.ping()


# -- custom encoder and decoder: vsn picks the serializer ------------------------------


def test_encodes_to_json_array_by_default() -> None:
    """By default frames are vsn 2.0.0 JSON arrays."""
    socket, _, network = open_socket()

    socket._push("topic", "join", {"foo": "bar"}, "2", "1")

    assert network.conn.sent == ['["1","2","topic","join",{"foo":"bar"}]']


def test_allows_custom_encoding_when_using_websocket_transport() -> None:
    """With vsn="1.0.0" frames are JSON objects, and the URL says so."""
    socket, _, network = open_socket(vsn="1.0.0")

    socket._push("topic", "join", {"foo": "bar"}, "2", "1")

    assert network.conn.url.endswith("?vsn=1.0.0")
    assert json.loads(network.conn.sent[0]) == {
        "topic": "topic",
        "event": "join",
        "payload": {"foo": "bar"},
        "ref": "2",
        "join_ref": "1",
    }


def test_decodes_json_by_default() -> None:
    """By default a JSON array frame decodes to a message."""
    socket, _, network = open_socket()
    on_message = Mock()
    socket.on_message(on_message)

    network.conn.receive('["1","2","topic","join",{"foo":"bar"}]')

    on_message.assert_called_once_with(
        Message("1", "2", "topic", "join", {"foo": "bar"})
    )


def test_allows_custom_decoding_when_using_websocket_transport() -> None:
    """With vsn="1.0.0" a JSON object frame decodes to a message without join_ref."""
    socket, _, network = open_socket(vsn="1.0.0")
    on_message = Mock()
    socket.on_message(on_message)

    network.conn.receive(
        '{"topic":"topic","event":"join","payload":{"foo":"bar"},"ref":"2"}'
    )

    on_message.assert_called_once_with(
        Message(None, "2", "topic", "join", {"foo": "bar"})
    )


# -- frames the server should not send -------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    ["not json", "[1,2]", '{"a":1}', b"\x07", b"", '[null,null,5,"e",{}]'],
)
def test_a_frame_that_does_not_decode_is_dropped(frame: Any) -> None:
    """A malformed frame is logged and dropped; the socket stays open (STYLE §6)."""
    socket, _, network = open_socket()
    on_message = Mock()
    socket.on_message(on_message)

    network.conn.receive(frame)

    on_message.assert_not_called()
    assert socket.is_connected()


def test_buffered_frames_survive_a_reconnect() -> None:
    """Frames buffered while the connection is down go out on the next one (§5.8)."""
    socket, timers, network = open_socket()
    network.conn.server_close(1006)
    socket._push("topic", "event", {}, "9", None)

    # t=0.01: reconnect and open
    timers.advance(0.01)
    network.conn.open()

    assert events(network.conn) == ["event"]
