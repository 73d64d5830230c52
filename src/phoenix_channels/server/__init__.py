"""phoenix_channels.server: a Phoenix-protocol server in pure Python.

It speaks the Phoenix Channels wire protocol as Phoenix 1.7.24 does (vsn
1.0.0 and 2.0.0, binary frames, heartbeats, joins, leaves, replies,
``phx_close``/``phx_error``, broadcasts, presence), so clients can be tested
without Elixir. The golden transcripts in ``shared/phoenix-transcripts`` are
its test vectors.

Write channels like ``Phoenix.Channel`` (see :mod:`.channel`), map topic
patterns to them, and run a :class:`Server`::

    import asyncio
    from phoenix_channels.server import Server, ServerChannel, ok, error

    class EchoChannel(ServerChannel):
        async def join(self, topic, payload, socket):
            return ok({"hello": topic})

        async def handle_in(self, event, payload, socket):
            if event == "echo":
                return ok(payload)
            return error({"reason": "unknown_event"})

    async def main():
        async with Server({"echo:*": EchoChannel}, port=4000) as server:
            print("listening on", server.url)   # ws://127.0.0.1:4000/socket
            await asyncio.Event().wait()

The same port serves the long-poll transport at ``<mount>/longpoll``
(``Server(longpoll_window=...)`` sets how long a poll is held).

Module layout:

- :mod:`.channel` handler API (``ServerChannel``, ``ChannelSocket``, results);
- :mod:`.connect` the connect hook (``accept``/``refuse``, ``ConnectInfo``);
- :mod:`.server` ``Server`` (listener, lifecycle, test helpers);
- :mod:`.connection` Phoenix socket logic of one connection;
- :mod:`.channel_server` a joined channel's mailbox and task;
- :mod:`.websocket` / :mod:`.longpoll` the transports, :mod:`.http` the
  plain HTTP under long-poll; :mod:`.wire` the codec;
- :mod:`.pubsub`, :mod:`.presence`, :mod:`.recorder`, :mod:`.router`;
- :mod:`.demo` the demo channels (``demo_server``, ``serve_forever``).
"""

from .channel import (
    ChannelFactory,
    ChannelSocket,
    NoReply,
    Reply,
    ServerChannel,
    Stop,
    TerminateReason,
    error,
    noreply,
    ok,
    reply,
    stop,
)
from .connect import Accepted, ConnectHook, ConnectInfo, Refused, accept, refuse
from .demo import demo_server, serve_forever
from .http import HttpHandler, HttpRequest, HttpResponse
from .longpoll import LongPollSession
from .presence import PresenceTracker
from .pubsub import PubSub
from .recorder import ConnectionRecord, FrameRecorder, RecordedFrame
from .server import DEFAULT_MAX_MESSAGE_SIZE, Server
from .websocket import WebSocketConnection

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Accepted",
    "ChannelFactory",
    "ChannelSocket",
    "ConnectHook",
    "ConnectInfo",
    "ConnectionRecord",
    "FrameRecorder",
    "HttpHandler",
    "HttpRequest",
    "HttpResponse",
    "LongPollSession",
    "NoReply",
    "PresenceTracker",
    "PubSub",
    "RecordedFrame",
    "Refused",
    "Reply",
    "Server",
    "ServerChannel",
    "Stop",
    "TerminateReason",
    "WebSocketConnection",
    "accept",
    "demo_server",
    "error",
    "noreply",
    "ok",
    "refuse",
    "reply",
    "serve_forever",
    "stop",
]
