"""``phoenix-channels connect``: an interactive console on one socket.

Commands come from stdin, a terminal or a pipe, one per line::

    join TOPIC [JSON]        push TOPIC EVENT [JSON]        leave TOPIC
    help                     quit

Output, one line each, so a script can read it::

    joined TOPIC RESPONSE | join error TOPIC RESPONSE | join timeout TOPIC
    reply TOPIC EVENT STATUS RESPONSE
    message TOPIC EVENT PAYLOAD          (pushes and broadcasts from the server)

``JSON`` is the rest of the line, as typed (or in single quotes, as in a
shell). ``leave`` first waits for the
replies due on that topic, and at the end of input the console waits for
every reply still due (each bounded by the push timeout), then exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
from typing import Any

from ..channel import Channel
from ..errors import ConnectError, PhoenixError
from ..message import HEARTBEAT_TOPIC, PHX_REPLY, Message
from ..push import Push
from ..socket import Socket
from .options import make_socket, parse_json, parse_pairs

__all__ = ["Console", "run_console"]

HELP = (
    "commands: join TOPIC [JSON] | push TOPIC EVENT [JSON] | leave TOPIC | help | quit"
)


async def run_console(args: argparse.Namespace) -> int:
    try:
        socket = make_socket(args)
        join_params = parse_pairs(args.join_param, "--join-param")
        await socket.connect()
    except (ValueError, ConnectError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    console = Console(socket, join_params)
    try:
        if sys.stdin.isatty():
            print(f"connected to {args.url}; {HELP}", file=sys.stderr)
        await console.run(_stdin_lines())
    finally:
        await socket.disconnect()
    return 0


class Console:
    def __init__(self, socket: Socket, join_params: dict[str, str]) -> None:
        self.socket = socket
        self.join_params = join_params
        self.channels: dict[str, Channel] = {}
        self.pushes: dict[str, list[Push]] = {}
        socket.on_message(self._on_message)

    async def run(self, lines: asyncio.Queue[str | None]) -> None:
        while (line := await lines.get()) is not None:
            try:
                if not await self.execute(line):
                    break
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr, flush=True)
        for topic in list(self.pushes):
            await self._drain(topic)

    async def execute(self, line: str) -> bool:
        """Run one command line; False means quit."""
        command, _, rest = line.strip().partition(" ")
        if not command:
            return True
        if command in ("quit", "exit"):
            return False
        if command == "help":
            print(HELP, flush=True)
        elif command == "join" and rest:
            topic, _, params = rest.strip().partition(" ")
            self._join(topic, _object(params) if params.strip() else {})
        elif command == "push" and len(rest.split(maxsplit=1)) == 2:
            topic, event, *payload = rest.split(maxsplit=2)
            self._push(topic, event, _object(payload[0]) if payload else {})
        elif command == "leave" and len(rest.split()) == 1:
            topic = rest.strip()
            channel = self._channel(topic)
            await self._drain(topic)
            channel.leave()
            del self.channels[topic]
            _out("left", topic)
        else:
            raise ValueError(f"cannot read {line.strip()!r}; {HELP}")
        return True

    def _join(self, topic: str, params: dict[str, Any]) -> None:
        if topic in self.channels:
            raise ValueError(f"already joined {topic}; leave it first")
        channel = self.socket.channel(topic, {**self.join_params, **params})
        self.channels[topic] = channel

        def report(status: str, response: Any) -> None:
            if channel.state != "closed":  # a join left meanwhile is not news
                _out({"ok": "joined"}.get(status, f"join {status}"), topic, response)

        join = channel.join()
        self.pushes.setdefault(topic, []).append(join)
        for status in ("ok", "error", "timeout"):
            join.receive(status, lambda r, s=status: report(s, r))

    def _push(self, topic: str, event: str, payload: dict[str, Any]) -> None:
        push = self._channel(topic).push(event, payload)
        self.pushes.setdefault(topic, []).append(push)
        for status in ("ok", "error", "timeout"):
            push.receive(status, lambda r, s=status: _out("reply", topic, event, s, r))

    def _channel(self, topic: str) -> Channel:
        channel = self.channels.get(topic)
        if channel is None:
            raise ValueError(f"not joined to {topic}; use: join {topic}")
        return channel

    def _on_message(self, msg: Message) -> None:
        if msg.event == PHX_REPLY or msg.topic == HEARTBEAT_TOPIC:
            return
        if msg.event.startswith("phx_"):
            _out(msg.event, msg.topic, msg.payload)
        else:
            _out("message", msg.topic, msg.event, msg.payload)

    async def _drain(self, topic: str) -> None:
        """Wait for the replies due on ``topic``; each push ends by its timeout."""
        for push in self.pushes.pop(topic, []):
            try:
                await push
            except PhoenixError:
                pass  # its outcome was printed by its receive hooks


def _object(text: str) -> dict[str, Any]:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        text = text[1:-1]  # quoted as in a shell: '{"a": 1}'
    value = parse_json(text)
    if not isinstance(value, dict):
        raise ValueError(f"payload must be a JSON object, got {text!r}")
    return value


def _out(*parts: Any) -> None:
    words = [
        p if isinstance(p, str) else json.dumps(p, ensure_ascii=False) for p in parts
    ]
    print(" ".join(words), flush=True)


def _stdin_lines() -> asyncio.Queue[str | None]:
    """Lines of stdin, read by a daemon thread so exiting never waits on it."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="stdin", daemon=True).start()
    return queue
