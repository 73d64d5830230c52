"""A TCP proxy that misbehaves on command, for testing clients on flaky networks.

Put it between a client and a server on loopback::

    async with ChaosProxy(server.port) as proxy:
        socket = Socket(proxy.url("/socket"))
        ...
        proxy.cut()          # both TCP connections reset, no close frame
        proxy.freeze()       # bytes stop flowing, connections stay open
        proxy.thaw()
        proxy.refuse = True  # new connections are closed at once (server "down")

It works on bytes, not frames: ``close_mid_frame()`` forwards half of the
next server chunk then resets, ``garble()`` flips bytes in the next one,
``delay`` holds every chunk back. Every pump task is owned and cancelled on
``stop()``; a connection that ends by itself is forgotten (both sockets
closed), so a proxy can run for days.
"""

from __future__ import annotations

import asyncio
import random
from typing import Literal

__all__ = ["ChaosProxy"]

Direction = Literal["up", "down"]  # up: client -> server, down: server -> client


class _Link:
    """One client connection and its server connection."""

    def __init__(
        self,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.client_reader, self.client_writer = client
        self.server_reader, self.server_writer = server
        self.tasks: list[asyncio.Task[None]] = []
        self.finished = 0  # pumps that ended

    def close(self) -> None:
        """Both directions ended (EOF): close both sockets."""
        for writer in (self.client_writer, self.server_writer):
            if not writer.transport.is_closing():
                writer.transport.close()

    def abort(self) -> None:
        for writer in (self.client_writer, self.server_writer):
            transport = writer.transport
            if not transport.is_closing():
                transport.abort()
        for task in self.tasks:
            task.cancel()


class ChaosProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port``."""

    def __init__(
        self,
        target_port: int,
        target_host: str = "127.0.0.1",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
    ) -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = port
        self.links: list[_Link] = []
        #: New connections are closed at once while set.
        self.refuse = False
        #: Seconds every chunk waits before it is forwarded.
        self.delay = 0.0
        self.accepted = 0
        #: Connections forwarded so far.
        self.forwarded = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._mid_frame = False
        self._garble = 0
        self._random = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def url(self, path: str = "/socket", scheme: str = "ws") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Reset every connection, stop listening, and wait for the pumps."""
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> ChaosProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- faults ---------------------------------------------------------------

    def cut(self) -> int:
        """Reset every open connection (no close frame); returns how many."""
        links, self.links = self.links, []
        for link in links:
            link.abort()
        return len(links)

    def freeze(self) -> None:
        """Stop forwarding in both directions; connections stay open."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Forward again (what was held back goes first)."""
        self._flowing.set()

    @property
    def frozen(self) -> bool:
        """Whether bytes are held back (:meth:`freeze`)."""
        return not self._flowing.is_set()

    @property
    def pending_faults(self) -> int:
        """Byte faults armed but not yet applied: no server chunk came since
        :meth:`close_mid_frame` or :meth:`garble` (their sum)."""
        return int(self._mid_frame) + self._garble

    def reset(self) -> None:
        """Back to a healthy network: thaw, accept, no delay, nothing armed."""
        self.thaw()
        self.refuse = False
        self.delay = 0.0
        self._mid_frame = False
        self._garble = 0

    def close_mid_frame(self) -> None:
        """Forward half of the next server->client chunk, then reset."""
        self._mid_frame = True

    def garble(self, chunks: int = 1) -> None:
        """Flip a few bytes in the next ``chunks`` server->client chunks."""
        self._garble += chunks

    # -- plumbing -------------------------------------------------------------

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.accepted += 1
        if self.refuse:
            writer.transport.abort()
            return
        try:
            server = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        if self.refuse:  # refused while we were connecting upstream
            writer.transport.abort()
            server[1].transport.abort()
            return
        link = _Link((reader, writer), server)
        self.links.append(link)
        self.forwarded += 1
        loop = asyncio.get_running_loop()
        link.tasks = [
            loop.create_task(self._pump(link, "up")),
            loop.create_task(self._pump(link, "down")),
        ]
        for task in link.tasks:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, link: _Link, direction: Direction) -> None:
        if direction == "up":
            reader, writer = link.client_reader, link.server_writer
        else:
            reader, writer = link.server_reader, link.client_writer
        try:
            while chunk := await reader.read(65536):
                await self._flowing.wait()
                if self.delay:
                    await asyncio.sleep(self.delay)
                if direction == "down" and self._mid_frame:
                    self._mid_frame = False
                    writer.write(chunk[: max(1, len(chunk) // 2)])
                    await writer.drain()
                    link.abort()
                    return
                if direction == "down" and self._garble:
                    self._garble -= 1
                    chunk = self._flip(chunk)
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            link.abort()
        finally:
            link.finished += 1
            if link.finished == 2:  # both directions are done
                link.close()
                if link in self.links:
                    self.links.remove(link)

    def _flip(self, chunk: bytes) -> bytes:
        data = bytearray(chunk)
        for _ in range(min(3, len(data))):
            index = self._random.randrange(len(data))
            data[index] ^= 0xFF
        return bytes(data)
