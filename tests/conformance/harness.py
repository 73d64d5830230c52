"""Runs one scenario with one driver against a fresh bundled server.

A scenario (scenarios.py) is a list of steps, each one of:

- ``{"do": [op, ...]}``: client ops, run by the driver in order within one
  tick of its event loop (so a push made right after a join really is made
  while the join is pending). The ops are documented in driver.mjs.
- ``{"wait": {"outcome": pattern, "count": n}}``: until the driver has
  reported ``n`` outcomes (callbacks that fired) matching ``pattern``;
  ``{"wait": {"frame": pattern, "count": n}}``: until the server recorded
  ``n`` frames matching ``pattern`` (see :func:`frame_fields`);
  ``{"wait": {"connections": n}}``: until ``n`` websockets were opened.
  Every wait is bounded (``WAIT`` seconds unless the step says ``within``).
- ``{"server": action}``: ``"drop"`` (TCP abort of every connection),
  ``"pause_heartbeats"``, ``"resume_heartbeats"``, ``{"close": code}`` (close
  every websocket with that code), ``{"broadcast": [topic, event, payload]}``.

There are no sleeps: a step that must happen "later" waits for the outcome
or the frame that marks "later".

Each run gets its own server on port 0, so recordings never mix. The result
is what the client sent (the server's per-connection frame recording) and
what it observed (its outcomes, in order), taken when the last step is done.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phoenix_channels.server import (
    ChannelSocket,
    ConnectionRecord,
    FrameRecorder,
    Reply,
    Server,
    ServerChannel,
    ok,
    reply,
)
from phoenix_channels.server.demo import DEMO_CHANNELS, demo_connect

HERE = Path(__file__).resolve().parent
WAIT = 5.0  # the default bound of every wait, in seconds


class ScenarioError(AssertionError):
    """A step failed or a wait ran out; the message says what was seen."""


# -- the server ----------------------------------------------------------------


class StatusChannel(ServerChannel):
    """``status:*``: replies with the event name as the status (Phoenix lets
    a channel reply with any atom), so custom statuses can be exercised."""

    async def join(self, topic: str, payload: Any, socket: ChannelSocket) -> Reply:
        return ok({"joined": topic})

    async def handle_in(self, event: str, payload: Any, socket: ChannelSocket) -> Reply:
        return reply(event, payload)


class NotifyingRecorder(FrameRecorder):
    """The server's frame recorder, plus an event set at every frame, so a
    wait for a frame wakes up on the frame instead of polling."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def open(self, *args: Any, **kwargs: Any) -> ConnectionRecord:
        record = super().open(*args, **kwargs)
        add = record.add

        def add_and_notify(*args: Any, **kwargs: Any) -> None:
            add(*args, **kwargs)
            self.changed.set()

        record.add = add_and_notify  # type: ignore[method-assign]
        self.changed.set()
        return record


def make_server() -> Server:
    """The demo channels of API.md plus ``status:*``, recording frames."""
    server = Server(
        {**DEMO_CHANNELS, "status:*": StatusChannel},
        connect=demo_connect,
        record_frames=True,
    )
    server.recorder = NotifyingRecorder()
    return server


# -- the node driver -----------------------------------------------------------


