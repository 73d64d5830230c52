"""The ``phoenix-channels`` command end to end: real subprocesses against a
bundled server started by the test. Every subprocess is bounded by a timeout
and killed if it outlives it."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import signal
import socket as socketlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import pytest

from phoenix_channels import JoinError, Socket
from phoenix_channels.server import Server

from .conftest import Calls, bounded, joined

#: The documented entry point is ``python -m phoenix_channels``; while the
#: package has no ``__main__`` (see the xfail below) the same ``main()`` runs
#: through ``-c``, so the commands themselves are still tested.
if importlib.util.find_spec("phoenix_channels.__main__") is not None:
    CLI = [sys.executable, "-m", "phoenix_channels"]
else:
    CLI = [
        sys.executable,
        "-c",
        "import sys; from phoenix_channels.cli import main; sys.exit(main())",
    ]

RUN_LIMIT = 20.0  # seconds any one command may take


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


async def run(
    *args: str, stdin: str | None = None, command: Sequence[str] = CLI
) -> Result:
    """Run the CLI with ``args``, bounded; the process never outlives this."""
    proc = await asyncio.create_subprocess_exec(
        *command,
        *args,
        stdin=asyncio.subprocess.PIPE
        if stdin is not None
        else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None),
            RUN_LIMIT,
        )
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socketlib.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- entry points and help ---------------------------------------------------


async def test_python_dash_m_phoenix_channels_runs_the_cli() -> None:
    """``python -m phoenix_channels --help`` prints the usage and exits 0."""
    result = await run("--help", command=[sys.executable, "-m", "phoenix_channels"])
    assert result.code == 0, result.err
    assert "usage: phoenix-channels" in result.out


@pytest.mark.parametrize(
    "command", [[], ["demo"], ["serve"], ["push"], ["connect"]], ids=str
)
async def test_help_exits_zero(command: list[str]) -> None:
    """``--help`` of the program and of each command prints usage and exits 0."""
    result = await run(*command, "--help")
    assert result.code == 0, result.err
    assert result.out.startswith("usage: phoenix-channels")


async def test_no_command_is_a_usage_error() -> None:
    """Without a command the CLI prints its usage to stderr and exits 2."""
    result = await run()
    assert result.code == 2
    assert "usage:" in result.err


# --- push ----------------------------------------------------------------------


@pytest.mark.parametrize("vsn", ["2.0.0", "1.0.0"])
async def test_push_ok_prints_the_reply_and_exits_0(server: Server, vsn: str) -> None:
    """``push URL room:lobby echo JSON`` prints the reply JSON and exits 0."""
    payload = {"a": 1, "u": "é✓"}
    result = await run(
        "push", server.url, "room:lobby", "echo", json.dumps(payload), "--vsn", vsn
    )
    assert result.code == 0, result.err
    assert json.loads(result.out) == payload
    assert "é✓" in result.out  # raw UTF-8, not \u escapes


async def test_push_join_params_reach_the_join(server: Server) -> None:
    """``--join-param`` values are the channel's join params."""
    result = await run(
        "push", server.url, "room:lobby", "count", "--join-param", "user=bob"
    )
    assert result.code == 0, result.err
    assert json.loads(result.out) == {"count": 1}


async def test_push_error_prints_the_response_and_exits_1(server: Server) -> None:
    """``push ... fail`` prints the error response and exits 1."""
    result = await run("push", server.url, "room:lobby", "fail")
    assert result.code == 1
    assert json.loads(result.out) == {"errors": {"title": ["can't be blank"]}}
    assert result.err.startswith("error:")


async def test_push_unknown_event_exits_1(server: Server) -> None:
    """An unknown event is an error reply: exit 1 with its response."""
    result = await run("push", server.url, "room:lobby", "nope")
    assert result.code == 1
    assert json.loads(result.out) == {"reason": "unknown_event"}


async def test_push_noreply_times_out_and_exits_2(server: Server) -> None:
    """``push ... noreply --timeout 0.3`` exits 2 after the timeout."""
    result = await run("push", server.url, "room:lobby", "noreply", "--timeout", "0.3")
    assert result.code == 2
    assert result.out == ""
    assert "error:" in result.err


async def test_push_refused_join_exits_3(server: Server) -> None:
    """A refused join (room:private) exits 3."""
    result = await run("push", server.url, "room:private", "echo", "{}")
    assert result.code == 3
    assert result.out == ""
    assert "unauthorized" in result.err


