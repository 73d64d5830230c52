"""A long-poll server that misbehaves: clear errors, no hang, no busy loop.

Scripted with the bundled server's HTTP seam (``Server.route_http``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest

from phoenix_channels import ConnectError, Socket
from phoenix_channels.server import HttpRequest, HttpResponse, Server

WAIT = 5.0
Script = Callable[[HttpRequest], HttpResponse]


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Script], str]]:
    """A server whose /bad/longpoll answers with the given script."""
    async with Server({}, port=0) as server:

        def use(script: Script) -> str:
            async def handle(request: HttpRequest) -> HttpResponse:
                return script(request)

            server.route_http("/bad/longpoll", handle)
            return f"ws://127.0.0.1:{server.port}/bad"

        yield use


def body(value: object, status: int = 200) -> HttpResponse:
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    return HttpResponse(status, (("content-type", "application/json"),), data)


@pytest.mark.parametrize(
    "answer",
    [
        body(b"<html>not json</html>"),
        body(b""),
        body({"status": 302}),
        body({"status": 500}),
        body({"status": 403}),
        body({"unexpected": True}),
        body(b"[1, 2]"),
        body({"status": 200}, status=502),
    ],
    ids=["html", "empty", "302", "500", "403", "no-status", "array", "http-502"],
)
async def test_unusable_first_answer_is_a_connect_error(
    scripted: Callable[[Script], str], answer: HttpResponse
) -> None:
    """Whatever a broken server answers first, connect() raises ConnectError
    promptly and nothing keeps retrying."""
    url = scripted(lambda request: answer)
    socket = Socket(url, transport="longpoll")
    with pytest.raises(ConnectError):
        await asyncio.wait_for(socket.connect(), WAIT)
    assert socket.connection_state == "closed"
    assert not socket._reconnect_timer.is_scheduled


async def test_a_server_answering_410_to_every_poll_is_retried_on_a_growing_backoff(
    scripted: Callable[[Script], str],
) -> None:
    """Each poll after the handshake says the session is gone: the socket
    reconnects on the growing schedule (tries 1, 2, 3, ...), not every 10 ms."""
    url = scripted(lambda request: body({"status": 410, "token": "t"}))
    tries: list[int] = []
    reached = asyncio.Event()

    def backoff(n: int) -> float:
        tries.append(n)
        if n == 4:
            reached.set()
        return 0.01

    socket = Socket(url, transport="longpoll", reconnect_after=backoff)
    await asyncio.wait_for(socket.connect(), WAIT)
    await asyncio.wait_for(reached.wait(), WAIT)
    await asyncio.wait_for(socket.disconnect(), WAIT)
    assert tries[:4] == [1, 2, 3, 4]
