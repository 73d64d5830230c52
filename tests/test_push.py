"""Push: the ``push`` describe block of phoenix.js ``channel_test.js`` (§12.1
cases 56-63; phoenix.js has no push_test.js), then Push behaviour from
PROTOCOL §3 that the JS suite only covers through the join push.

Refs are real: on a new socket the channel "topic" joins with ref "3", so its
first push gets ref "4". Times are seconds.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any
from unittest.mock import Mock

import pytest

from phoenix_channels import JoinError, PushError, PushTimeout
from tests.fakes import events, joined, joining, open_socket, reply, wait_for

TIMEOUT = 10.0


def answer(
    t: SimpleNamespace, push: Any, status: str = "ok", response: Any = None
) -> None:
    """The server replies to ``push``'s current attempt."""
    t.network.conn.receive(
        reply(t.channel.join_ref, push.ref, "topic", status, response)
    )


# -- push (channel_test.js) ------------------------------------------------------------


def test_sends_push_event_when_successfully_joined() -> None:
    """A push on a joined channel goes out at once with the join ref and a new ref."""
    t = joined()

    t.channel.push("event", {"foo": "bar"})

    assert t.network.conn.frames()[-1] == ["3", "4", "topic", "event", {"foo": "bar"}]


def test_enqueues_push_event_to_be_sent_once_join_has_succeeded() -> None:
    """A push made while joining is held back and sent when the join succeeds."""
    t = joining()
    t.channel.push("event", {"foo": "bar"})
    assert events(t.network.conn) == ["phx_join"]

    # t=5: the join succeeds; the push goes out with a ref minted now
    t.timers.advance(TIMEOUT / 2)
    t.network.conn.receive(reply("3", "3", "topic", "ok"))

    assert t.network.conn.frames()[-1] == ["3", "5", "topic", "event", {"foo": "bar"}]


def test_does_not_push_if_channel_join_times_out() -> None:
    """A buffered push that timed out is never sent, even after a later join ok."""
    t = joining()
    t.channel.push("event", {"foo": "bar"})

    # t=10: join and push time out; t=11: rejoin; t=20: the rejoin succeeds
    t.timers.advance(TIMEOUT * 2)
    ref = t.channel.join_ref
    t.network.conn.receive(reply(ref, ref, "topic", "ok"))

    assert t.channel.state == "joined"
    assert "event" not in events(t.network.conn)


def test_uses_channel_timeout_by_default() -> None:
    """A push without a timeout times out after the channel's timeout."""
    t = joined()
    on_timeout = Mock()
    t.channel.push("event", {"foo": "bar"}).receive("timeout", on_timeout)

    # t=5: pending
    t.timers.advance(TIMEOUT / 2)
    on_timeout.assert_not_called()

    # t=15: timed out at t=10
    t.timers.advance(TIMEOUT)
    on_timeout.assert_called_once_with({})


def test_accepts_timeout_arg() -> None:
    """A push's own timeout overrides the channel's."""
    t = joined()
    on_timeout = Mock()
    t.channel.push("event", {"foo": "bar"}, TIMEOUT * 2).receive("timeout", on_timeout)

    # t=10: pending
    t.timers.advance(TIMEOUT)
    on_timeout.assert_not_called()

    # t=30: timed out at t=20
    t.timers.advance(TIMEOUT * 2)
    on_timeout.assert_called_once_with({})


def test_does_not_time_out_after_receiving_ok() -> None:
    """A push answered ok never times out."""
    t = joined()
    on_timeout = Mock()
    push = t.channel.push("event", {"foo": "bar"})
    push.receive("timeout", on_timeout)

    # t=5: ok
    t.timers.advance(push.timeout / 2)
    on_timeout.assert_not_called()
    answer(t, push, "ok")

    # t=15: past the deadline
    t.timers.advance(push.timeout)
    on_timeout.assert_not_called()
    assert push.status == "ok"


def test_throws_if_channel_has_not_been_joined() -> None:
    """push() before join() raises RuntimeError."""
    socket, _, _ = open_socket()
    channel = socket.channel("topic")

    with pytest.raises(RuntimeError, match="^tried to push.*before joining"):
        channel.push("event", {})


