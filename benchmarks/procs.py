"""Processes of a benchmark run: the bundled server, client workers, the driver.

Every client runs in a worker process of its own (``clients/*.py``,
``node/client.mjs``) that measures its own CPU time; the bundled server runs
in yet another process, so its CPU is never counted as a client's.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
CLIENTS = HERE / "clients"
NODE_DIR = HERE / "node"


class ProcessError(RuntimeError):
    """A benchmark process failed, hung or said something unexpected.

    ``fatal`` is False when the worker reported a failed scenario and is
    ready for the next command; True when it hung, died or babbled.
    """

    def __init__(self, message: str, fatal: bool = True) -> None:
        super().__init__(message)
        self.fatal = fatal


class _Lines:
    """Lines of a pipe, read by a thread, taken with a timeout."""

    def __init__(self, pipe: IO[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        thread.start()

    def _pump(self, pipe: IO[str]) -> None:
        for line in pipe:
            self._queue.put(line)
        self._queue.put(None)

    def get(self, timeout: float) -> str | None:
        """The next line; None at end of file. Raises TimeoutError."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None


class _Stderr:
    """Keeps the last lines a process wrote to stderr, for error messages."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        threading.Thread(target=self._pump, args=(pipe,), daemon=True).start()

    def _pump(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.lines = (self.lines + [line.rstrip()])[-30:]

    def text(self) -> str:
        return "\n".join(self.lines[-12:])


class BundledServer:
    """``phoenix-channels serve`` on a free loopback port, in its own process."""

    def __init__(self, max_channels: int) -> None:
        self.max_channels = max_channels
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> BundledServer:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "phoenix_channels", "serve", "--port", "0"]
            + ["--max-channels", str(self.max_channels)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._stderr = _Stderr(self._proc.stderr)
        lines = _Lines(self._proc.stdout)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                line = lines.get(max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            if line is None:
                break
            found = re.search(r"(wss?://\S+)", line)
            if found:
                self.url = found.group(1)
                return self
        self.stop()
        raise ProcessError(f"the bundled server did not start:\n{self._stderr.text()}")

    def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Worker:
    """One client in its own process, driven by JSON lines (clients/common.py)."""

    def __init__(
        self, name: str, argv: Sequence[str], env: dict[str, str], cwd: Path
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.versions: dict[str, str] = {}
        self.pid = 0
        self._proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 60.0) -> Worker:
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=self.cwd,
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._lines = _Lines(self._proc.stdout)
        self._stderr = _Stderr(self._proc.stderr)
        hello = self._read(timeout)
        if "hello" not in hello:
            raise ProcessError(f"{self.name}: unexpected greeting {hello!r}")
        self.versions = hello.get("versions", {})
        self.pid = int(hello.get("pid", self._proc.pid))
        return self

    def _read(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout)
        except TimeoutError:
            raise ProcessError(
                f"{self.name}: no answer within {timeout:g} s\n{self._stderr.text()}"
            ) from None
        if line is None:
            raise ProcessError(f"{self.name} exited:\n{self._stderr.text()}")
        try:
            obj: dict[str, Any] = json.loads(line)
        except ValueError:
            raise ProcessError(f"{self.name}: not JSON: {line!r}") from None
        return obj

    def call(
        self,
        op: str,
        args: dict[str, Any],
        timeout: float,
        on_ready: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Run scenario ``op``; ``on_ready`` runs when the worker says ready."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        if proc.poll() is not None:
            raise ProcessError(f"{self.name} is not running:\n{self._stderr.text()}")
        proc.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
        proc.stdin.flush()
        answer = self._read(timeout)
        if answer.get("ready"):
            if on_ready is not None:
                try:
                    on_ready()
                except Exception as exc:  # the worker now waits in vain: fatal
                    message = f"{self.name} {op}: driver failed: {exc!r}"
                    raise ProcessError(message) from exc
            answer = self._read(timeout)
        if "error" in answer:
            raise ProcessError(f"{self.name} {op}: {answer['error']}", fatal=False)
        return answer

    def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
            proc.stdin.close()
            proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()


def python_worker(
    name: str,
    script: str,
    extra_path: Path | None = None,
    profile_dir: Path | None = None,
) -> Worker:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if extra_path is not None:
        env["PYTHONPATH"] = str(extra_path)
    if profile_dir is not None:
        env["BENCH_PROFILE_DIR"] = str(profile_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return Worker(name, [sys.executable, str(CLIENTS / script)], env, CLIENTS)


def node_worker(node: str) -> Worker:
    argv = [node, "--expose-gc", str(NODE_DIR / "client.mjs")]
    return Worker("phoenix.js", argv, dict(os.environ), NODE_DIR)


def drive_broadcasts(url: str, topic: str, messages: int) -> None:
    """Join ``topic`` on a connection of our own and push ``messages``
    ``broadcast`` events at once; the server fans each one out to the topic.

    Runs in the harness process, whose CPU is not measured.
    """
    asyncio.run(_drive(url, topic, messages))


async def _drive(url: str, topic: str, messages: int) -> None:
    from websockets.asyncio.client import connect

    encode = json.JSONEncoder(separators=(",", ":")).encode
    uri = url.rstrip("/") + "/websocket?vsn=2.0.0"
    async with connect(uri, compression=None, max_size=2**24) as ws:
        await ws.send(encode(["1", "1", topic, "phx_join", {}]))
        while json.loads(await ws.recv())[1] != "1":
            pass
        for i in range(messages):
            text = "hello, phoenix"
            await ws.send(
                encode(["1", str(i + 2), topic, "broadcast", {"seq": i, "text": text}])
            )
        last = str(messages + 1)
        while True:
            msg = json.loads(await ws.recv())
            if msg[1] == last:
                break
