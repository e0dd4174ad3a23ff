"""The SQLite journal: one file per migration, the only durable memory of the orchestrator.

WAL with synchronous=FULL (a committed transition survives power loss), mode 0600 in a 0700
directory, and one owner at a time through ``flock`` on a separate lock file: SQLite's own POSIX
locks vanish when any descriptor of the file closes in-process, and an flock held for the process
life is released by the kernel even on kill -9.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrator.errors import JournalLocked, JournalMismatch

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS migration (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  name TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  schema_version INTEGER NOT NULL,
  created_at REAL NOT NULL,
  owner_pid INTEGER,
  owner_host TEXT,
  owner_since REAL
);
CREATE TABLE IF NOT EXISTS step (
  number INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'skipped')),
  attempts INTEGER NOT NULL DEFAULT 0,
  started_at REAL,
  finished_at REAL,
  last_error TEXT
);
CREATE TABLE IF NOT EXISTS event (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at REAL NOT NULL,
  step INTEGER,
  kind TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS fact (
  key TEXT PRIMARY KEY,
  step INTEGER,
  value TEXT NOT NULL,
  at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deadline (
  name TEXT PRIMARY KEY,
  wake_at REAL NOT NULL,
  created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS copy_chunk (
  chunk_id TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  schema_name TEXT NOT NULL,
  table_name TEXT NOT NULL,
  spec TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'started', 'done')),
  rows INTEGER,
  bytes INTEGER,
  updated_at REAL
);
CREATE INDEX IF NOT EXISTS copy_chunk_by_table ON copy_chunk (schema_name, table_name);
CREATE TABLE IF NOT EXISTS binlog_file (
  name TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS service (
  name TEXT PRIMARY KEY,
  desired TEXT NOT NULL CHECK (desired IN ('running', 'stopped')),
  position TEXT,
  updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS command_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at REAL NOT NULL,
  pid INTEGER NOT NULL,
  argv TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class StepRow:
    number: int
    name: str
    status: str
    attempts: int
    started_at: float | None
    finished_at: float | None
    last_error: str | None


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class Journal:
    """Read/write access. Writers must ``acquire`` first; readers use ``Journal.open_readonly``."""

    def __init__(self, path: Path, conn: sqlite3.Connection, *, readonly: bool) -> None:
        self.path = path
        self.conn = conn
        self.readonly = readonly
        self._lock = threading.RLock()  # copy workers and services write from threads
        self._lock_fd: int | None = None

    # --- opening --------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path) -> Journal:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        new = not path.exists()
        if new:
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        os.chmod(path, 0o600)
        journal = cls(path, _connect(path, readonly=False), readonly=False)
        journal.conn.executescript(SCHEMA)
        return journal

    @classmethod
    def open_readonly(cls, path: Path) -> Journal:
        if not path.exists():
            raise JournalMismatch(f"no journal at {path}", hint="`migrator run` creates it on the first run")
        return cls(path, _connect(path, readonly=True), readonly=True)

    def close(self) -> None:
        self.conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def acquire(self) -> None:
        """Become the single owner, or refuse naming the owner's pid."""
        fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            owner = self.owner()
            who = f"pid {owner[0]} on {owner[1]}" if owner else "another process"
            raise JournalLocked(
                f"journal {self.path} is in use by {who}",
                hint="wait for that run to finish or stop it; `migrator status` is safe to run meanwhile",
            ) from None
        self._lock_fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())

    def owner(self) -> tuple[int, str] | None:
        """The live owner, if any: the owner row, or the lock file's pid, whichever names a live process."""
        row = self.conn.execute("SELECT owner_pid, owner_host FROM migration WHERE id = 1").fetchone()
        candidates: list[tuple[int, str]] = []
        if row is not None and row[0] is not None:
            candidates.append((int(row[0]), str(row[1])))
        with suppress(OSError, ValueError):
            candidates.append((int(self.lock_path.read_text().strip()), socket.gethostname()))
        for pid, host in candidates:
            if host != socket.gethostname():
                return pid, host
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue  # killed -9: its flock went with it
            except PermissionError:
                pass  # alive, under another user
            return pid, host
        return None

    # --- transactions -----------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def _event(self, conn: sqlite3.Connection, kind: str, step: int | None, detail: dict[str, Any]) -> None:
        conn.execute(
            "INSERT INTO event (at, step, kind, detail) VALUES (?, ?, ?, ?)",
            (time.time(), step, kind, json.dumps(detail, default=str, sort_keys=True)),
        )

    def event(self, kind: str, step: int | None = None, **detail: Any) -> None:
        with self.transaction() as conn:
            self._event(conn, kind, step, detail)

    # --- the migration row -------------------------------------------------------------------
    def register(self, name: str, fingerprint: str, steps: list[tuple[int, str]], argv: list[str]) -> bool:
        """Create or check the migration row; returns True when this is a new migration."""
        with self.transaction() as conn:
            row = conn.execute("SELECT fingerprint, name FROM migration WHERE id = 1").fetchone()
            new = row is None
            if new:
                conn.execute(
                    "INSERT INTO migration (id, name, fingerprint, schema_version, created_at) VALUES (1, ?, ?, ?, ?)",
                    (name, fingerprint, SCHEMA_VERSION, time.time()),
                )
                self._event(conn, "migration.created", None, {"name": name, "fingerprint": fingerprint})
            elif row[0] != fingerprint:
                raise JournalMismatch(
                    f"journal {self.path} belongs to migration {row[1]!r} with another source, target or schema "
                    f"list (fingerprint {row[0]}, config has {fingerprint})",
                    hint="use the config that started this migration, or a new migration.workdir",
                )
            for number, step_name in steps:
                conn.execute(
                    "INSERT OR IGNORE INTO step (number, name, status) VALUES (?, ?, 'pending')",
                    (number, step_name),
                )
            conn.execute(
                "UPDATE migration SET owner_pid = ?, owner_host = ?, owner_since = ? WHERE id = 1",
                (os.getpid(), socket.gethostname(), time.time()),
            )
            conn.execute(
                "INSERT INTO command_log (at, pid, argv) VALUES (?, ?, ?)",
                (time.time(), os.getpid(), json.dumps(argv)),
            )
        return new

    def release_owner(self) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE migration SET owner_pid = NULL, owner_host = NULL WHERE id = 1")

    def fingerprint(self) -> str | None:
        row = self.conn.execute("SELECT fingerprint FROM migration WHERE id = 1").fetchone()
        return None if row is None else str(row[0])

    # --- steps ----------------------------------------------------------------------------
    def steps(self) -> list[StepRow]:
        rows = self.conn.execute(
            "SELECT number, name, status, attempts, started_at, finished_at, last_error FROM step ORDER BY number"
        ).fetchall()
        return [StepRow(*r) for r in rows]

    def step(self, number: int) -> StepRow:
        row = self.conn.execute(
            "SELECT number, name, status, attempts, started_at, finished_at, last_error FROM step WHERE number = ?",
            (number,),
        ).fetchone()
        if row is None:
            raise KeyError(number)
        return StepRow(*row)

    def begin_step(self, number: int) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE step SET status = 'running', attempts = attempts + 1, started_at = ?, last_error = NULL "
                "WHERE number = ?",
                (time.time(), number),
            )
            self._event(conn, "step.running", number, {})

    def complete_step(self, number: int, facts: dict[str, Any], *, how: str) -> None:
        """Facts and 'done' in one transaction: a step is never done without its outputs."""
        with self.transaction() as conn:
            for key, value in facts.items():
                self._put_fact(conn, number, key, value)
            conn.execute(
                "UPDATE step SET status = 'done', finished_at = ? WHERE number = ?", (time.time(), number)
            )
            self._event(conn, "step.done", number, {"how": how, "facts": sorted(facts)})

    def fail_step(self, number: int, error: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE step SET status = 'failed', finished_at = ?, last_error = ? WHERE number = ?",
                (time.time(), error[:4000], number),
            )
            self._event(conn, "step.failed", number, {"error": error[:4000]})

    def reset_step(self, number: int, *, who: str, why: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE step SET status = 'pending', last_error = NULL WHERE number = ?", (number,))
            self._event(conn, "operator.retry_step", number, {"who": who, "why": why})

    def skip_step(self, number: int, *, who: str, why: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE step SET status = 'skipped', finished_at = ?, last_error = NULL WHERE number = ?",
                (time.time(), number),
            )
            self._event(conn, "operator.skip_step", number, {"who": who, "why": why})

    # --- facts ------------------------------------------------------------------------------
    def _put_fact(self, conn: sqlite3.Connection, step: int | None, key: str, value: Any) -> None:
        conn.execute(
            "INSERT INTO fact (key, step, value, at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET step = excluded.step, value = excluded.value, at = excluded.at",
            (key, step, json.dumps(value, default=str, sort_keys=True), time.time()),
        )

    def put_fact(self, key: str, value: Any, *, step: int | None = None) -> None:
        """A fact recorded mid-step, for effects that cannot be re-derived (e.g. coordinates before promote)."""
        with self.transaction() as conn:
            self._put_fact(conn, step, key, value)
            self._event(conn, "fact", step, {"key": key})

    def facts(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM fact").fetchall()}

    def fact(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM fact WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    # --- deadlines ---------------------------------------------------------------------------
    def deadline(self, name: str, seconds: float, *, now: float) -> float:
        """The wake-up time of a named wait, created on first use so a restart keeps the clock."""
        with self.transaction() as conn:
            row = conn.execute("SELECT wake_at FROM deadline WHERE name = ?", (name,)).fetchone()
            if row is not None:
                return float(row[0])
            wake = now + seconds
            conn.execute(
                "INSERT INTO deadline (name, wake_at, created_at) VALUES (?, ?, ?)", (name, wake, now)
            )
            self._event(conn, "deadline", None, {"name": name, "wake_at": wake})
            return wake

    def clear_deadline(self, name: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM deadline WHERE name = ?", (name,))

    # --- copy chunks (implements migrator.copy.ChunkLedger) -----------------------------------
    def save_chunk_plan(self, chunks: list[tuple[str, str, str, str]]) -> None:
        """(chunk_id, schema, table, spec_json) in copy order; a plan is saved once and reused on resume."""
        with self.transaction() as conn:
            for seq, (chunk_id, schema, table, spec) in enumerate(chunks):
                conn.execute(
                    "INSERT OR IGNORE INTO copy_chunk (chunk_id, seq, schema_name, table_name, spec, status, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                    (chunk_id, seq, schema, table, spec, time.time()),
                )

    def chunk_plan(self) -> list[tuple[str, str]]:
        return [
            (str(r[0]), str(r[1]))
            for r in self.conn.execute("SELECT chunk_id, spec FROM copy_chunk ORDER BY seq").fetchall()
        ]

    def planned_tables(self) -> set[tuple[str, str]]:
        """(schema, table) of every table whose chunks are in the plan (the copy plans table by table)."""
        rows = self.conn.execute("SELECT DISTINCT schema_name, table_name FROM copy_chunk").fetchall()
        return {(str(r[0]), str(r[1])) for r in rows}

    def table_chunk_plan(self, schema: str, table: str) -> list[str]:
        """One table's chunk specs, in plan order."""
        rows = self.conn.execute(
            "SELECT spec FROM copy_chunk WHERE schema_name = ? AND table_name = ? ORDER BY seq, chunk_id",
            (schema, table),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def chunk_status(self, chunk_id: str) -> str | None:
        row = self.conn.execute("SELECT status FROM copy_chunk WHERE chunk_id = ?", (chunk_id,)).fetchone()
        return None if row is None else str(row[0])

    def mark_chunk(
        self, chunk_id: str, status: str, rows: int | None = None, nbytes: int | None = None
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE copy_chunk SET status = ?, rows = COALESCE(?, rows), bytes = COALESCE(?, bytes), "
                "updated_at = ? WHERE chunk_id = ?",
                (status, rows, nbytes, time.time(), chunk_id),
            )

    def mark_chunks_done(self, done: Sequence[tuple[str, int, int]]) -> None:
        """Several chunks done, as (chunk_id, rows, bytes), in one transaction (one fsync, not one each)."""
        if not done:
            return
        now = time.time()
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE copy_chunk SET status = 'done', rows = ?, bytes = ?, updated_at = ? WHERE chunk_id = ?",
                [(rows, nbytes, now, chunk_id) for chunk_id, rows, nbytes in done],
            )

    def copy_progress(self) -> dict[str, int]:
        row = self.conn.execute(
            "SELECT COUNT(*), SUM(status = 'done'), COALESCE(SUM(CASE WHEN status = 'done' THEN rows END), 0), "
            "COALESCE(SUM(CASE WHEN status = 'done' THEN bytes END), 0) FROM copy_chunk"
        ).fetchone()
        return {
            "chunks": int(row[0] or 0),
            "chunks_done": int(row[1] or 0),
            "rows": int(row[2]),
            "bytes": int(row[3]),
        }

    # --- services and binlog files ------------------------------------------------------------
    def set_service(self, name: str, desired: str, position: Any = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO service (name, desired, position, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET desired = excluded.desired, "
                "position = COALESCE(excluded.position, service.position), updated_at = excluded.updated_at",
                (name, desired, None if position is None else json.dumps(position), time.time()),
            )
            self._event(conn, f"service.{desired}", None, {"service": name})

    def service_position(self, name: str, position: Any) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE service SET position = ?, updated_at = ? WHERE name = ?",
                (json.dumps(position, default=str), time.time(), name),
            )

    def services(self) -> dict[str, tuple[str, Any]]:
        return {
            str(n): (str(d), None if p is None else json.loads(p))
            for n, d, p in self.conn.execute("SELECT name, desired, position FROM service").fetchall()
        }

    def record_binlog_files(self, files: list[tuple[str, int]]) -> None:
        with self.transaction() as conn:
            for name, size in files:
                conn.execute(
                    "INSERT INTO binlog_file (name, size, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET size = excluded.size, updated_at = excluded.updated_at",
                    (name, size, time.time()),
                )

    def binlog_files(self) -> list[tuple[str, int]]:
        return [
            (str(n), int(s)) for n, s in self.conn.execute("SELECT name, size FROM binlog_file ORDER BY name")
        ]

    def events(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT id, at, step, kind, detail FROM event ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [
            {"id": r[0], "at": r[1], "step": r[2], "kind": r[3], "detail": json.loads(r[4])}
            for r in reversed(rows)
        ]