def test_does_not_leak_the_reply_binding_of_a_buffered_push() -> None:
    """A flushed push releases the ref minted when it was buffered (PROTOCOL §3.4)."""
    t = joining()
    pushes = [t.channel.push("event", {"n": n}) for n in range(3)]
    assert sorted(t.socket._in_flight) == ["3", "4", "5", "6"]

    t.network.conn.receive(reply("3", "3", "topic", "ok"))
    assert sorted(t.socket._in_flight) == ["7", "8", "9"]

    for push in pushes:
        answer(t, push, "ok")
    assert t.socket._in_flight == {}


# -- beyond the catalogue: Push (PROTOCOL §3) ------------------------------------------


def test_join_timeout_becomes_the_default_push_timeout() -> None:
    """join(timeout) also sets the timeout of later pushes (PROTOCOL §4.2)."""
    socket, _, network = open_socket()
    channel = socket.channel("topic")

    channel.join(2.0)

    assert channel.push("event", {}).timeout == 2.0


def test_receive_is_chainable() -> None:
    """receive() returns the push itself."""
    t = joined()
    push = t.channel.push("event", {})

    assert push.receive("ok", lambda: None).receive("error", lambda: None) is push


def test_receive_accepts_any_status() -> None:
    """A reply with a status of the server's choosing runs the hooks for that status."""
    t = joined()
    on_custom, on_error = Mock(), Mock()
    push = t.channel.push("event", {}).receive("custom", on_custom)
    push.receive("error", on_error)

    answer(t, push, "custom", {"why": "because"})

    on_custom.assert_called_once_with({"why": "because"})
    on_error.assert_not_called()


def test_hooks_for_the_same_status_run_in_registration_order() -> None:
    """Every hook of the reply's status runs, in the order registered."""
    t = joined()
    calls: list[str] = []
    push = t.channel.push("event", {})
    push.receive("ok", lambda: calls.append("first"))
    push.receive("ok", lambda: calls.append("second"))

    answer(t, push, "ok")

    assert calls == ["first", "second"]


def test_a_late_reply_after_the_timeout_is_ignored() -> None:
    """A timeout ends the attempt, so a late server reply is dropped (§3.5)."""
    t = joined()
    on_ok = Mock()
    push = t.channel.push("event", {}).receive("ok", on_ok)

    # t=10: timeout; t=11: the server's reply arrives
    t.timers.advance(TIMEOUT)
    t.timers.advance(1.0)
    answer(t, push, "ok")

    on_ok.assert_not_called()
    assert push.status == "timeout"


def test_a_duplicate_reply_is_ignored() -> None:
    """A second reply with the same ref runs no hook."""
    t = joined()
    on_ok = Mock()
    push = t.channel.push("event", {}).receive("ok", on_ok)

    answer(t, push, "ok", {"n": 1})
    t.network.conn.receive(reply("3", "4", "topic", "ok", {"n": 2}))

    on_ok.assert_called_once_with({"n": 1})
    assert push.response == {"n": 1}


def test_resend_sends_again_with_a_new_ref_and_a_fresh_timeout() -> None:
    """resend(timeout) mints a new ref and restarts the timer from now."""
    t = joined()
    on_timeout = Mock()
    push = t.channel.push("event", {"a": 1}).receive("timeout", on_timeout)

    # t=8: resend with 5 s
    t.timers.advance(8.0)
    push.resend(5.0)
    assert t.network.conn.frames()[-1] == ["3", "5", "topic", "event", {"a": 1}]
    assert push.timeout == 5.0

    # t=12.99: the first deadline (t=10) passed quietly; t=13: timeout
    t.timers.advance(4.99)
    on_timeout.assert_not_called()
    t.timers.advance(0.01)
    on_timeout.assert_called_once_with({})


def test_an_attempt_replaced_by_resend_fires_nothing() -> None:
    """A reply to the ref of an attempt that was resent is ignored."""
    t = joined()
    on_ok = Mock()
    push = t.channel.push("event", {}).receive("ok", on_ok)
    old_ref = push.ref

    push.resend(TIMEOUT)
    t.network.conn.receive(reply("3", old_ref, "topic", "ok"))

    on_ok.assert_not_called()
    assert push.status is None


