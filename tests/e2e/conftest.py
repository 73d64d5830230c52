"""Fixtures for the end-to-end tests: our client against the bundled demo
server over real loopback sockets.

Every server listens on a free port and is always stopped; every socket a
test makes is always disconnected; every wait is bounded by ``WAIT``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from phoenix_channels import Channel, Socket
from phoenix_channels.server import Server, demo_server
from tests.server.conftest import no_loop_errors  # noqa: F401 - autouse, shared

#: The bound of every wait in tests/e2e (seconds).
WAIT = 5.0

#: Fast rejoin/reconnect backoff, so healing takes milliseconds.
FAST: dict[str, Any] = {
    "rejoin_after": lambda tries: 0.05,
    "reconnect_after": lambda tries: 0.05,
}


class Calls:
    """A callback that records its calls; tests await conditions on them.

    Use it wherever the client takes a callback; it accepts any arguments.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self._waiters: list[tuple[Callable[[Calls], bool], asyncio.Future[None]]] = []

    def __call__(self, *args: Any) -> None:
        self.calls.append(args)
        for predicate, future in list(self._waiters):
            if not future.done() and predicate(self):
                future.set_result(None)

    def __len__(self) -> int:
        return len(self.calls)

    @property
    def first_args(self) -> list[Any]:
        """The first argument of every call (a payload, a key, ...)."""
        return [call[0] if call else None for call in self.calls]

    async def wait(
        self, predicate: Callable[[Calls], bool] | None = None, timeout: float = WAIT
    ) -> None:
        """Wait (bounded) until ``predicate(self)``; by default, one call."""
        check = predicate or (lambda calls: len(calls) >= 1)
        if check(self):
            return
        future = asyncio.get_running_loop().create_future()
        entry = (check, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"condition not met within {timeout} s; calls: {self.calls!r}"
            ) from None
        finally:
            self._waiters.remove(entry)

    async def wait_count(self, count: int, timeout: float = WAIT) -> None:
        """Wait (bounded) until at least ``count`` calls were made."""
        await self.wait(lambda calls: len(calls) >= count, timeout)


async def until(
    condition: Callable[[], bool], what: str, timeout: float = WAIT
) -> None:
    """Wait until ``condition()`` holds, checking every few ms, bounded.

    For state that no callback announces (a channel state, a server's
    connection list); everything else awaits callbacks or pushes.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.005)


async def bounded(awaitable: Awaitable[Any], timeout: float = WAIT) -> Any:
    """``await`` with a bound."""
    return await asyncio.wait_for(awaitable, timeout)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """The demo server on a free loopback port, always stopped."""
    async with demo_server(port=0) as server:
        yield server


@pytest.fixture(params=["2.0.0", "1.0.0"])
def vsn(request: pytest.FixtureRequest) -> str:
    """The serializer version; tests that use sockets run with both."""
    return str(request.param)


SocketFactory = Callable[..., Awaitable[Socket]]


@pytest.fixture
async def connect(server: Server, vsn: str) -> AsyncIterator[SocketFactory]:
    """``await connect(**options)``: a connected Socket to ``server``.

    Options go to :class:`Socket` (``url=`` overrides the endpoint); every
    socket made is disconnected at the end, whatever the test did.
    """
    sockets: list[Socket] = []

    async def make(url: str | None = None, **options: Any) -> Socket:
        options.setdefault("vsn", vsn)
        socket = Socket(url or server.url, **options)
        sockets.append(socket)
        await bounded(socket.connect())
        return socket

    try:
        yield make
    finally:
        for socket in sockets:
            try:
                await asyncio.wait_for(socket.disconnect(), WAIT)
            except Exception:  # noqa: BLE001 - teardown must reach every socket
                logging.getLogger(__name__).exception("disconnect failed")


@pytest.fixture
async def socket(connect: SocketFactory) -> Socket:
    """One connected socket with a fast rejoin/reconnect backoff."""
    return await connect(**FAST)


async def joined(socket: Socket, topic: str, params: Any = None) -> Channel:
    """A channel of ``socket`` on ``topic``, joined (bounded)."""
    channel = socket.channel(topic, params)
    await bounded(channel.join())
    return channel


@pytest.fixture(autouse=True)
def no_task_failures(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test if a server task died, or a client callback raised."""
    yield
    failures = [
        r
        for r in caplog.records
        if r.getMessage() == "! server task failed"
        or r.getMessage().startswith("! callback ")
        or r.getMessage() == "! async callback raised"
    ]
    assert not failures, failures
