"""Binlog positions: the source's head, its file list, and the distance between two positions."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from migrator.mysql.flavour import Flavour
from migrator.mysql.session import MySQLSession


class BinlogPosition(NamedTuple):
    """A binlog file and byte offset. A tuple, so (file, pos) pairs from anywhere compare equal to it;
    order positions with ``position_key``, never by the file name's text."""

    file: str
    position: int

    def __str__(self) -> str:
        return f"{self.file}:{self.position}"

    def as_list(self) -> list[object]:
        return [self.file, self.position]


_BINLOG_NAME = re.compile(r"^(?P<base>.+)\.(?P<seq>\d{6,})$")


def binlog_sequence(name: str) -> int:
    """mysql-bin.000042 -> 42 (names compare by number: the suffix grows past 6 digits)."""
    match = _BINLOG_NAME.match(name)
    if match is None:
        raise ValueError(f"not a binlog file name: {name!r}")
    return int(match.group("seq"))


def position_key(position: tuple[str, int]) -> tuple[int, int]:
    return binlog_sequence(position[0]), position[1]


def source_head(session: MySQLSession, flavour: Flavour) -> BinlogPosition:
    rows = session.dicts(flavour.binary_log_status_sql)
    if not rows:
        from migrator.errors import PreflightFailed

        raise PreflightFailed(
            f"{session.endpoint.describe()} has binary logging off",
            hint="enable log_bin (on RDS: set a backup retention period > 0) and binlog_format=ROW",
        )
    return BinlogPosition(str(rows[0]["File"]), int(rows[0]["Position"]))


def binary_logs(session: MySQLSession) -> list[tuple[str, int]]:
    return [(str(r[0]), int(r[1])) for r in session.rows("SHOW BINARY LOGS")]


def lag_bytes(files: Iterable[tuple[str, int]], applied: tuple[str, int], head: tuple[str, int]) -> int:
    """Binlog bytes from ``applied`` to ``head``; ``files`` gives sizes (SHOW BINARY LOGS rows or the archive)."""
    if position_key(head) <= position_key(applied):
        return 0
    if applied[0] == head[0]:
        return head[1] - applied[1]
    sizes = dict(files)
    low, high = binlog_sequence(applied[0]), binlog_sequence(head[0])
    total = max(0, sizes.get(applied[0], applied[1]) - applied[1])
    total += sum(size for name, size in sizes.items() if low < binlog_sequence(name) < high)
    return total + head[1]
