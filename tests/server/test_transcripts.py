"""Replay every websocket golden transcript against the demo server.

Each ``v1_*.json``/``v2_*.json`` of ``shared/phoenix-transcripts`` (copied to
``tests/server/transcripts``) was recorded from genuine Phoenix 1.7.24 with a
raw client. The replayer opens the same connections, sends the same frames,
and demands the same frames back, byte for byte, after the file's
``normalize`` entries (presence ``phx_ref``/``online_at``), and the same close
codes. ``lp_*`` (long-poll) transcripts are replayed by
``test_longpoll_transcripts.py``.

Where a transcript shows that nothing arrived (a ``send`` directly followed
by ``wait_ms``), the replayer does not sleep: it sends a barrier (an ``echo``
on the same topic, then a heartbeat) and requires their replies to be the
next frames. Channels handle pushes in order and the socket handles frames in
order, so anything the server had sent in between would show up first. The
same heartbeat barrier runs before every client ``send_close``, so a server
that sent extra frames at the end of a scenario fails too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from phoenix_channels.server import Server, demo_server

from .helpers import TIMEOUT, J, heartbeat, raw_http, recv

VENDORED = Path(__file__).resolve().parent / "transcripts"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "phoenix-transcripts"
TRANSCRIPTS = Path(os.environ.get("PHOENIX_TRANSCRIPTS", VENDORED))
FILES = sorted(TRANSCRIPTS.glob("v[12]_*.json"))


def test_every_websocket_transcript_is_replayed():
    """The 76 websocket transcripts are all here; none is left out."""
    assert len(FILES) == 76


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"no {SHARED} to compare with")
def test_vendored_transcripts_match_the_shared_ones():
    """tests/server/transcripts is an up-to-date copy of the shared folder
    (websocket and long-poll transcripts alike)."""
    shared = {p.name: p.read_bytes() for p in SHARED.glob("*.json")}
    vendored = {p.name: p.read_bytes() for p in VENDORED.glob("*.json")}
    assert vendored == shared


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
async def test_transcript(path: Path):
    """The demo server reproduces a genuine Phoenix transcript exactly."""
    doc = json.loads(path.read_text())
    async with demo_server(port=0) as server:
        replay = Replay(doc, server)
        try:
            await asyncio.wait_for(replay.run(), 30)
        finally:
            await replay.close_all()


# --- the replayer -------------------------------------------------------------


@dataclass
class Replay:
    doc: dict[str, Any]
    server: Server
    conns: dict[str, ClientConnection] = field(default_factory=dict)
    last_sent: dict[str, str] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # expected -> actual phx_ref
    barriers: int = 0

    @property
    def vsn(self) -> str:
        return str(self.doc["vsn"])

    async def run(self) -> None:
        steps = self.doc["steps"]
        normalize = _normalize_by_step(self.doc)
        for index, step in enumerate(steps):
            label = step.get("conn", "A")
            kind, value = _kind(step)
            where = f"step {index} ({kind} on {label})"
            if kind == "open":
                await self.open(label, value, where)
            elif kind == "http":
                await self.http(value, where)
            elif kind == "send":
                await self.send(label, value)
            elif kind == "recv":
                frame = await recv(self.conns[label])
                self.compare(frame, value, normalize.get(index, []), where)
            elif kind == "wait_ms":
                await self.barrier(label, echo=True)
            elif kind == "send_close":
                if not _follows_other_close(steps, index, label):
                    await self.barrier(label, echo=False)
                await self.conns[label].close(value["code"], value["reason"])
            elif kind == "recv_close":
                await self.check_close(label, value, where)
            elif kind == "tcp_drop":
                ws = self.conns[label]
                ws.transport.abort()
                await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
            else:
                raise AssertionError(f"{where}: unknown step kind {kind!r}")

    async def open(self, label: str, value: dict[str, Any], where: str) -> None:
        url = f"ws://{self.server.host}:{self.server.port}{value['path']}"
        ws = await asyncio.wait_for(
            websockets.connect(
                url,
                max_size=None,
                ping_interval=None,
                compression=None,
                close_timeout=TIMEOUT,
                subprotocols=_subprotocols(self.doc),
            ),
            TIMEOUT,
        )
        assert ws.response is not None
        assert ws.response.status_code == value["status"], where
        assert ws.subprotocol == value["subprotocol"], where
        self.conns[label] = ws

    async def http(self, value: dict[str, Any], where: str) -> None:
        headers = [
            (k, f"{self.server.host}:{self.server.port}" if k == "Host" else v)
            for k, v in value["request_headers"].items()
        ]
        lines = [f"{value['method']} {value['path']} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in headers]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        status_line, got, body = await raw_http(self.server, request)
        assert status_line == value["status_line"], where
        expected = {k.lower(): v for k, v in value["response_headers"].items()}
        assert set(got) == set(expected), where
        for name, text in expected.items():
            if name == "date":
                assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} [\d:]{8} GMT", got[name])
            else:
                assert got[name] == text, f"{where}: header {name}"
        assert body.decode() == value["body"], where

    async def send(self, label: str, value: Any) -> None:
        ws = self.conns[label]
        if isinstance(value, str):
            self.last_sent[label] = value
            await ws.send(value)
        elif "binary_hex" in value:
            await ws.send(bytes.fromhex(value["binary_hex"]))
        elif "text_bytes_hex" in value:
            await ws.send(bytes.fromhex(value["text_bytes_hex"]), text=True)
        else:  # a large frame stored as a digest: rebuild it
            middle = value["text_len"] - len(value["head"]) - len(value["tail"])
            text = value["head"] + value["head"][-1] * middle + value["tail"]
            assert hashlib.sha256(text.encode()).hexdigest() == value["sha256"]
            await ws.send(text)

    def compare(
        self, frame: str | bytes, value: Any, paths: list[dict[str, Any]], where: str
    ) -> None:
        if isinstance(value, dict) and "binary_hex" in value:
            assert isinstance(frame, bytes), f"{where}: expected a binary frame"
            assert frame.hex() == value["binary_hex"], where
            return
        assert isinstance(frame, str), f"{where}: expected a text frame, got {frame!r}"
        if isinstance(value, dict):  # stored as a digest
            data = frame.encode()
            assert len(data) == value["text_len"], where
            assert frame.startswith(value["head"]) and frame.endswith(value["tail"]), (
                where
            )
            assert hashlib.sha256(data).hexdigest() == value["sha256"], where
            return
        if not paths:
            assert frame == value, where
            return
        actual, expected = json.loads(frame), json.loads(value)
        # The frame must be compact JSON as sent: re-encoding changes nothing.
        assert J(actual) == frame, f"{where}: not compact JSON"
        for entry in paths:
            keys = _parse_path(entry["path"])
            got, want = _get(actual, keys), _get(expected, keys)
            if entry["what"].startswith("phx_ref"):
                assert isinstance(got, str) and re.fullmatch(
                    r"[A-Za-z0-9_-]{16}", got
                ), got
                # The same genuine phx_ref must map to the same replayed one.
                assert self.refs.setdefault(want, got) == got, (
                    f"{where}: phx_ref mismatch"
                )
                assert list(self.refs.values()).count(got) == 1, (
                    f"{where}: phx_ref reused"
                )
            else:
                assert isinstance(got, str) and got.isdigit(), got
                assert abs(int(got) - time.time()) < 120, got
            _set(actual, keys, "<normalized>")
            _set(expected, keys, "<normalized>")
        assert J(actual) == J(expected), where

    async def barrier(self, label: str, echo: bool) -> None:
        """Prove that nothing arrived: the barrier's replies come next."""
        ws = self.conns[label]
        self.barriers += 1
        if echo and label in self.last_sent:
            ref = f"barrier-{self.barriers}"
            topic = _topic(self.last_sent[label], self.vsn)
            if self.vsn == "2.0.0":
                await ws.send(J([None, ref, topic, "echo", {"barrier": True}]))
                reply = json.loads(await recv(ws))
                assert reply[1] == ref and reply[3] == "phx_reply", reply
            else:
                await ws.send(
                    J({"topic": topic, "event": "echo", "payload": {}, "ref": ref})
                )
                reply = json.loads(await recv(ws))
                assert reply["ref"] == ref and reply["event"] == "phx_reply", reply
        await heartbeat(ws, f"barrier-hb-{self.barriers}", self.vsn)

    async def check_close(self, label: str, value: dict[str, Any], where: str) -> None:
        ws = self.conns[label]
        if value["code"] == 1006:  # the client dropped TCP itself
            assert ws.protocol.close_rcvd is None, where
            return
        if ws.protocol.close_sent is None:  # the server closes first
            try:
                frame = await recv(ws)
            except ConnectionClosed:
                pass
            else:
                raise AssertionError(f"{where}: expected a close, got {frame!r}")
        await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
        rcvd = ws.protocol.close_rcvd
        assert rcvd is not None, f"{where}: no close frame from the server"
        assert (rcvd.code, rcvd.reason) == (value["code"], value["reason"]), where
        initiator = "server" if ws.protocol.close_rcvd_then_sent else "client"
        assert initiator == value["initiator"], where

    async def close_all(self) -> None:
        for ws in self.conns.values():
            await ws.close()


