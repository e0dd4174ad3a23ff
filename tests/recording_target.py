"""A stand-in for the applier's target connection that records what the applier sends (MySQL-only text).

Used where the statements are MySQL 8 syntax (its BINLOG row images, CREATE TABLE ... START TRANSACTION)
that no local server can run: the applier's batching is checked, the server's execution is not. It keeps
the one piece of state the applier reads back, the position row, from the applier's own updates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pymysql

from migrator.tools.binlog_applier import _GUARD, _SEPARATOR, BinlogApplier


@dataclass
class Sent:
    sql: bytes
    in_group: bool  # sent while a target transaction (BEGIN ... COMMIT) was open
    autocommit_call: bool = False  # through a cursor (the DDL marker, the position after skips)


@dataclass
class RecordingTarget:
    applier: BinlogApplier
    sent: list[Sent] = field(default_factory=list)
    in_group: bool = False
    _results: list[Any] = field(default_factory=list)
    _result: Any = None

    # pymysql's low-level interface, as _run_multi uses it
    def query(self, sql: bytes) -> None:
        self._results = []
        for statement in sql.split(_SEPARATOR):
            upper = statement.strip().upper()
            if upper == b"BEGIN":
                self.in_group = True
            self.sent.append(Sent(statement, self.in_group))
            if upper == b"COMMIT":
                self.in_group = False
            rows = ((*self.applier._committed, 0),) if statement == _GUARD else ()
            self._results.append(SimpleNamespace(rows=rows))
        self._result = self._results.pop(0)

    def next_result(self) -> None:
        self._result = self._results.pop(0)

    def escape(self, value: Any) -> str:
        return str(pymysql.converters.escape_item(value, "utf8mb4"))

    def thread_id(self) -> int:
        return 1

    def rollback(self) -> None:
        self.in_group = False

    def close(self) -> None:
        pass

    def cursor(self) -> _Cursor:
        return _Cursor(self)


class _Cursor:
    def __init__(self, target: RecordingTarget) -> None:
        self.target = target
        self.row: tuple[Any, ...] | None = None

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, sql: str, args: Any = None) -> int:
        self.target.sent.append(Sent(sql.encode(), self.target.in_group, autocommit_call=True))
        if sql.startswith("SELECT file, pos, ddl_pending"):
            file, pos = self.target.applier._committed
            self.row = (file, pos, 0, None, None, None, None)
        elif sql.startswith("SELECT xid"):
            self.row = None
        return 1

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.row

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [self.row] if self.row is not None else []


def record(applier: BinlogApplier) -> RecordingTarget:
    target = RecordingTarget(applier)
    applier._conn = target
    applier._chunk_budget = applier.max_chunk_bytes
    return target
