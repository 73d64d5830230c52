"""Worker for Supabase's ``realtime`` package (PyPI), its asyncio client.

``run.py`` installs it apart from the project (``benchmarks/.deps``) and puts
it first on PYTHONPATH: it pins ``websockets<16`` and ``httpx<0.29``, which
would otherwise downgrade the project's own environment.

realtime prefixes every topic with ``realtime:``: ``run.py`` hands this
worker full ``realtime:...`` topics and it strips the prefix before calling
``client.channel``. It speaks vsn 1.0.0 (JSON objects).

realtime validates every inbound frame against its own pydantic message
model; an event outside it (the demo server's ``broadcasted``) is logged as
"Unrecognized message format" and dropped, never reaching a channel. The
``dispatch`` scenario counts those records (through a handler that prints
nothing) as well as broadcasts delivered to ``on_broadcast``.
"""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import version
from typing import Any

from common import Clock, MemoryProbe, memory_result, payloads, serve
from realtime import AsyncRealtimeClient, RealtimeAcknowledgementStatus

OK = RealtimeAcknowledgementStatus.Ok
ERROR = RealtimeAcknowledgementStatus.Error
SETUP_TIMEOUT = 120
PREFIX = "realtime:"


def _sub(topic: str) -> str:
    return topic[len(PREFIX) :] if topic.startswith(PREFIX) else topic


async def _joined(url: str, topic: str) -> tuple[AsyncRealtimeClient, Any]:
    client = AsyncRealtimeClient(url, auto_reconnect=False, timeout=SETUP_TIMEOUT)
    await client.connect()
    channel = client.channel(_sub(topic))
    await channel.subscribe()
    if not channel.is_joined:
        raise RuntimeError(f"could not join {topic}: state {channel.state}")
    return client, channel


def _reply(push: Any) -> asyncio.Future[Any]:
    """A future for the push's reply: realtime has no awaitable push."""
    future = asyncio.get_running_loop().create_future()
    push.receive(OK, future.set_result)
    push.receive(ERROR, lambda r: future.set_exception(RuntimeError(str(r))))
    return future


async def round_trips(url: str, topic: str, count: int, warmup: int) -> dict[str, Any]:
    client, channel = await _joined(url, topic)
    data = payloads(warmup + count)
    for item in data[:warmup]:
        await _reply(await channel.push("echo", item))
    clock = Clock()
    clock.start()
    for item in data[warmup:]:
        await _reply(await channel.push("echo", item))
    result = clock.stop()
    await client.close()
    return {**result, "n": count}


async def _batch(channel: Any, data: list[Any]) -> None:
    futures = [_reply(await channel.push("echo", item)) for item in data]
    await asyncio.gather(*futures)


async def pipelined(url: str, topic: str, count: int, warmup: int) -> dict[str, Any]:
    client, channel = await _joined(url, topic)
    await _batch(channel, payloads(warmup))
    data = payloads(count)
    clock = Clock()
    clock.start()
    await _batch(channel, data)
    result = clock.stop()
    await client.close()
    return {**result, "n": count}


class _Counter(logging.Handler):
    """Counts the frames realtime rejects, and keeps them off stderr."""

    def __init__(self) -> None:
        super().__init__()
        self.rejected = 0
        self.done: asyncio.Future[None] | None = None
        self.total = 0
        self.want = 0
        self.warmup = 0
        self.clock = Clock()

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("Unrecognized message format"):
            self.rejected += 1
            self.seen()

    def seen(self) -> None:
        self.total += 1
        if self.total == self.warmup:
            self.clock.start()
        elif self.total == self.warmup + self.want and self.done is not None:
            self.done.set_result(None)


async def dispatch(
    url: str, topic: str, channels: int, messages: int, warmup: int, ready: Any
) -> dict[str, Any]:
    counter = _Counter()
    counter.want = messages
    counter.warmup = warmup
    counter.done = asyncio.get_running_loop().create_future()
    log = logging.getLogger("realtime")
    log.addHandler(counter)
    log.propagate = False
    client = AsyncRealtimeClient(url, auto_reconnect=False, timeout=SETUP_TIMEOUT)
    await client.connect()
    target = client.channel(_sub(topic))
    target.on_broadcast("*", lambda payload: counter.seen())
    idle = [client.channel(f"{_sub(topic)}-idle-{i}") for i in range(channels - 1)]
    await asyncio.gather(*(channel.subscribe() for channel in (target, *idle)))
    ready()
    if warmup == 0:
        counter.clock.start()
    await asyncio.wait_for(counter.done, SETUP_TIMEOUT)
    result = counter.clock.stop()
    log.removeHandler(counter)
    await client.close()
    return {
        **result,
        "n": messages,
        "channels": channels,
        "rejected": counter.rejected,  # warmup included
    }


async def pending_memory(url: str, topic: str, count: int) -> dict[str, Any]:
    client, channel = await _joined(url, topic)
    data = payloads(count)
    probe = MemoryProbe()
    probe.start()
    pushes = [await channel.push("noreply", item, SETUP_TIMEOUT) for item in data]
    await _reply(await channel.push("echo", {}))
    pending = len(channel.messages_waiting_for_ack)
    grown = probe.stop()
    await client.close()
    assert len(pushes) == count
    return memory_result(grown, pending, data)


if __name__ == "__main__":
    serve(
        "realtime",
        {
            "realtime": version("realtime"),
            "websockets": version("websockets"),
            "pydantic": version("pydantic"),
        },
        {
            "round_trips": round_trips,
            "pipelined": pipelined,
            "dispatch": dispatch,
            "pending_memory": pending_memory,
        },
    )
