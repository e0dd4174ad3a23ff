"""The demo's pooled reader: one long-lived connection, as a pool keeps it, that never looks at DNS again.

It resolves the DNS record once, connects, and then queries on that same connection every
``interval_s``. Only when the connection dies (the server ended it) does it reconnect, through DNS, as
every pool does. So it shows what DNS alone cannot do: without the migrator ending its session on
the old source, it would keep reading the frozen source for as long as the pool keeps connections.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from migrator.dns.local import resolve
from migrator.endpoint import Endpoint
from migrator.mysql.session import connect, error_code
from migrator.secrets import Secret


@dataclass(frozen=True)
class PoolStats:
    queries: int
    first_server: str | None
    last_server: str | None
    ended: int  # times the server ended the pooled connection
    ended_after_s: float | None  # from start() until the first time it was ended
    queries_by_server: dict[str, int]
    servers: tuple[str, ...]  # the servers its connections went to, in order


class PooledReader:
    def __init__(self, dns_path: Path, record: str, user: str, password: Secret, *, interval_s: float = 0.2) -> None:
        self.dns_path = dns_path
        self.record = record
        self.user = user
        self.password = password
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._conn: Any = None
        self._server: str | None = None
        self._first: str | None = None
        self._queries = 0
        self._by_server: dict[str, int] = {}
        self._ended = 0
        self._started = 0.0
        self._ended_after: float | None = None
        self._servers: list[str] = []

    def _connect(self) -> None:
        host, port = resolve(self.dns_path, self.record)
        self._conn = connect(Endpoint(host=host, port=port, user=self.user, password=self.password), read_timeout=5)
        self._server = f"{host}:{port}"
        if self._first is None:
            self._first = self._server
        with self._lock:
            self._servers.append(self._server)

    def start(self) -> None:
        self._started = time.monotonic()
        self._connect()  # before the cut-over begins: this connection is to the source
        self._thread = threading.Thread(target=self._run, name="pooled-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if self._conn is None:
                    self._connect()
                with self._conn.cursor() as cur:
                    cur.execute("SELECT COUNT(*) FROM shop.ledger")
                    cur.fetchall()
                with self._lock:
                    self._queries += 1
                    assert self._server is not None
                    self._by_server[self._server] = self._by_server.get(self._server, 0) + 1
            except (pymysql.err.Error, OSError) as exc:
                with self._lock:
                    if error_code(exc) in (2006, 2013) or isinstance(exc, pymysql.err.InterfaceError):
                        self._ended += 1
                        if self._ended_after is None:
                            self._ended_after = time.monotonic() - self._started
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None  # the next round reconnects through DNS

    def stop(self) -> PoolStats:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with contextlib.suppress(Exception):
            if self._conn is not None:
                self._conn.close()
        return self.stats()

    def stats(self) -> PoolStats:
        with self._lock:
            return PoolStats(
                queries=self._queries,
                first_server=self._first,
                last_server=self._server,
                ended=self._ended,
                ended_after_s=self._ended_after,
                queries_by_server=dict(self._by_server),
                servers=tuple(self._servers),
            )