class NodeDriver:
    """driver.mjs in a node process, spoken to in JSON lines."""

    name = "phoenix.js"

    def __init__(self) -> None:
        self.outcomes: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self._acks: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0
        self._stderr: list[str] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            os.environ.get("CONFORMANCE_NODE", "node"),
            str(HERE / "driver.mjs"),
            cwd=HERE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._readers = [
            asyncio.ensure_future(self._read_stdout()),
            asyncio.ensure_future(self._read_stderr()),
        ]

    async def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        async for raw in self._proc.stdout:
            line = json.loads(raw)
            if "outcome" in line:
                self.outcomes.append(line["outcome"])
                self.changed.set()
            elif "ack" in line:
                future = self._acks.pop(line["ack"], None)
                if future is not None and not future.done():
                    future.set_result(line)
        for future in self._acks.values():  # the process ended
            if not future.done():
                future.set_exception(ScenarioError("node driver exited"))

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        async for raw in self._proc.stderr:
            self._stderr.append(raw.decode(errors="replace"))

    async def _request(self, body: dict[str, Any]) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdin is not None
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self._acks[self._next] = future
        self._proc.stdin.write((json.dumps({"id": self._next, **body}) + "\n").encode())
        await self._proc.stdin.drain()
        try:
            return await asyncio.wait_for(future, WAIT)
        except asyncio.TimeoutError:
            raise ScenarioError(f"node driver did not answer {body}") from None

    async def run(self, ops: list[dict[str, Any]]) -> None:
        answer = await self._request({"ops": ops})
        if "error" in answer:
            raise ScenarioError(f"node driver failed on {ops}:\n{answer['error']}")

    async def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            try:
                await self._request({"end": True})
            except (ScenarioError, ConnectionError):
                pass
            try:
                await asyncio.wait_for(proc.wait(), WAIT)
            except asyncio.TimeoutError:
                proc.kill()  # the process we started, by its handle
                await proc.wait()
        for reader in self._readers:
            try:
                await asyncio.wait_for(reader, WAIT)
            except asyncio.TimeoutError:
                reader.cancel()

    def stderr(self) -> str:
        return "".join(self._stderr)


# -- recorded frames -------------------------------------------------------------


def frame_fields(frame: Any) -> dict[str, Any]:
    """A recorded frame as fields to match waits on: ``dir``, ``kind`` and,
    when it decodes, ``join_ref``, ``ref``, ``topic``, ``event``,
    ``payload``; a close frame has ``code``."""
    fields: dict[str, Any] = {"dir": frame.direction, "kind": frame.kind}
    if frame.kind == "close":
        fields["code"] = frame.code
        return fields
    if frame.kind == "binary":
        fields.update(_binary_fields(frame.data, frame.direction))
        return fields
    try:
        value = json.loads(frame.data)
    except ValueError:
        return fields
    if isinstance(value, list) and len(value) == 5:
        keys = ("join_ref", "ref", "topic", "event", "payload")
        fields.update(zip(keys, value, strict=True))
    elif isinstance(value, dict):
        fields.update(value)
    return fields


def _binary_fields(data: bytes, direction: str) -> dict[str, Any]:
    if not data:
        return {}
    kind = data[0]
    if kind == 0 and direction == "in":
        names = ("join_ref", "ref", "topic", "event")
    elif kind == 0:
        names = ("join_ref", "topic", "event")
    elif kind == 1:
        names = ("join_ref", "ref", "topic", "status")
    else:
        names = ("topic", "event")
    sizes = data[1 : 1 + len(names)]
    offset = 1 + len(names)
    fields: dict[str, Any] = {}
    for name, size in zip(names, sizes, strict=False):
        fields[name] = data[offset : offset + size].decode(errors="replace")
        offset += size
    fields["payload"] = {"$bytes": data[offset:].hex()}
    return fields


def frame_text(frame: Any, vsn1: bool) -> str:
    """How a client frame is compared: v2 text exactly as sent; v1 objects
    with sorted keys (driver.mjs's v1 codec is ours, its key order is not
    phoenix.js's); binary as hex; a close frame as its code and reason."""
    if frame.kind == "close":
        return f"close {frame.code} {frame.data!r}"
    if frame.kind == "binary":
        return "binary " + frame.data.hex()
    if vsn1 and isinstance(frame.data, str):
        try:
            value = json.loads(frame.data)
        except ValueError:
            return frame.data
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return frame.data if isinstance(frame.data, str) else repr(frame.data)


def matches(fields: dict[str, Any], pattern: dict[str, Any]) -> bool:
    return all(key in fields and fields[key] == v for key, v in pattern.items())


# -- running ---------------------------------------------------------------------


@dataclass
class Run:
    """What one client did in one scenario."""

    driver: str
    outcomes: list[dict[str, Any]]
    connections: list[dict[str, Any]]  # {"path": ..., "frames": [...]}
    seconds: float
    stderr: str = ""
    notes: list[str] = field(default_factory=list)