def _kind(step: dict[str, Any]) -> tuple[str, Any]:
    (kind,) = [k for k in step if k not in ("at_ms", "conn")]
    return kind, step[kind]


def _follows_other_close(steps: list[dict[str, Any]], index: int, label: str) -> bool:
    """Whether another connection closed right before this ``send_close``.

    Then no end barrier can prove anything: closing a presence connection
    makes the genuine server send a leave diff to the others asynchronously,
    which the recording caught before the next close in
    ``v1_presence_two_users`` but not in ``v2_presence_two_users`` (A closed
    1 ms after C). Our server sends it at once, so a barrier would see it.
    """
    previous = steps[index - 1] if index else {}
    return "recv_close" in previous and previous.get("conn", "A") != label


def _subprotocols(doc: dict[str, Any]) -> list[Any] | None:
    for step in doc["steps"]:
        proto = (
            step.get("http", {})
            .get("request_headers", {})
            .get("Sec-WebSocket-Protocol")
        )
        if proto:
            return [p.strip() for p in proto.split(",")]
    return None


def _topic(frame: str, vsn: str) -> Any:
    value = json.loads(frame)
    return value[2] if vsn == "2.0.0" else value["topic"]


def _normalize_by_step(doc: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for entry in doc.get("normalize", []):
        if entry.get("field") == "recv" and isinstance(entry.get("step"), int):
            out.setdefault(entry["step"], []).append(entry)
    return out


_PATH_PART = re.compile(r'\[(\d+|"(?:[^"\\]|\\.)*")\]')


def _parse_path(path: str) -> list[int | str]:
    assert path.startswith("$")
    keys: list[int | str] = []
    for part in _PATH_PART.findall(path[1:]):
        keys.append(int(part) if part.isdigit() else json.loads(part))
    return keys


def _get(value: Any, keys: list[int | str]) -> Any:
    for key in keys:
        value = value[key]
    return value


def _set(value: Any, keys: list[int | str], new: Any) -> None:
    _get(value, keys[:-1])[keys[-1]] = new
