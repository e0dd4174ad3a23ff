"""Binlog positions: the source's head, its file list, and the distance between two positions."""

from __future__ import annotations

from dataclasses import dataclass

from migrator.mysql.flavour import Flavour
from migrator.mysql.session import MySQLSession


@dataclass(frozen=True, order=True)
class BinlogPosition:
    file: str
    position: int

    def __str__(self) -> str:
        return f"{self.file}:{self.position}"

    def as_list(self) -> list[object]:
        return [self.file, self.position]


def file_sequence(name: str) -> int:
    """mysql-bin.000042 -> 42; file names compare by their numeric suffix."""
    return int(name.rsplit(".", 1)[1])


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


def lag_bytes(files: list[tuple[str, int]], applied: BinlogPosition, head: BinlogPosition) -> int:
    """Bytes of binlog between the applied position and the head, from a file list with sizes."""
    if applied >= head or applied.file == head.file:
        return max(0, head.position - applied.position) if applied.file == head.file else 0
    sizes = dict(files)
    total = max(0, sizes.get(applied.file, applied.position) - applied.position)
    for name, size in sorted(files, key=lambda f: file_sequence(f[0])):
        if file_sequence(applied.file) < file_sequence(name) < file_sequence(head.file):
            total += size
    return total + head.position