async def _wait_until(
    event: asyncio.Event, done: Any, within: float, what: str, seen: Any
) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not done():
        event.clear()
        if done():
            return
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise ScenarioError(
                f"timed out after {within} s waiting for {what}\n{seen()}"
            )
        try:
            await asyncio.wait_for(event.wait(), remaining)
        except asyncio.TimeoutError:
            pass


def _recorded(recorder: FrameRecorder) -> list[tuple[int, Any]]:
    return [(c.index, f) for c in recorder.connections for f in c.frames]


async def _step(step: dict[str, Any], driver: Any, server: Server) -> None:
    recorder = server.recorder
    assert isinstance(recorder, NotifyingRecorder)
    if "do" in step:
        ops = [
            dict(op, url=server.url) if op["op"] == "socket" else op
            for op in step["do"]
        ]
        await driver.run(ops)
    elif "wait" in step:
        wait = step["wait"]
        within = wait.get("within", WAIT)
        count = wait.get("count", 1)
        if "outcome" in wait:
            pattern = wait["outcome"]
            await _wait_until(
                driver.changed,
                lambda: sum(matches(o, pattern) for o in driver.outcomes) >= count,
                within,
                f"{count} x outcome {pattern} from {driver.name}",
                lambda: "outcomes so far:\n" + _lines(driver.outcomes),
            )
        elif "frame" in wait:
            pattern = dict(wait["frame"])
            pattern.setdefault("dir", "in")
            conn = pattern.pop("conn", None)

            def found() -> int:
                return sum(
                    matches(frame_fields(f), pattern)
                    for i, f in _recorded(recorder)
                    if conn is None or i == conn
                )

            await _wait_until(
                recorder.changed,
                lambda: found() >= count,
                within,
                f"{count} x frame {pattern} (conn {conn}) with {driver.name}",
                lambda: (
                    "frames so far:\n"
                    + _lines([(i, frame_fields(f)) for i, f in _recorded(recorder)])
                    + "\noutcomes so far:\n"
                    + _lines(driver.outcomes)
                ),
            )
        elif "connections" in wait:
            await _wait_until(
                recorder.changed,
                lambda: len(recorder.connections) >= wait["connections"],
                within,
                f"{wait['connections']} connections with {driver.name}",
                lambda: f"{len(recorder.connections)} so far",
            )
        else:
            raise ValueError(f"unknown wait {wait}")
    elif "server" in step:
        action = step["server"]
        if action == "drop":
            server.drop_connections()
        elif action == "pause_heartbeats":
            server.pause_heartbeats()
        elif action == "resume_heartbeats":
            server.resume_heartbeats()
        elif isinstance(action, dict) and "close" in action:
            for conn in server.connections:
                conn.close(action["close"])
        elif isinstance(action, dict) and "broadcast" in action:
            topic, event, payload = action["broadcast"]
            if isinstance(payload, dict) and "$bytes" in payload:
                payload = bytes.fromhex(payload["$bytes"])
            server.broadcast(topic, event, payload)
        else:
            raise ValueError(f"unknown server action {action}")
    else:
        raise ValueError(f"unknown step {step}")


def _lines(items: list[Any]) -> str:
    return "\n".join("  " + json.dumps(item, default=str) for item in items)


async def run_scenario(scenario: dict[str, Any], driver: Any) -> Run:
    """Run ``scenario`` with ``driver`` against a fresh server."""
    vsn1 = scenario.get("vsn1", False)
    server = make_server()
    started = time.monotonic()
    async with server:
        recorder = server.recorder
        assert recorder is not None
        await driver.start()
        try:
            for number, step in enumerate(scenario["steps"], 1):
                try:
                    await _step(step, driver, server)
                except ScenarioError as exc:
                    raise ScenarioError(
                        f"{driver.name}: step {number} {json.dumps(step)}: {exc}\n"
                        f"driver stderr:\n{driver.stderr()}"
                    ) from None
            outcomes = [dict(o) for o in driver.outcomes]
            connections = [
                {
                    "path": c.path,
                    "frames": [
                        frame_text(f, vsn1) for f in c.frames if f.direction == "in"
                    ],
                }
                for c in recorder.connections
            ]
        finally:
            await driver.close()
    return Run(
        driver.name,
        outcomes,
        connections,
        time.monotonic() - started,
        driver.stderr(),
    )
