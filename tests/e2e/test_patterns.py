"""The push patterns of API.md against the demo server: resend, retry,
pipelined batches, monitoring (pending pushes, sent_at, duration)."""

from __future__ import annotations

import asyncio

import pytest

from phoenix_channels import PushError, PushTimeout, Socket

from .conftest import Calls, bounded, joined


async def test_resend_gets_a_new_ref_and_fires_hooks_again(socket: Socket) -> None:
    """``resend`` sends with a new ref; the same receive hooks fire for it."""
    channel = await joined(socket, "room:lobby")
    oks = Calls()
    push = channel.push("echo", {"n": 1}).receive("ok", oks)
    assert await bounded(push) == {"n": 1}
    first_ref = push.ref
    push.resend(1.0)
    assert push.ref != first_ref
    assert await bounded(push) == {"n": 1}
    assert oks.first_args == [{"n": 1}, {"n": 1}]


async def test_retry_recovers_from_timeouts(socket: Socket) -> None:
    """``retry`` resends after a timeout and returns the ok response."""
    channel = await joined(socket, "room:lobby")
    channel.push("slow", {"ms": 400})  # the channel is busy for 400 ms
    timeouts = Calls()
    push = channel.push("echo", {"n": 1}, timeout=0.25).receive("timeout", timeouts)
    backoffs = Calls()

    def backoff(n: int) -> float:
        backoffs(n)
        return 0.05

    assert await bounded(push.retry(attempts=5, backoff=backoff)) == {"n": 1}
    assert len(timeouts) >= 1
    assert backoffs.first_args == list(range(1, len(timeouts) + 1))


async def test_retry_gives_up_after_all_attempts(socket: Socket) -> None:
    """``retry`` on ``noreply`` makes exactly ``attempts`` attempts, then raises
    PushTimeout."""
    channel = await joined(socket, "room:lobby")
    timeouts = Calls()
    push = channel.push("noreply", {}, timeout=0.05).receive("timeout", timeouts)
    with pytest.raises(PushTimeout):
        await bounded(push.retry(attempts=3, backoff=lambda n: 0.01))
    assert len(timeouts) == 3
    assert push.status == "timeout"


async def test_retry_does_not_retry_errors_by_default(socket: Socket) -> None:
    """By default only timeouts are retried: ``fail`` raises at once."""
    channel = await joined(socket, "room:lobby")
    errors = Calls()
    push = channel.push("fail").receive("error", errors)
    with pytest.raises(PushError):
        await bounded(push.retry(attempts=3, backoff=lambda n: 0.01))
    assert len(errors) == 1


async def test_retry_on_error_statuses(socket: Socket) -> None:
    """``retry(on=("error",))`` retries ``fail`` and raises the last PushError."""
    channel = await joined(socket, "room:lobby")
    errors = Calls()
    push = channel.push("fail").receive("error", errors)
    with pytest.raises(PushError) as info:
        await bounded(push.retry(attempts=4, backoff=lambda n: 0.01, on=("error",)))
    assert info.value.response == {"errors": {"title": ["can't be blank"]}}
    assert len(errors) == 4


async def test_batch_of_1000_pipelined_pushes(socket: Socket) -> None:
    """1,000 pushes gathered together are all sent before any reply and each
    gets its own reply, in order."""
    channel = await joined(socket, "room:lobby")
    pushes = [channel.push("echo", {"i": i}) for i in range(1000)]
    assert len(socket.pending_pushes()) == 1000  # all on the wire at once
    replies = await bounded(asyncio.gather(*pushes))
    assert replies == [{"i": i} for i in range(1000)]
    assert socket.pending_pushes() == []


async def test_batch_with_mixed_outcomes(socket: Socket) -> None:
    """A gathered batch with ``return_exceptions`` reports each push's outcome."""
    channel = await joined(socket, "room:lobby")
    ops = [("echo", {"i": 0}), ("fail", {}), ("noreply", {}), ("count", {})]
    results = await bounded(
        asyncio.gather(
            *(channel.push(event, payload, timeout=0.3) for event, payload in ops),
            return_exceptions=True,
        )
    )
    assert results[0] == {"i": 0}
    assert isinstance(results[1], PushError) and results[1].status == "error"
    assert isinstance(results[2], PushTimeout)
    assert results[3] == {"count": 1}


async def test_pending_pushes_and_durations(socket: Socket) -> None:
    """In-flight pushes are listed until they end; ``duration`` measures each
    from its send to its reply."""
    channel = await joined(socket, "room:lobby")
    loop = asyncio.get_running_loop()
    before = loop.time()
    pushes = [channel.push("slow", {"ms": 50}) for _ in range(3)]
    assert socket.pending_pushes() == pushes
    assert all(p.sent_at is not None and p.sent_at >= before for p in pushes)
    assert all(p.duration is None and p.status is None for p in pushes)
    first = await bounded(pushes[0])
    assert first == {"ms": 50}
    assert pushes[0] not in socket.pending_pushes()
    await bounded(asyncio.gather(*pushes))
    durations = [p.duration for p in pushes]
    assert all(d is not None for d in durations)
    # The channel is serial: 50, 100, 150 ms.
    assert durations == sorted(durations)  # type: ignore[type-var]
    assert durations[2] >= 0.14  # type: ignore[operator]
    assert socket.pending_pushes() == []


async def test_pushes_before_join_ok_are_buffered(socket: Socket) -> None:
    """Pushes made while the join is under way are sent after the join reply."""
    channel = socket.channel("room:lobby", {"delay_ms": 100})
    join = channel.join()
    push = channel.push("echo", {"early": True})
    assert await bounded(join) == {
        "joined": "room:lobby",
        "params": {"delay_ms": 100},
    }
    assert await bounded(push) == {"early": True}


async def test_push_before_join_raises(socket: Socket) -> None:
    """Pushing on a channel that was never joined raises RuntimeError."""
    with pytest.raises(RuntimeError):
        socket.channel("room:lobby").push("echo", {})
