"""TLS: wss:// and https:// verify certificates by default.

A throwaway CA made in the test (trustme) signs the bundled server's
certificate for 127.0.0.1; clients trust it only when told to.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme

from phoenix_channels import ConnectError, Socket
from phoenix_channels.server import Server, demo_server

WAIT = 5.0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_server(ca: trustme.CA) -> AsyncIterator[Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    async with demo_server(port=0, ssl=context) as server:
        yield server


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    yield str(path)


@pytest.mark.parametrize("transport", ["websocket", "longpoll"])
async def test_trusted_certificate_connects(
    tls_server: Server, client_context: ssl.SSLContext, transport: str
) -> None:
    """With the CA in its SSLContext the client joins and pushes over TLS."""
    assert tls_server.url.startswith("wss://")
    async with Socket(tls_server.url, ssl=client_context, transport=transport) as s:
        channel = s.channel("room:tls")
        await asyncio.wait_for(channel.join(), WAIT)
        assert await asyncio.wait_for(channel.push("echo", {"a": 1}), WAIT) == {"a": 1}


@pytest.mark.parametrize("transport", ["websocket", "longpoll"])
async def test_unknown_ca_is_refused_by_default(
    tls_server: Server, transport: str
) -> None:
    """Certificates are verified by default: an unknown CA is a ConnectError."""
    socket = Socket(tls_server.url, transport=transport)
    with pytest.raises(ConnectError, match="(?i)certificate|ssl"):
        await asyncio.wait_for(socket.connect(), WAIT)
    assert socket.connection_state == "closed"


@pytest.mark.parametrize("transport", ["websocket", "longpoll"])
async def test_ssl_false_skips_verification_with_a_warning(
    tls_server: Server, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    """ssl=False connects to an untrusted server and logs a warning saying so."""
    caplog.set_level(logging.WARNING, logger="phoenix_channels")
    async with Socket(tls_server.url, ssl=False, transport=transport) as socket:
        assert socket.is_connected()
    assert any("verification is disabled" in r.getMessage() for r in caplog.records)


async def test_cli_push_trusts_a_ca_file(tls_server: Server, ca_file: str) -> None:
    """phoenix-channels push --cafile talks to a TLS server it could not verify
    otherwise (exit 0), and fails with exit 3 without it."""
    import sys

    async def run(*extra: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "phoenix_channels", "push", tls_server.url,
            "room:tls", "echo", '{"a": 1}', "--timeout", "3", *extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode is not None
        return process.returncode, out.decode()

    assert await run("--cafile", ca_file) == (0, '{"a": 1}\n')
    code, _ = await run()
    assert code == 3
