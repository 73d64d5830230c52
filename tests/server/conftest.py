"""Fixtures for the bundled server: every server listens on a free port and is
always stopped, whatever the test does."""

from __future__ import annotations

from collections.abc import AsyncIterator

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