async def test_push_to_an_unreachable_port_exits_3() -> None:
    """Nothing listening on the port: exit 3."""
    url = f"ws://127.0.0.1:{free_port()}/socket"
    result = await run("push", url, "room:lobby", "echo", "{}", "--timeout", "2")
    assert result.code == 3
    assert result.err.startswith("error:")


async def test_push_with_a_refused_token_exits_3(server: Server) -> None:
    """``--param token=bad`` is refused at connect: exit 3, the token not shown."""
    result = await run("push", server.url, "room:lobby", "echo", "--param", "token=bad")
    assert result.code == 3
    assert "403" in result.err


async def test_push_slow_waits_for_the_delayed_reply(server: Server) -> None:
    """``push ... slow`` waits for a delayed reply and prints it."""
    result = await run("push", server.url, "room:lobby", "slow", '{"ms": 200}')
    assert result.code == 0, result.err
    assert json.loads(result.out) == {"ms": 200}


# --- connect -------------------------------------------------------------------


async def test_connect_console_runs_a_piped_script(server: Server) -> None:
    """Piped commands print joined, reply and message lines, then exit 0 at EOF."""
    script = (
        "join room:lobby\n"
        "push room:lobby echo '{\"a\":1}'\n"
        "push room:lobby broadcast '{\"b\":2}'\n"
    )
    result = await run("connect", server.url, stdin=script)
    assert result.code == 0, result.err
    assert result.lines == [
        'joined room:lobby {"joined": "room:lobby", "params": {}}',
        'reply room:lobby echo ok {"a": 1}',
        'message room:lobby broadcasted {"b": 2}',
        'reply room:lobby broadcast ok {"b": 2}',
    ]


async def test_connect_console_shows_broadcasts_from_others(server: Server) -> None:
    """The console prints a broadcast another client sends to its topic."""
    other = Socket(server.url)
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "connect",
        server.url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(b"join room:lobby\n")
        await proc.stdin.drain()
        line = await bounded(proc.stdout.readline())
        assert line.decode().startswith("joined room:lobby")
        await bounded(other.connect())
        channel = await joined(other, "room:lobby")
        await bounded(channel.push("broadcast", {"from": "other"}))
        line = await bounded(proc.stdout.readline())
        assert line.decode().rstrip("\n") == (
            'message room:lobby broadcasted {"from": "other"}'
        )
        proc.stdin.close()
        assert await bounded(proc.wait()) == 0
    finally:
        await other.disconnect()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_connect_console_reports_join_errors(server: Server) -> None:
    """A refused join prints ``join error TOPIC RESPONSE``."""
    result = await run("connect", server.url, stdin="join room:private\n")
    assert result.code == 0, result.err
    assert result.lines[0] == 'join error room:private {"reason": "unauthorized"}'


async def test_connect_console_rejects_a_bad_line(server: Server) -> None:
    """An unknown command prints an error to stderr and the console goes on."""
    result = await run("connect", server.url, stdin="frobnicate\njoin room:lobby\n")
    assert result.code == 0
    assert "error:" in result.err
    assert result.lines == ['joined room:lobby {"joined": "room:lobby", "params": {}}']


async def test_connect_with_a_refused_token_exits_3(server: Server) -> None:
    """``connect --param token=bad`` exits 3 before reading commands."""
    result = await run("connect", server.url, "--param", "token=bad", stdin="")
    assert result.code == 3


async def test_connect_console_takes_json_as_typed(server: Server) -> None:
    """``push room:lobby echo {"a":1}`` (JSON not quoted) pushes that JSON."""
    script = 'join room:lobby\npush room:lobby echo {"a":1}\n'
    result = await run("connect", server.url, stdin=script)
    assert result.code == 0
    assert 'reply room:lobby echo ok {"a": 1}' in result.lines


async def test_connect_console_waits_for_replies_due_at_eof(server: Server) -> None:
    """At EOF the console waits for the replies still due, also of pushes still
    waiting for their join (here a join delayed by 200 ms)."""
    script = (
        "join room:lobby '{\"delay_ms\":200}'\npush room:lobby slow '{\"ms\":300}'\n"
    )
    result = await run("connect", server.url, stdin=script)
    assert result.code == 0, result.err
    assert result.lines[-1] == 'reply room:lobby slow ok {"ms": 300}'


