"""What the copy paths share: the two servers, the client tools, the live settings, each worker
thread's sessions and the table layouts the plan was made from."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from migrator.copy.procs import MAX_ALLOWED_PACKET, pdeathsig_prefix, raise_for_tools
from migrator.endpoint import Endpoint
from migrator.mysql.chunking import SESSION_TIME_ZONE, Chunk
from migrator.mysql.flavour import Flavour
from migrator.mysql.schema import TableInfo, table_info
from migrator.mysql.session import MySQLSession, qualified
from migrator.tools import client_tools


class CopyContext:
    """One copy's shared state. Sessions are per worker thread (a pymysql connection is not
    thread-safe); the layouts and the session list are shared under one lock."""

    def __init__(
        self,
        snapshot: Endpoint,
        target: Endpoint,
        flavour: Flavour,
        *,
        log: Any,
        chunk_timeout: float | None,
        monotonic: Callable[[], float],
    ) -> None:
        self.snapshot = snapshot
        self.target = target
        self.log = log
        # Step 6 sets it per batch (through ChunkCopier.chunk_timeout): read it at each use.
        self.chunk_timeout = chunk_timeout
        self.monotonic = monotonic
        # Whether loads run with sql_log_bin=0: set by the copier once it probed the target.
        self.binlog_off = False
        self.tools = client_tools.for_flavour(flavour)  # by --version, one product (review B3)
        self.dump_tool = self.tools.dump.path
        self.client_tool = self.tools.client.path
        self.prefix = pdeathsig_prefix()
        self._tables: dict[tuple[str, str], TableInfo] = {}
        self._local = threading.local()
        self._sessions: list[MySQLSession] = []
        self._lock = threading.Lock()

    # --- the tools ---------------------------------------------------------------------------
    def deadline(self) -> float | None:
        """When a chunk's processes started now are killed (None: never)."""
        return None if self.chunk_timeout is None else self.monotonic() + self.chunk_timeout

    def client_argv(self, defaults: Path) -> list[str]:
        """The mysql client with credentials from the defaults file (first option), batch mode."""
        return [
            *self.prefix,
            self.client_tool,
            f"--defaults-extra-file={defaults}",
            "--default-character-set=utf8mb4",
            f"--max-allowed-packet={MAX_ALLOWED_PACKET}",
            "--batch",
        ]

    def raise_for_tools(self, chunk: Chunk, timed_out: bool, *tools: tuple[str, int, str]) -> None:
        raise_for_tools(chunk, timed_out, self.chunk_timeout, *tools)

    # --- sessions per worker thread ----------------------------------------------------------
    def target_session(self) -> MySQLSession:
        session: MySQLSession | None = getattr(self._local, "session", None)
        if session is None:
            session = MySQLSession(self.target)
            # UTC like the dump's own session; no FK actions while we clear a range we reload.
            session.execute("SET SESSION time_zone = %s", (SESSION_TIME_ZONE,))
            session.execute("SET SESSION foreign_key_checks = 0")
            if self.chunk_timeout is not None:
                # Bound waits for locks (a range DELETE behind a stuck load) as the pipe is bounded.
                session.execute("SET SESSION lock_wait_timeout = %s", (max(1, int(self.chunk_timeout)),))
            if self.binlog_off:
                session.execute("SET SESSION sql_log_bin = 0")
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def snapshot_session(self) -> MySQLSession:
        session: MySQLSession | None = getattr(self._local, "snapshot", None)
        if session is None:
            session = MySQLSession(self.snapshot)
            session.execute("SET SESSION time_zone = %s", (SESSION_TIME_ZONE,))
            self._local.snapshot = session
            with self._lock:
                self._sessions.append(session)
        return session

    def drop_sessions(self) -> None:
        """Close this thread's sessions (after a failed attempt): the next attempt connects afresh."""
        for name in ("session", "snapshot"):
            session: MySQLSession | None = getattr(self._local, name, None)
            if session is not None:
                session.close()
                setattr(self._local, name, None)

    def close_sessions(self) -> None:
        """Close every thread's sessions (the copy's workers are done)."""
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    def count_range(self, chunk: Chunk) -> int:
        return int(
            self.target_session().value(
                f"SELECT COUNT(*) FROM {qualified(chunk.schema, chunk.table)} WHERE {chunk.where_sql()}"
            )
        )

    # --- table layouts -----------------------------------------------------------------------
    def use_tables(self, tables: Iterable[TableInfo]) -> None:
        with self._lock:
            self._tables.update({(t.schema, t.name): t for t in tables})

    def forget_tables(self, tables: Iterable[TableInfo]) -> None:
        with self._lock:
            for t in tables:
                self._tables.pop((t.schema, t.name), None)

    def table(self, chunk: Chunk) -> TableInfo:
        """The chunk's table layout: the plan's, else read from the snapshot's catalog once."""
        key = (chunk.schema, chunk.table)
        with self._lock:
            found = self._tables.get(key)
        if found is None:
            found = table_info(self.snapshot_session(), chunk.schema, chunk.table)
            with self._lock:
                self._tables[key] = found
        return found
