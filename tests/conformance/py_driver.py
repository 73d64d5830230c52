"""Conformance driver for our client: the ops of driver.mjs, with phoenix_channels.

It runs in the harness's event loop (next to the bundled server) and
interprets the very same ops as the node driver, op for op and in the same
order, including the order in which callbacks are registered (that consumes
socket refs in both clients). The only translations are the deliberate API
differences of docs/differences.md: scenario times are phoenix.js
milliseconds and become seconds here, and ``connect()`` is a coroutine that is
started, not awaited, as phoenix.js's ``connect()`` returns at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from phoenix_channels import ConnectError, Presence, Push, Socket

Outcome = dict[str, Any]

DEFAULT_STATUSES = ("ok", "error", "timeout")


def plain(value: Any) -> Any:
    """A payload as JSON: bytes become ``{"$bytes": hex}``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def wire(value: Any) -> Any:
    """A scenario payload: ``{"$bytes": hex}`` becomes bytes."""
    if isinstance(value, dict) and isinstance(value.get("$bytes"), str):
        return bytes.fromhex(value["$bytes"])
    return value


def ms(value: float | None) -> float | None:
    """phoenix.js milliseconds -> our seconds (docs/differences.md)."""
    return None if value is None else value / 1000.0


def schedule(delays: list[float]) -> Callable[[int], float]:
    """A backoff list in ms: tries -> seconds, the last one repeating."""
    return lambda tries: delays[min(tries, len(delays)) - 1] / 1000.0


def params_of(op: dict[str, Any]) -> Any:
    """``params_seq`` hands out one item per evaluation, the last repeating."""
    seq = op.get("params_seq")
    if seq is None:
        return op.get("params") or {}
    calls = iter(range(1 << 30))
    return lambda: seq[min(next(calls), len(seq) - 1)]


