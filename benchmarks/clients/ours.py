"""Worker for our client, ``phoenix_channels``, used as API.md documents it."""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Any

from common import Clock, MemoryProbe, memory_result, payloads, serve

from phoenix_channels import Socket

#: Joins of thousands of channels queue up at the server: allow for it.
SETUP_TIMEOUT = 120.0


async def _joined(url: str, topic: str, timeout: float = SETUP_TIMEOUT) -> Any:
    socket = Socket(url, timeout=timeout)
    await socket.connect()
    channel = socket.channel(topic)
    await channel.join()
    return socket, channel


async def round_trips(url: str, topic: str, count: int, warmup: int) -> dict[str, Any]:
    """``count`` sequential ``await channel.push("echo", ...)``."""
    socket, channel = await _joined(url, topic)
    data = payloads(warmup + count)
    for item in data[:warmup]:
        await channel.push("echo", item)
    clock = Clock()
    clock.start()
    for item in data[warmup:]:
        last = await channel.push("echo", item)
    result = clock.stop()
    await socket.disconnect()
    assert last == data[-1], last
    return {**result, "n": count}


async def pipelined(url: str, topic: str, count: int, warmup: int) -> dict[str, Any]:
    """API.md's batch: push ``count`` at once, ``await asyncio.gather(...)``."""
    socket, channel = await _joined(url, topic)
    await asyncio.gather(*(channel.push("echo", p) for p in payloads(warmup)))
    data = payloads(count)
    clock = Clock()
    clock.start()
    replies = await asyncio.gather(*(channel.push("echo", p) for p in data))
    result = clock.stop()
    await socket.disconnect()
    assert replies[-1] == data[-1] and len(replies) == count
    return {**result, "n": count}


async def dispatch(
    url: str, topic: str, channels: int, messages: int, warmup: int, ready: Any
) -> dict[str, Any]:
    """CPU per broadcast delivered to one of ``channels`` joined channels.

    The clock starts at broadcast number ``warmup`` and stops at the last.
    """
    socket = Socket(url, timeout=SETUP_TIMEOUT)
    await socket.connect()
    target = socket.channel(topic)
    idle = [socket.channel(f"{topic}-idle-{i}") for i in range(channels - 1)]
    done = asyncio.get_running_loop().create_future()
    clock = Clock()
    seen = 0

    def on_broadcast(payload: Any) -> None:
        nonlocal seen
        seen += 1
        if seen == warmup:
            clock.start()
        elif seen == warmup + messages:
            done.set_result(None)

    target.on("broadcasted", on_broadcast)
    await asyncio.gather(*(channel.join() for channel in (target, *idle)))
    ready()
    if warmup == 0:
        clock.start()
    await asyncio.wait_for(done, SETUP_TIMEOUT)
    result = clock.stop()
    await socket.disconnect()
    return {**result, "n": messages, "channels": channels}


async def pending_memory(url: str, topic: str, count: int) -> dict[str, Any]:
    """Heap per push while ``count`` ``noreply`` pushes wait for a reply."""
    socket, channel = await _joined(url, topic)
    data = payloads(count)  # built before the baseline: not counted
    probe = MemoryProbe()
    probe.start()
    pushes = [channel.push("noreply", item) for item in data]
    # The echo's reply comes after the server has read every noreply push:
    # by then nothing waits in our send buffers.
    await channel.push("echo", {})
    pending = len(socket.pending_pushes())
    grown = probe.stop()
    await socket.disconnect()
    assert len(pushes) == count
    return memory_result(grown, pending, data)


if __name__ == "__main__":
    serve(
        "ours",
        {
            "phoenix-channels": version("phoenix-channels"),
            "websockets": version("websockets"),
        },
        {
            "round_trips": round_trips,
            "pipelined": pipelined,
            "dispatch": dispatch,
            "pending_memory": pending_memory,
        },
    )
