"""Fixtures for the bundled server: every server listens on a free port and is
always stopped, whatever the test does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from phoenix_channels.server import Server, demo_server


@pytest.fixture
async def demo() -> AsyncIterator[Server]:
    """The demo server on a free loopback port."""
    async with demo_server(port=0) as server:
        yield server


@pytest.fixture
async def recorded_demo() -> AsyncIterator[Server]:
    """The demo server, recording every frame."""
    async with demo_server(port=0, record_frames=True) as server:
        yield server


@pytest.fixture(autouse=True)
async def no_loop_errors() -> AsyncIterator[list[dict[str, object]]]:
    """Fail a test if anything reached the event loop's exception handler
    (a protocol callback that raised, a task exception nobody retrieved)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield errors
    loop.set_exception_handler(previous)
    assert not errors, errors


@pytest.fixture(autouse=True)
def no_server_task_failures(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test if a server task died of an unexpected exception."""
    yield
    failures = [r for r in caplog.records if r.getMessage() == "! server task failed"]
    assert not failures, failures