class PyDriver:
    """Runs ops against phoenix_channels; records outcomes like driver.mjs."""

    name = "python"

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.changed = asyncio.Event()
        self.sockets: dict[str, Socket] = {}
        self.channels: dict[str, tuple[Any, str]] = {}
        self.pushes: dict[str, tuple[Push, str]] = {}
        self.presences: dict[str, Presence] = {}
        self.bindings: dict[str, int] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    # -- the harness's view -------------------------------------------------

    async def start(self) -> None:
        pass

    async def run(self, ops: list[dict[str, Any]]) -> None:
        for op in ops:
            if "catch" not in op:
                getattr(self, "op_" + op["op"])(op)
                continue
            # Reports whether the op raised, as driver.mjs does.
            try:
                getattr(self, "op_" + op["op"])(op)
            except Exception:
                self.outcome(s=op.get("s"), caught=op["catch"], threw=True)
            else:
                self.outcome(s=op.get("s"), caught=op["catch"], threw=False)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for socket in self.sockets.values():
            if socket.connection_state != "closed":
                await asyncio.wait_for(socket.disconnect(), 5.0)

    def stderr(self) -> str:
        return ""

    # -- outcomes -------------------------------------------------------------

    def outcome(self, **fields: Any) -> None:
        self.outcomes.append(fields)
        self.changed.set()

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- ops --------------------------------------------------------------------

    def op_socket(self, op: dict[str, Any]) -> None:
        o = op.get("opts", {})
        kwargs: dict[str, Any] = {}
        if "timeout" in o:
            kwargs["timeout"] = ms(o["timeout"])
        if "heartbeatIntervalMs" in o:
            kwargs["heartbeat_interval"] = ms(o["heartbeatIntervalMs"])
        if "reconnectAfterMs" in o:
            kwargs["reconnect_after"] = schedule(o["reconnectAfterMs"])
        if "rejoinAfterMs" in o:
            kwargs["rejoin_after"] = schedule(o["rejoinAfterMs"])
        if "params_seq" in o:
            kwargs["params"] = params_of({"params_seq": o["params_seq"]})
        if "params" in o:
            kwargs["params"] = o["params"]
        if "vsn" in o:
            kwargs["vsn"] = o["vsn"]
        if "transport" in o:
            kwargs["transport"] = o["transport"]
        socket = Socket(op["url"], **kwargs)
        s = op["id"]
        socket.on_open(lambda: self.outcome(s=s, cb="open"))
        if o.get("close_code") is False:
            socket.on_close(lambda: self.outcome(s=s, cb="close"))
        else:
            socket.on_close(
                lambda event: self.outcome(s=s, cb="close", code=event.code)
            )
        socket.on_error(
            lambda error, transport, established: self.outcome(
                s=s, cb="error", established=established
            )
        )
        self.sockets[s] = socket

    def op_connect(self, op: dict[str, Any]) -> None:
        s = op["socket"]

        async def connect() -> None:
            try:
                await self.sockets[s].connect()
            except ConnectError:
                # API.md: the first connect raises ConnectError (phoenix.js
                # has no such result; the harness drops it, docs/differences.md).
                self.outcome(s=s, cb="connect_error")

        self.spawn(connect())

    def op_disconnect(self, op: dict[str, Any]) -> None:
        s = op["socket"]

        async def disconnect() -> None:
            await self.sockets[s].disconnect()
            if op.get("report", True):
                self.outcome(s=s, cb="disconnected")

        self.spawn(disconnect())

    def op_channel(self, op: dict[str, Any]) -> None:
        s, c = op["socket"], op["id"]
        channel = self.sockets[s].channel(op["topic"], params_of(op))
        channel.on_error(
            lambda reason: self.outcome(s=s, c=c, cb="error", payload=plain(reason))
        )
        channel.on_close(
            lambda payload: self.outcome(s=s, c=c, cb="close", payload=plain(payload))
        )
        for event in op.get("on", []):
            channel.on(event, self._on_event(s, c, event))
        self.channels[c] = (channel, s)

    # Callbacks are made by factories, not lambdas with default arguments:
    # our client passes as many arguments as a callback declares.
    def _on_event(self, s: str, c: str, event: str) -> Callable[[Any], None]:
        return lambda payload: self.outcome(s=s, c=c, on=event, payload=plain(payload))

    def _on_status(self, s: str, pid: str, status: str) -> Callable[[Any], None]:
        return lambda response: self.outcome(
            s=s, p=pid, status=status, payload=plain(response)
        )

    def _hook(self, pid: str, s: str, push: Push, statuses: Any) -> None:
        self.pushes[pid] = (push, s)
        for status in statuses:
            push.receive(status, self._on_status(s, pid, status))

    def op_join(self, op: dict[str, Any]) -> None:
        channel, s = self.channels[op["chan"]]
        push = channel.join(ms(op.get("timeout")))
        self._hook(op["push"], s, push, op.get("statuses", DEFAULT_STATUSES))

    def op_push(self, op: dict[str, Any]) -> None:
        channel, s = self.channels[op["chan"]]
        push = channel.push(op["event"], wire(op.get("payload")), ms(op.get("timeout")))
        self._hook(op["push"], s, push, op.get("statuses", DEFAULT_STATUSES))

    def op_leave(self, op: dict[str, Any]) -> None:
        channel, s = self.channels[op["chan"]]
        push = channel.leave(ms(op.get("timeout")))
        self._hook(op["push"], s, push, op.get("statuses", DEFAULT_STATUSES))

    def op_on(self, op: dict[str, Any]) -> None:
        channel, s = self.channels[op["chan"]]
        c, event, tag = op["chan"], op["event"], op["id"]
        self.bindings[tag] = channel.on(
            event,
            lambda payload: self.outcome(
                s=s, c=c, on=event, tag=tag, payload=plain(payload)
            ),
        )

    def op_off(self, op: dict[str, Any]) -> None:
        channel, _ = self.channels[op["chan"]]
        ref = self.bindings[op["id"]] if "id" in op else None
        channel.off(op["event"], ref)

    def op_resend(self, op: dict[str, Any]) -> None:
        self.pushes[op["push"]][0].resend(ms(op["timeout"]))

    def op_receive(self, op: dict[str, Any]) -> None:
        push, s = self.pushes[op["push"]]
        pid, status = op["push"], op["status"]
        extra = {"tag": op["tag"]} if "tag" in op else {}
        push.receive(
            status,
            lambda response: self.outcome(
                s=s, p=pid, status=status, **extra, payload=plain(response)
            ),
        )

    def op_presence(self, op: dict[str, Any]) -> None:
        channel, s = self.channels[op["chan"]]
        pr = op["id"]
        presence = Presence(channel)

        def metas(p: Any) -> Any:
            return None if p is None else plain(p["metas"])

        presence.on_join(
            lambda key, current, joined: self.outcome(
                s=s,
                pr=pr,
                cb="join",
                key=key,
                current=metas(current),
                joined=metas(joined),
            )
        )
        presence.on_leave(
            lambda key, current, left: self.outcome(
                s=s,
                pr=pr,
                cb="leave",
                key=key,
                current=metas(current),
                left=metas(left),
            )
        )
        presence.on_sync(
            lambda: self.outcome(
                s=s,
                pr=pr,
                cb="sync",
                list=presence.list(lambda key, p: [key, len(p["metas"])]),
            )
        )
        self.presences[pr] = presence
