"""Replay every long-poll golden transcript against the demo server.

Each ``lp_*.json`` of ``shared/phoenix-transcripts`` (copied to
``tests/server/transcripts``) is a genuine Phoenix 1.7.24 exchange recorded
with a raw HTTP client. The replayer sends the same requests with a raw
``httpx.AsyncClient`` (the websocket side steps go through the websocket
replayer of ``test_transcripts.py``) and demands the same HTTP statuses,
content types and bodies, byte for byte, after the file's ``normalize``
entries: long-poll tokens (a genuine token always maps to the same replayed
one, and two genuine tokens never to the same), presence ``phx_ref`` and
``online_at``. A request path carries the replayed token where the recording
carried the genuine one.

Timing. The recorder slept before some polls so that the frames were there;
the replayer instead waits until the session has queued the frames the
transcript shows (a server-side condition, never a set duration), then polls
and demands exactly those frames. A poll that was answered at once in the
recording must not be held for the window here. Windows are shortened: 3 s
instead of Phoenix's 10 s everywhere (no replayed poll waits for it), and
0.2 s for ``lp_v2_session_expired``, whose 32 s pause becomes "until the
session has expired" (1.5 windows without a poll).

One recording is not what its description says: in ``lp_v2_idle_poll_204``
the idle poll was woken after 643 ms by the ``{"to": "lp"}`` broadcast of
``lp_v2_pending_poll_woken_by_push``, recorded at the same time into the same
room (``_recorder/scen3.py`` runs the slow scenarios concurrently with the
fast ones). The replay reproduces it by broadcasting that frame while the
poll is held; ``test_longpoll.py`` checks the real idle 204.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from phoenix_channels.server import LongPollSession, demo_server

from .helpers import TIMEOUT, recv, until
from .test_transcripts import (
    TRANSCRIPTS,
    Replay,
    _follows_other_close,
    _get,
    _kind,
    _normalize_by_step,
    _parse_path,
)

FILES = sorted(TRANSCRIPTS.glob("lp_*.json"))
WINDOW = 3.0
WINDOWS = {"lp_v2_session_expired": 0.2}
#: Frames another scenario broadcast into the room while this poll was held.
INJECTED = {
    ("lp_v2_idle_poll_204", 3): ("room:lobby", "broadcasted", {"to": "lp"}),
}
TOKEN = re.compile(r"[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{24}")
#: A pause this long in a recording let the session expire (1.5 x 10 s).
EXPIRY_PAUSE_MS = 15_000


def test_every_longpoll_transcript_is_replayed():
    """The 12 long-poll transcripts are all here; none is left out."""
    assert len(FILES) == 12


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
async def test_longpoll_transcript(path: Path):
    """The demo server reproduces a genuine long-poll transcript exactly."""
    doc = json.loads(path.read_text())
    window = WINDOWS.get(doc["scenario"], WINDOW)
    async with demo_server(port=0, longpoll_window=window) as server:
        base = f"http://{server.host}:{server.port}"
        async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as client:
            replay = LongPollReplay(doc, server, client=client, window=window)
            try:
                await asyncio.wait_for(replay.run(), 30)
            finally:
                await replay.close_all()


@dataclass
class LongPollReplay(Replay):
    client: httpx.AsyncClient | None = None
    window: float = WINDOW
    tokens: dict[str, str] = field(default_factory=dict)  # genuine -> ours
    requests: dict[int, asyncio.Task[httpx.Response]] = field(default_factory=dict)

    async def run(self) -> None:
        steps = self.doc["steps"]
        frames = _normalize_by_step(self.doc)
        bodies = _body_normalize_by_step(self.doc)
        for index, step in enumerate(steps):
            await self.start_overlapping(index)
            label = step.get("conn", "A")
            kind, value = _kind(step)
            where = f"step {index} ({kind} on {label})"
            if kind == "http":
                response = await self.exchange(index, value)
                self.check(response, value, bodies.get(index, []), where)
            elif kind == "open":
                await self.open(label, value, where)
            elif kind == "send":
                await self.send(label, value)
            elif kind == "recv":
                frame = await recv(self.conns[label])
                self.compare(frame, value, frames.get(index, []), where)
            elif kind == "send_close":
                if not _follows_other_close(steps, index, label):
                    await self.barrier(label, echo=False)
                await self.conns[label].close(value["code"], value["reason"])
            elif kind == "recv_close":
                await self.check_close(label, value, where)
            elif kind == "wait_ms" and label in self.conns:
                await self.barrier(label, echo=True)
            elif kind == "wait_ms":
                if value >= EXPIRY_PAUSE_MS:  # long enough to expire a session
                    await until(lambda: not self.server.longpoll_sessions)
            else:
                raise AssertionError(f"{where}: unknown step kind {kind!r}")
        assert not self.requests, "requests left unanswered"

    # --- requests -------------------------------------------------------------

    async def start_overlapping(self, index: int) -> None:
        """Send now the requests that the recording sent before this step
        happened but got answered after it (a poll held across other steps)."""
        steps = self.doc["steps"]
        at = steps[index]["at_ms"]
        for later in range(index + 1, len(steps)):
            value = steps[later].get("http")
            if value is None or later in self.requests or value["sent_at_ms"] >= at:
                continue
            self.requests[later] = asyncio.create_task(self.request(value))
            held = self.session_for(value)
            assert held is not None, f"step {later}: no session to hold a poll"
            await until(lambda s=held: s.is_polling)

    async def exchange(self, index: int, value: dict[str, Any]) -> httpx.Response:
        task = self.requests.pop(index, None)
        if task is not None:
            return await task
        injected = INJECTED.get((self.doc["scenario"], index))
        if injected is not None:
            task = asyncio.create_task(self.request(value))
            session = self.session_for(value)
            assert session is not None
            await until(lambda: session.is_polling)
            self.server.broadcast(*injected)
            return await task
        await self.wait_for_frames(value)
        return await self.request(value)

    async def wait_for_frames(self, value: dict[str, Any]) -> None:
        """Before a poll, wait until the session holds what the answer shows."""
        session = self.session_for(value)
        if value["method"] != "GET" or session is None:
            return
        if value["status"] == 500:  # a poll that fails has frames to send
            expected = 1
        else:
            expected = len(json.loads(value["body"]).get("messages") or ())
        await until(lambda: session.queued >= expected)

    async def request(self, value: dict[str, Any]) -> httpx.Response:
        assert self.client is not None
        body = value.get("request_body")
        started = time.monotonic()
        response = await self.client.request(
            value["method"],
            self.our_path(value["path"]),
            headers=value.get("request_headers", {}),
            content=None if body is None else body.encode(),
        )
        held = time.monotonic() - started
        if value["elapsed_ms"] < 1000:  # answered at once by Phoenix
            assert held < self.window * 0.9, f"{value['path']}: held {held:.2f} s"
        return response

    def our_path(self, path: str) -> str:
        for genuine, ours in self.tokens.items():
            path = path.replace(f"token={genuine}", f"token={ours}")
        return path

    def session_for(self, value: dict[str, Any]) -> LongPollSession | None:
        match = re.search(r"[?&]token=([^&]*)", value["path"])
        ours = self.tokens.get(match.group(1)) if match else None
        return self.server.longpoll.sessions.get(ours) if ours else None

    # --- responses ------------------------------------------------------------

    def check(
        self,
        response: httpx.Response,
        value: dict[str, Any],
        entries: list[dict[str, Any]],
        where: str,
    ) -> None:
        assert response.status_code == value["status"], where
        assert response.headers.get("content-type") == value["content_type"], where
        text = response.content.decode()
        if entries:
            text = self.normalize(text, value["body"], entries, where)
        assert text == value["body"], where

    def normalize(
        self, text: str, expected: str, entries: list[dict[str, Any]], where: str
    ) -> str:
        """``text`` with our varying values replaced by the recording's."""
        ours, genuine = json.loads(text), json.loads(expected)
        for entry in entries:
            keys = _parse_path(entry["path"])
            got, want = _get(ours, keys), _get(genuine, keys)
            if "inner_path" not in entry:  # the session token
                assert isinstance(got, str) and TOKEN.fullmatch(got), where
                self.map_token(want, got, where)
                text = text.replace(got, want)
                continue
            inner = _parse_path(entry["inner_path"])
            got, want = _get(json.loads(got), inner), _get(json.loads(want), inner)
            if entry["what"].startswith("phx_ref"):
                assert isinstance(got, str) and re.fullmatch(r"[A-Za-z0-9_-]{16}", got)
                assert self.refs.setdefault(want, got) == got, f"{where}: phx_ref"
                assert list(self.refs.values()).count(got) == 1, f"{where}: reused"
                text = text.replace(got, want)
            else:  # online_at: unix seconds now, as a string
                assert isinstance(got, str) and got.isdigit(), got
                assert abs(int(got) - time.time()) < 120, got
                pattern = '\\"online_at\\":\\"{}\\"'
                text = text.replace(pattern.format(got), pattern.format(want))
        return text

    def map_token(self, genuine: str, ours: str, where: str) -> None:
        assert self.tokens.setdefault(genuine, ours) == ours, f"{where}: token"
        assert list(self.tokens.values()).count(ours) == 1, f"{where}: token reused"

    async def close_all(self) -> None:
        for task in self.requests.values():
            task.cancel()
        await super().close_all()


def _body_normalize_by_step(doc: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for entry in doc.get("normalize", []):
        if entry.get("field") == "http.body":
            out.setdefault(entry["step"], []).append(entry)
    return out
