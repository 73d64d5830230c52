"""The demo channels of API.md, as the bundled server runs them.

Wire behaviour matches the Phoenix 1.7.24 app the golden transcripts were
recorded from (``../shared/phoenix-transcripts``):

- socket at ``/socket``; connect param ``token=bad`` is refused (403);
- ``room:*`` and ``realtime:*`` (:class:`RoomChannel`): join ``room:private``
  is refused ``{"reason": "unauthorized"}``, any other topic joins with
  ``{"joined": TOPIC, "params": PARAMS}``, after ``delay_ms`` if given; events
  ``echo``, ``fail``, ``noreply``, ``slow``, ``crash``, ``broadcast``,
  ``push_me``, ``stop``, ``count``, ``binary_echo``, ``binary_push``, anything
  else ``{"reason": "unknown_event"}``;
- ``presence:*`` (:class:`PresenceChannel`): join replies
  ``{"joined": TOPIC}``, then tracks ``user_id`` (as a string, ``""`` when
  missing) with ``{"online_at": "<unix seconds>"}`` and pushes
  ``presence_state``; ``echo`` works, everything else is ``unknown_event``.

Run it with ``phoenix-channels serve`` or::

    asyncio.run(serve_forever(port=4000))
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .channel import (
    ChannelSocket,
    NoReply,
    Reply,
    ServerChannel,
    Stop,
    error,
    noreply,
    ok,
    stop,
)
from .connect import Accepted, ConnectInfo, Refused, accept, refuse
from .server import Server

__all__ = [
    "DEMO_CHANNELS",
    "PresenceChannel",
    "RoomChannel",
    "demo_connect",
    "demo_server",
    "serve_forever",
]

UNKNOWN_EVENT = {"reason": "unknown_event"}


def demo_connect(info: ConnectInfo) -> Accepted | Refused:
    """Refuse ``token=bad``; accept everything else."""
    return refuse() if info.params.get("token") == "bad" else accept()


class RoomChannel(ServerChannel):
    """``room:*`` and ``realtime:*``."""

    def __init__(self) -> None:
        self.count = 0

    async def join(self, topic: str, payload: Any, socket: ChannelSocket) -> Reply:
        if topic == "room:private":
            return error({"reason": "unauthorized"})
        if isinstance(payload, dict):
            delay = _milliseconds(payload.get("delay_ms"))
            if delay:
                # Runs inside the connection: it blocks every frame (fact 11).
                await asyncio.sleep(delay)
        return ok({"joined": topic, "params": payload})

    async def handle_in(
        self, event: str, payload: Any, socket: ChannelSocket
    ) -> Reply | NoReply | Stop:
        handler = _ROOM_EVENTS.get(event) if isinstance(event, str) else None
        if handler is None:
            return error(UNKNOWN_EVENT)
        return await handler(self, payload, socket)

    async def _echo(self, payload: Any, socket: ChannelSocket) -> Reply:
        return ok(payload)

    async def _fail(self, payload: Any, socket: ChannelSocket) -> Reply:
        return error({"errors": {"title": ["can't be blank"]}})

    async def _noreply(self, payload: Any, socket: ChannelSocket) -> NoReply:
        return noreply()

    async def _slow(self, payload: Any, socket: ChannelSocket) -> Reply:
        if isinstance(payload, dict):
            await asyncio.sleep(_milliseconds(payload.get("ms")))
        return ok(payload)

    async def _crash(self, payload: Any, socket: ChannelSocket) -> Reply:
        raise RuntimeError("crash requested by the client")

    async def _broadcast(self, payload: Any, socket: ChannelSocket) -> Reply:
        socket.broadcast("broadcasted", payload)
        return ok(payload)

    async def _push_me(self, payload: Any, socket: ChannelSocket) -> Reply:
        socket.push("pushed", payload)
        return ok(payload)

    async def _stop(self, payload: Any, socket: ChannelSocket) -> Stop:
        return stop("normal", reply=ok({"bye": True}))

    async def _count(self, payload: Any, socket: ChannelSocket) -> Reply:
        self.count += 1
        return ok({"count": self.count})

    async def _binary_echo(self, payload: Any, socket: ChannelSocket) -> Reply:
        if not isinstance(payload, bytes):
            return error(UNKNOWN_EVENT)  # a JSON binary_echo falls through (fact 5)
        return ok(payload)

    async def _binary_push(self, payload: Any, socket: ChannelSocket) -> Reply:
        if not isinstance(payload, bytes):
            return error(UNKNOWN_EVENT)
        socket.push("binary_pushed", payload)
        return ok({"size": len(payload)})


_RoomHandler = Callable[
    [RoomChannel, Any, ChannelSocket], Awaitable[Reply | NoReply | Stop]
]
_ROOM_EVENTS: dict[str, _RoomHandler] = {
    "echo": RoomChannel._echo,
    "fail": RoomChannel._fail,
    "noreply": RoomChannel._noreply,
    "slow": RoomChannel._slow,
    "crash": RoomChannel._crash,
    "broadcast": RoomChannel._broadcast,
    "push_me": RoomChannel._push_me,
    "stop": RoomChannel._stop,
    "count": RoomChannel._count,
    "binary_echo": RoomChannel._binary_echo,
    "binary_push": RoomChannel._binary_push,
}


class PresenceChannel(ServerChannel):
    """``presence:*``: Phoenix.Presence with ``user_id`` as the key."""

    async def join(self, topic: str, payload: Any, socket: ChannelSocket) -> Reply:
        user_id = payload.get("user_id") if isinstance(payload, dict) else None
        # Track after the reply, as `send(self(), :after_join)` does.
        socket.send_info(("after_join", _to_string(user_id)))
        return ok({"joined": topic})

    async def handle_info(self, message: Any, socket: ChannelSocket) -> NoReply:
        if isinstance(message, tuple) and message[0] == "after_join":
            presence = socket.presence
            presence.track(socket, message[1], {"online_at": str(int(time.time()))})
            socket.push("presence_state", presence.list(socket.topic))
        return noreply()

    async def handle_in(
        self, event: str, payload: Any, socket: ChannelSocket
    ) -> Reply | NoReply | Stop:
        if event == "echo":
            return ok(payload)
        return error(UNKNOWN_EVENT)


DEMO_CHANNELS: dict[str, Callable[[], ServerChannel]] = {
    "room:*": RoomChannel,
    "realtime:*": RoomChannel,
    "presence:*": PresenceChannel,
}


def demo_server(
    host: str = "127.0.0.1", port: int = 4000, max_channels: int = 100, **opts: Any
) -> Server:
    """A :class:`Server` with the demo channels and connect hook (not started).

    ``opts`` go to :class:`Server` (``record_frames``, ``max_message_size``, ...).
    """
    return Server(
        DEMO_CHANNELS,
        host=host,
        port=port,
        max_channels=max_channels,
        connect=opts.pop("connect", demo_connect),
        **opts,
    )


async def serve_forever(
    host: str = "127.0.0.1",
    port: int = 4000,
    max_channels: int = 100,
    *,
    ready: Callable[[Server], None] | None = None,
    **opts: Any,
) -> None:
    """Run the demo server until cancelled (the CLI's ``serve`` command).

    Args:
        ready: called with the started server (e.g. to print its URL).
    """
    server = demo_server(host, port, max_channels, **opts)
    await server.start()
    if ready is not None:
        ready(server)
    await server.serve_forever()


def _milliseconds(value: Any) -> float:
    """``value`` ms in seconds; anything but a non-negative number is 0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value) / 1000.0
    return 0.0


def _to_string(value: Any) -> str:
    """Elixir's ``to_string/1`` for JSON values: ``nil`` is ``""``, ``true``
    is ``"true"``, numbers print as numbers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
