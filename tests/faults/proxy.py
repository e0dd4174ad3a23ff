"""A small asyncio TCP proxy for network faults: forward, cut (RST every connection), stall, refuse.

It runs its event loop in a daemon thread so a synchronous test drives it with plain calls:

    proxy = FaultProxy("127.0.0.1", server.port).start()   # proxy.port is where clients connect
    proxy.cut()            # reset every live connection (the peers see ECONNRESET / "Lost connection")
    proxy.stall(True)      # stop moving bytes (connections stay open, data waits in the proxy)
    proxy.refuse(True)     # reset every new connection right after accept (a server "down")
    proxy.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

_CHUNK = 64 << 10


@dataclass(eq=False)  # hashed by identity: links live in a set
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, not FIN: SO_LINGER 0 makes close() abort the connection."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, listen_port: int = 0) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = listen_port
        self.cuts = 0  # connections reset by cut()/refuse()
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._flowing: asyncio.Event | None = None
        self._refusing = False

    # --- control (any thread) ----------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def cut(self) -> int:
        """Reset every live connection; returns how many."""
        return int(self._call(self._cut()))

    def stall(self, on: bool) -> None:
        self._call(self._set_flowing(not on))

    def refuse(self, on: bool) -> None:
        """While on, new connections are reset at once and live ones are cut."""
        self._refusing = on
        if on:
            self.cut()

    @property
    def live(self) -> int:
        return len(self._links)

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    # --- the loop ----------------------------------------------------------------------------
    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut()

    async def _cut(self) -> int:
        links = list(self._links)
        for link in links:
            _reset(link.client)
            _reset(link.upstream)
            for task in link.tasks:
                task.cancel()
        self._links.clear()
        self.cuts += len(links)
        return len(links)

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._refusing:
            self.cuts += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            _reset(writer)
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.ensure_future(self._pump(reader, up_writer, link)),
            asyncio.ensure_future(self._pump(up_reader, writer, link)),
        ]

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link) -> None:
        assert self._flowing is not None
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if link in self._links:
                # One side closed: close both, politely (FIN), as a real network path would.
                self._links.discard(link)
                for w in (link.client, link.upstream):
                    with contextlib.suppress(Exception):
                        w.close()