def test_hooks_fire_again_for_the_resent_attempt() -> None:
    """Hooks stay registered across resend and run for each attempt's outcome."""
    t = joined()
    outcomes: list[str] = []
    push = t.channel.push("event", {})
    push.receive("timeout", lambda: outcomes.append("timeout"))
    push.receive("ok", lambda: outcomes.append("ok"))

    # t=10: first attempt times out; then resent and answered
    t.timers.advance(TIMEOUT)
    push.resend(TIMEOUT)
    answer(t, push, "ok")

    assert outcomes == ["timeout", "ok"]
    assert push.status == "ok"


def test_send_on_a_sent_push_raises() -> None:
    """Deliberate difference (4): send() on a push already sent raises RuntimeError."""
    t = joined()
    push = t.channel.push("event", {})

    with pytest.raises(RuntimeError, match="resend"):
        push.send()
    assert events(t.network.conn).count("event") == 1


def test_pending_pushes_lists_pushes_awaiting_their_reply() -> None:
    """pending_pushes() holds sent pushes until their reply or timeout."""
    t = joined()
    first = t.channel.push("first", {})
    second = t.channel.push("second", {}, 20.0)
    assert t.socket.pending_pushes() == [first, second]

    answer(t, first, "ok")
    assert t.socket.pending_pushes() == [second]

    t.timers.advance(20.0)
    assert t.socket.pending_pushes() == []


def test_sent_at_and_duration_measure_the_latest_attempt() -> None:
    """sent_at is the latest send's time and duration the time to its outcome."""
    t = joined()
    t.timers.advance(1.0)
    push = t.channel.push("event", {})
    assert (push.sent_at, push.duration) == (1.0, None)

    # t=1.25: ok
    t.timers.advance(0.25)
    answer(t, push, "ok")

    assert (push.sent_at, push.duration) == (1.0, 0.25)


def test_buffered_pushes_survive_a_join_error_and_go_out_after_the_rejoin() -> None:
    """The push buffer outlives a refused join and is flushed on the next join ok."""
    t = joining()
    t.channel.push("event", {"foo": "bar"})

    # t=0: refused; t=1: rejoin, accepted
    t.network.conn.receive(reply("3", "3", "topic", "error", {}))
    t.timers.advance(1.0)
    ref = t.channel.join_ref
    t.network.conn.receive(reply(ref, ref, "topic", "ok"))

    assert events(t.network.conn) == ["phx_join", "phx_join", "event"]


def test_a_push_after_leave_is_buffered_and_times_out() -> None:
    """push() on a left channel does not raise; it is never sent and times out."""
    t = joined()
    t.channel.leave()
    on_timeout = Mock()

    push = t.channel.push("event", {}).receive("timeout", on_timeout)
    t.timers.advance(TIMEOUT)

    assert "event" not in events(t.network.conn)
    on_timeout.assert_called_once_with({})
    assert push.status == "timeout"


# -- await push (API.md) ---------------------------------------------------------------


async def test_await_returns_the_ok_response() -> None:
    """Awaiting a push answered ok returns the response."""
    t = joined()
    push = t.channel.push("event", {})
    waiting = asyncio.ensure_future(wait_for(push))
    await asyncio.sleep(0)

    answer(t, push, "ok", {"x": 1})

    assert await waiting == {"x": 1}


async def test_await_raises_push_error_for_another_status() -> None:
    """Awaiting a push answered with another status raises PushError with it."""
    t = joined()
    push = t.channel.push("event", {})
    answer(t, push, "error", {"reason": "nope"})

    with pytest.raises(PushError) as caught:
        await push

    assert (caught.value.status, caught.value.response) == ("error", {"reason": "nope"})
    assert caught.value.push is push


async def test_await_raises_push_timeout_on_timeout() -> None:
    """Awaiting a push that timed out raises PushTimeout, a TimeoutError."""
    t = joined()
    push = t.channel.push("event", {})
    waiting = asyncio.ensure_future(wait_for(push))
    await asyncio.sleep(0)

    t.timers.advance(TIMEOUT)

    with pytest.raises(PushTimeout) as caught:
        await waiting
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.push is push


async def test_await_a_refused_join_raises_join_error() -> None:
    """Awaiting a join refused by the server raises JoinError."""
    t = joining(rejoin_after=lambda tries: 1000.0)
    t.network.conn.receive(
        reply("3", "3", "topic", "error", {"reason": "unauthorized"})
    )

    with pytest.raises(JoinError) as caught:
        await t.join

    assert caught.value.response == {"reason": "unauthorized"}