async def test_connect_console_documented_script_with_leave(server: Server) -> None:
    """join, push echo, push broadcast, leave, EOF prints the documented lines.

    The join is delayed 100 ms so that every line is read before its reply:
    a piped script must not depend on how fast the server answers."""
    script = (
        "join room:lobby '{\"delay_ms\":100}'\n"
        "push room:lobby echo '{\"a\":1}'\n"
        "push room:lobby broadcast '{\"b\":2}'\n"
        "leave room:lobby\n"
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await run("connect", server.url, "--timeout", "2", stdin=script)
    assert result.code == 0, result.err
    assert loop.time() - started < 2
    lines = [line for line in result.lines if not line.startswith("phx_close ")]
    assert lines == [
        'joined room:lobby {"joined": "room:lobby", "params": {"delay_ms": 100}}',
        'reply room:lobby echo ok {"a": 1}',
        'message room:lobby broadcasted {"b": 2}',
        'reply room:lobby broadcast ok {"b": 2}',
        "left room:lobby",
    ]


# --- demo ----------------------------------------------------------------------


async def test_demo_passes_its_seven_scenarios() -> None:
    """``demo`` runs the seven push scenarios against its own server: 7 PASS
    lines, exit 0."""
    result = await run("demo")
    assert result.code == 0, result.out + result.err
    passes = [line for line in result.lines if line.startswith("PASS")]
    names = [line.split()[1] for line in passes]
    assert names == ["ok", "error", "timeout", "resend", "retry", "batch", "monitoring"]
    assert not any(line.startswith("FAIL") for line in result.lines)
    assert re.search(r"ws://127\.0\.0\.1:\d+/socket", result.out)


async def test_demo_against_a_given_url(server: Server) -> None:
    """``demo --url`` runs the scenarios against an existing server."""
    result = await run("demo", "--url", server.url, "--vsn", "1.0.0")
    assert result.code == 0, result.out + result.err
    assert sum(line.startswith("PASS") for line in result.lines) == 7


# --- serve ---------------------------------------------------------------------


Serving = tuple[asyncio.subprocess.Process, str]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Serving]]]:
    """``await serve(*options)``: ``serve --port P`` running on a free port,
    with its URL; every process started is killed at the end."""
    procs: list[asyncio.subprocess.Process] = []

    async def start(*options: str) -> Serving:
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            *CLI,
            "serve",
            "--port",
            str(port),
            *options,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = (await bounded(proc.stdout.readline(), RUN_LIMIT)).decode()
        url = f"ws://127.0.0.1:{port}/socket"
        assert line.strip() == f"serving the demo channels at {url}"
        return proc, url

    try:
        yield start
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_serve_stops_on_sigint_and_closes_clients_with_1001(
    serve: Callable[..., Awaitable[Serving]],
) -> None:
    """``serve --port P`` serves the demo channels; SIGINT (Ctrl-C) stops it
    promptly, closing the clients with 1001 "going away"."""
    proc, url = await serve()
    client = Socket(url, reconnect_after=lambda n: 60.0)
    try:
        await bounded(client.connect())
        channel = await joined(client, "room:lobby")
        assert await bounded(channel.push("echo", {"via": "serve"})) == {"via": "serve"}
        closes = Calls()
        client.on_close(closes)
        proc.send_signal(signal.SIGINT)
        code = await bounded(proc.wait())
        await closes.wait()
    finally:
        await client.disconnect()
    assert code in (0, 130)
    assert closes.first_args[0].code == 1001


async def test_serve_stops_on_sigterm(
    serve: Callable[..., Awaitable[Serving]],
) -> None:
    """SIGTERM stops ``serve`` promptly; the client sees its connection end."""
    proc, url = await serve()
    client = Socket(url, reconnect_after=lambda n: 60.0)
    try:
        await bounded(client.connect())
        await joined(client, "room:lobby")
        closes = Calls()
        client.on_close(closes)
        proc.send_signal(signal.SIGTERM)
        code = await bounded(proc.wait())
        await closes.wait()
    finally:
        await client.disconnect()
    assert code in (0, 143, -signal.SIGTERM)


async def test_serve_max_channels_limits_joins_per_connection(
    serve: Callable[..., Awaitable[Serving]],
) -> None:
    """``serve --max-channels 1``: a connection's second topic is refused."""
    _proc, url = await serve("--max-channels", "1")
    client = Socket(url)
    try:
        await bounded(client.connect())
        await joined(client, "room:one")
        with pytest.raises(JoinError) as info:
            await bounded(client.channel("room:two").join())
        assert info.value.response == {"reason": "too many channels joined"}
    finally:
        await client.disconnect()


async def test_serve_on_a_busy_port_fails(server: Server) -> None:
    """``serve`` on a port already in use prints an error and exits non-zero."""
    result = await run("serve", "--port", str(server.port))
    assert result.code != 0
    assert "error:" in result.err
