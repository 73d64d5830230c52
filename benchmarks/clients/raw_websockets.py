"""Worker for the floor: Phoenix v2 frames spoken by hand over websockets.

As lean as a Python client can be while still being one: the asyncio client
of ``websockets`` (no compression, as Phoenix does not negotiate it by
default), compact JSON arrays out, ``json.loads`` in, replies matched by ref
and messages routed by topic through a dict. No channel states, no timers,
no rejoin: everything our client adds over this is the overhead we measure.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from common import Clock, MemoryProbe, memory_result, payloads, serve
from websockets.asyncio.client import ClientConnection, connect

encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
decode = json.loads


async def _open(url: str) -> ClientConnection:
    return await connect(
        url.rstrip("/") + "/websocket?vsn=2.0.0", compression=None, max_size=2**24
    )


async def _join(ws: ClientConnection, topics: list[str]) -> None:
    """Join every topic (join_ref = ref = its index + 1), wait for the replies."""
    for i, topic in enumerate(topics, 1):
        await ws.send(encode([str(i), str(i), topic, "phx_join", {}]))
    waiting = len(topics)
    while waiting:
        msg = decode(await ws.recv())
        if msg[3] == "phx_reply":
            if msg[4]["status"] != "ok":
                raise RuntimeError(f"join refused: {msg}")
            waiting -= 1


async def round_trips(url: str, topic: str, count: int, warmup: int) -> dict[str, Any]:
    ws = await _open(url)
    await _join(ws, [topic])
    data = payloads(warmup + count)
    ref = 1
    clock = Clock()
    for n, item in enumerate(data):
        if n == warmup:
            clock.start()
        ref += 1
        wanted = str(ref)
        await ws.send(encode(["1", wanted, topic, "echo", item]))
        while True:
            msg = decode(await ws.recv())
            if msg[1] == wanted:
                break
    result = clock.stop()
    await ws.close()
    assert msg[4] == {"status": "ok", "response": data[-1]}, msg
    return {**result, "n": count}


async def _batch(ws: ClientConnection, topic: str, data: list[Any], ref: int) -> int:
    pending = set()
    for item in data:
        ref += 1
        pending.add(str(ref))
        await ws.send(encode(["1", str(ref), topic, "echo", item]))
    while pending:
        msg = decode(await ws.recv())
        pending.discard(msg[1])
    return ref


async def pipelined(url: str, topic: str, count: int, warmup: int) -> dict[str, Any]:
    ws = await _open(url)
    await _join(ws, [topic])
    ref = await _batch(ws, topic, payloads(warmup), 1)
    clock = Clock()
    clock.start()
    await _batch(ws, topic, payloads(count), ref)
    result = clock.stop()
    await ws.close()
    return {**result, "n": count}


async def dispatch(
    url: str, topic: str, channels: int, messages: int, warmup: int, ready: Any
) -> dict[str, Any]:
    ws = await _open(url)
    clock = Clock()
    seen = 0

    def on_target(event: str, payload: Any) -> None:
        nonlocal seen
        if event == "broadcasted":
            seen += 1
            if seen == warmup:
                clock.start()

    idle = [f"{topic}-idle-{i}" for i in range(channels - 1)]
    handlers: dict[str, Callable[[str, Any], None]] = {t: _ignore for t in idle}
    handlers[topic] = on_target
    await _join(ws, [topic, *idle])
    ready()
    if warmup == 0:
        clock.start()
    while seen < warmup + messages:
        msg = decode(await ws.recv())
        handler = handlers.get(msg[2])
        if handler is not None:
            handler(msg[3], msg[4])
    result = clock.stop()
    await ws.close()
    return {**result, "n": messages, "channels": channels}


def _ignore(event: str, payload: Any) -> None:
    pass


async def pending_memory(url: str, topic: str, count: int) -> dict[str, Any]:
    """The least a pending push can cost: a future in a dict keyed by ref."""
    ws = await _open(url)
    await _join(ws, [topic])
    data = payloads(count)
    loop = asyncio.get_running_loop()
    probe = MemoryProbe()
    probe.start()
    pending: dict[str, asyncio.Future[Any]] = {}
    for ref, item in enumerate(data, 2):
        pending[str(ref)] = loop.create_future()
        await ws.send(encode(["1", str(ref), topic, "noreply", item]))
    await ws.send(encode(["1", "0", topic, "echo", {}]))
    while decode(await ws.recv())[1] != "0":
        pass
    grown = probe.stop()
    await ws.close()
    return memory_result(grown, len(pending), data)


if __name__ == "__main__":
    serve(
        "raw",
        {"websockets": version("websockets")},
        {
            "round_trips": round_trips,
            "pipelined": pipelined,
            "dispatch": dispatch,
            "pending_memory": pending_memory,
        },
    )