async def test_await_after_resend_waits_for_the_new_attempt() -> None:
    """An await started before a resend gets the resent attempt's outcome."""
    t = joined()
    push = t.channel.push("event", {})
    waiting = asyncio.ensure_future(wait_for(push))
    await asyncio.sleep(0)

    push.resend(TIMEOUT)
    answer(t, push, "ok", {"attempt": 2})

    assert await waiting == {"attempt": 2}


async def test_retry_resends_after_a_timeout_and_returns_the_ok_response() -> None:
    """retry() waits the backoff after a timeout, resends, returns the ok response."""
    t = joined()
    push = t.channel.push("event", {}, 1.0)
    retrying = asyncio.ensure_future(push.retry(attempts=3, backoff=lambda n: 0.5))
    await asyncio.sleep(0)

    # t=1: the first attempt times out; t=1.5: resent after the backoff
    t.timers.advance(1.0)
    await asyncio.sleep(0)
    t.timers.advance(0.5)
    await asyncio.sleep(0)
    assert events(t.network.conn).count("event") == 2
    answer(t, push, "ok", {"done": True})

    assert await retrying == {"done": True}


async def test_retry_raises_the_last_failure_when_attempts_run_out() -> None:
    """retry() gives up after its attempts and raises the last attempt's failure."""
    t = joined()
    push = t.channel.push("event", {}, 1.0)
    retrying = asyncio.ensure_future(push.retry(attempts=2, backoff=lambda n: 0.5))
    await asyncio.sleep(0)

    # t=1: timeout; t=1.5: resent; t=2.5: timeout again
    for step in (1.0, 0.5, 1.0):
        t.timers.advance(step)
        await asyncio.sleep(0)

    with pytest.raises(PushTimeout):
        await retrying
    assert events(t.network.conn).count("event") == 2


def test_a_buffered_push_resent_before_the_join_succeeds_keeps_its_attempt() -> None:
    """A push resent while buffered is not failed by the flush on join ok."""
    t = joining()
    push = t.channel.push("event", {})
    push.resend(TIMEOUT)

    t.network.conn.receive(reply("3", "3", "topic", "ok"))
    answer(t, push, "ok", {"x": 1})

    assert (push.status, push.response) == ("ok", {"x": 1})


def test_a_buffered_push_resent_and_answered_is_not_ended_again_by_the_flush() -> None:
    """An attempt that already ended is not ended again when the join succeeds."""
    t = joining()
    outcomes: list[str] = []
    push = t.channel.push("event", {})
    push.receive("ok", lambda: outcomes.append("ok"))
    push.receive("error", lambda: outcomes.append("error"))
    push.resend(TIMEOUT)
    answer(t, push, "ok")

    t.network.conn.receive(reply("3", "3", "topic", "ok"))

    assert outcomes == ["ok"]
    assert push.status == "ok"


# -- binary pushes: metadata limits (PROTOCOL §6.3) --------------------------------


@pytest.mark.parametrize(
    ("topic", "event", "field"),
    [
        ("t" * 256, "ev", "topic"),
        ("room:1", "e" * 256, "event"),
        ("é" * 128, "ev", "topic"),
    ],
)
def test_binary_push_with_overlong_metadata_raises_before_sending(
    topic: str, event: str, field: str
) -> None:
    """A topic or event above 255 UTF-8 bytes cannot go in a binary frame:
    channel.push raises ValueError at the call, joined or not, and sends nothing."""
    for is_joined in (False, True):
        socket, _, network = open_socket()
        channel = socket.channel(topic)
        channel.join()
        if is_joined:
            network.conn.receive(reply("3", "3", topic, "ok"))
        sent = len(network.conn.sent)
        with pytest.raises(ValueError, match=f"{field}.*must be less than or equal"):
            channel.push(event, b"\x00\x01")
        assert len(network.conn.sent) == sent
        assert [p.event for p in socket.pending_pushes() if p.event != "phx_join"] == []


def test_binary_push_at_255_bytes_is_sent() -> None:
    """Exactly 255 UTF-8 bytes of topic is still fine."""
    topic = "t" * 255
    socket, _, network = open_socket()
    channel = socket.channel(topic)
    channel.join()
    network.conn.receive(reply("3", "3", topic, "ok"))
    channel.push("ev", b"\x00")
    assert isinstance(network.conn.sent[-1], bytes)
