"""Auth token, handshake headers, and secrets kept out of logs, reprs and errors.

Against the bundled server with a connect hook that checks what arrived.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from phoenix_channels import ConnectError, PushError, Socket
from phoenix_channels.server import (
    ConnectInfo,
    Server,
    ServerChannel,
    accept,
    error,
    ok,
    refuse,
)
from phoenix_channels.server.connect import Accepted, Refused

WAIT = 5.0
TOKEN = "tok-7Hq2!s3cr3t+/="  # + / = exercise the base64 alphabet and padding
SECRETS = [TOKEN, "pw-hunter2", "sec-xyzzy", "api-tok-123"]


class Echo(ServerChannel):
    async def join(self, topic, payload, socket):  # type: ignore[no-untyped-def]
        return ok({"user": socket.assigns.get("user")})

    async def handle_in(self, event, payload, socket):  # type: ignore[no-untyped-def]
        return ok(payload) if event == "echo" else error({"reason": "unknown_event"})


class Gate:
    """A connect hook that wants the auth token and records what it saw."""

    def __init__(self) -> None:
        self.seen: list[ConnectInfo] = []

    def __call__(self, info: ConnectInfo) -> Accepted | Refused:
        self.seen.append(info)
        if info.auth_token != TOKEN:
            return refuse()
        return accept({"user": info.params.get("user")})


@pytest.fixture
async def gated() -> AsyncIterator[tuple[Server, Gate]]:
    gate = Gate()
    async with Server({"room:*": Echo}, port=0, connect=gate) as server:
        yield server, gate


async def test_auth_token_reaches_the_connect_hook(gated: tuple[Server, Gate]) -> None:
    """auth_token travels in Sec-WebSocket-Protocol as phoenix.js sends it."""
    server, gate = gated
    async with Socket(server.url, auth_token=TOKEN, params={"user": "u1"}) as socket:
        reply = await asyncio.wait_for(socket.channel("room:1").join(), WAIT)
    assert reply == {"user": "u1"}
    assert gate.seen[-1].auth_token == TOKEN
    protocols = gate.seen[-1].headers["sec-websocket-protocol"]
    assert protocols.startswith("phoenix, base64url.bearer.phx.")
    assert "=" not in protocols


async def test_wrong_auth_token_is_a_connect_error(gated: tuple[Server, Gate]) -> None:
    """A refused handshake (HTTP 403) raises ConnectError on the first connect."""
    server, _ = gated
    socket = Socket(server.url, auth_token="wrong")
    with pytest.raises(ConnectError, match="403"):
        await asyncio.wait_for(socket.connect(), WAIT)
    assert socket.connection_state == "closed"


async def test_auth_token_callable_is_read_at_each_connect(
    gated: tuple[Server, Gate],
) -> None:
    """A callable auth_token is called again for every connection attempt."""
    server, gate = gated
    tokens = iter([TOKEN, TOKEN])
    socket = Socket(server.url, auth_token=lambda: next(tokens))
    await asyncio.wait_for(socket.connect(), WAIT)
    await socket.disconnect()
    await asyncio.wait_for(socket.connect(), WAIT)
    await socket.disconnect()
    assert [info.auth_token for info in gate.seen] == [TOKEN, TOKEN]


@pytest.mark.parametrize("transport", ["websocket", "longpoll"])
async def test_headers_are_sent_on_the_handshake(
    gated: tuple[Server, Gate], transport: str
) -> None:
    """Socket(headers=...) go out with the websocket upgrade request, and with
    the long-poll requests."""
    server, gate = gated
    headers = {"X-Client": "tests", "User-Agent": "phoenix-channels-tests"}
    async with Socket(
        server.url, auth_token=TOKEN, headers=headers, transport=transport
    ):
        pass
    assert gate.seen[-1].headers["x-client"] == "tests"
    assert gate.seen[-1].headers["user-agent"] == "phoenix-channels-tests"


@pytest.mark.parametrize("transport", ["websocket", "longpoll"])
async def test_secrets_never_appear_in_logs_reprs_or_errors(
    gated: tuple[Server, Gate], caplog: pytest.LogCaptureFixture, transport: str
) -> None:
    """Tokens and params named token/password/secret stay out of every log line
    (at DEBUG), repr and error message, on success and on failure."""
    server, _ = gated
    caplog.set_level(logging.DEBUG)
    kwargs = {"transport": transport}
    params = {"user": "u1", "password": SECRETS[1], "client_secret": SECRETS[2]}
    params["api_token"] = SECRETS[3]
    texts: list[str] = []
    async with Socket(server.url, auth_token=TOKEN, params=params, **kwargs) as socket:
        channel = socket.channel("room:1", {"user_token": SECRETS[3]})
        await asyncio.wait_for(channel.join(), WAIT)
        push = channel.push("nope", {})
        with pytest.raises(PushError) as push_error:
            await asyncio.wait_for(push, WAIT)
        texts += [repr(socket), repr(channel), repr(push), str(push_error.value)]
    refused = Socket(server.url, auth_token="x" + TOKEN, params=params, **kwargs)
    with pytest.raises(ConnectError) as connect_error:
        await asyncio.wait_for(refused.connect(), WAIT)
    texts += [repr(refused), str(connect_error.value), repr(connect_error.value)]
    unreachable = Socket(
        "ws://127.0.0.1:9/socket", auth_token=TOKEN, params=params, **kwargs
    )
    with pytest.raises(ConnectError) as unreachable_error:
        await asyncio.wait_for(unreachable.connect(), WAIT)
    texts.append(str(unreachable_error.value))
    texts += [record.getMessage() for record in caplog.records]
    texts += [str(record.exc_info[1]) for record in caplog.records if record.exc_info]
    assert caplog.records, "expected debug logging to have happened"
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked into: {text}"
