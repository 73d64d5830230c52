"""The soak, CI-sized: faults at random (fixed seeds), invariants checked.

``scripts/soak.py`` runs the same engine for as long as you like; the
figures of a long run are in docs/reliability.md. Here a websocket soak of
about 15 s must see every fault kind at least once and break no invariant,
and a shorter long-poll soak does the same with the faults long-poll has.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from phoenix_channels import Socket
from phoenix_channels.server import demo_server
from phoenix_channels.testing import ChaosProxy, SoakConfig, SoakReport, run_soak
from phoenix_channels.testing.soak import ALL_FAULTS, NETWORK_FAULTS

WAIT = 5.0


def _assert_sound(report: SoakReport, config: SoakConfig) -> None:
    """What every soak report must show, beyond ``report.ok``."""
    assert report.ok, report.format()
    heals = report.all_heal_times()
    assert heals and max(heals) < config.heal_timeout
    # Every push made ended, once: the counts add up.
    assert sum(report.outcomes.values()) == report.pushes
    assert report.outcomes["ok"] > report.pushes / 2, report.format()
    assert report.by_event["noreply"].keys() <= {"timeout", "unmatched"}
    assert report.tasks["end"] <= report.tasks["baseline"]
    assert report.memory["end"] - report.memory["baseline"] <= config.memory_tolerance
    json.dumps(report.to_dict())  # the CLI's --json works


async def test_websocket_soak_sees_every_fault_and_breaks_no_invariant() -> None:
    """~15 s of 100 pushes/s on 10 channels with every fault kind injected:
    no violation, every fault healed, every kind seen, BufferFull held."""
    config = SoakConfig(seconds=15.0, seed=1, fault_length=(0.5, 1.2))
    report = await run_soak(config)
    _assert_sound(report, config)
    assert set(report.faults) == set(ALL_FAULTS), report.format()
    assert report.max_push_buffer <= config.max_buffered_pushes
    assert report.rejected > 0, "a down server never filled the push buffer"
    # A freeze and a stall are noticed by the heartbeat within two intervals.
    assert report.detect_times
    assert max(report.detect_times) <= 2 * config.heartbeat_interval + 0.3


async def test_longpoll_soak_breaks_no_invariant() -> None:
    """Long-poll through the same faults it can have (a freeze is noticed by
    the poll timeout, so it is left to the long runs)."""
    faults = ("cut", "close_mid_frame", "down", "crash", "churn", "drop", "restart")
    config = SoakConfig(
        seconds=5.0,
        seed=2,
        transport="longpoll",
        faults=faults,
        rate=50.0,
        push_timeout=1.0,
        poll_timeout=1.2,
    )
    report = await run_soak(config)
    _assert_sound(report, config)
    assert len(report.faults) >= 3, report.format()


def test_config_refuses_what_it_cannot_do() -> None:
    """Unknown faults, server faults without the bundled server, and a URL
    the proxy cannot forward are refused before anything starts."""
    with pytest.raises(ValueError, match="unknown fault"):
        SoakConfig(faults=["meteor"]).fault_kinds()
    with pytest.raises(ValueError, match="bundled server"):
        SoakConfig(url="ws://h:1/socket", faults=["restart"]).fault_kinds()
    assert SoakConfig(url="ws://h:1/socket").fault_kinds() == (
        *NETWORK_FAULTS,
        "churn",
    )
    assert "stall" not in SoakConfig(transport="longpoll").fault_kinds()
    with pytest.raises(ValueError, match="ws://"):
        asyncio.run(run_soak(url="wss://example.com/socket", seconds=0))


async def test_soak_an_external_server_through_its_url() -> None:
    """``url=`` soaks a server the engine did not start (network faults)."""
    async with demo_server(port=0) as server:
        config = SoakConfig(
            url=server.url,
            seconds=1.0,
            seed=3,
            events={"echo": 1.0},
            faults=("cut", "down", "churn"),
            push_timeout=1.0,
            trace_memory=False,
        )
        report = await run_soak(config)
        assert report.ok, report.format()
        assert report.target == server.url
        assert sum(report.faults.values()) >= 1
        assert not server.connections


async def test_the_proxy_forgets_connections_that_ended() -> None:
    """A long soak makes thousands of connections: one that ends by itself
    leaves nothing behind in the proxy."""
    async with demo_server(port=0) as server, ChaosProxy(server.port) as proxy:
        for _ in range(3):
            async with Socket(proxy.url()) as socket:
                await asyncio.wait_for(socket.ping(), WAIT)
        # The pumps end at EOF on both sides; nothing else remains after them.
        await asyncio.wait_for(asyncio.gather(*list(proxy._tasks)), WAIT)
        assert not proxy.links
        assert not proxy._tasks
        assert proxy.forwarded == 3
