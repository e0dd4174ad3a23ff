"""How far the target is behind the source: positions, bytes, heartbeat seconds. Read-only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migrator.mysql import heartbeat
from migrator.mysql.flavour import Flavour
from migrator.mysql.positions import BinlogPosition, binary_logs, lag_bytes, source_head
from migrator.mysql.session import MySQLSession

POSITION_TABLE = "`_migrator`.`apply_position`"


@dataclass(frozen=True)
class SyncStatus:
    source_head: BinlogPosition
    applied: BinlogPosition | None
    lag_bytes: int | None
    lag_seconds: float | None

    @property
    def at_head(self) -> bool:
        return self.applied is not None and self.applied == self.source_head

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_head": str(self.source_head),
            "applied": str(self.applied) if self.applied else None,
            "lag_bytes": self.lag_bytes,
            "lag_seconds": self.lag_seconds,
            "at_head": self.at_head,
        }


def applied_position(target: MySQLSession) -> BinlogPosition | None:
    try:
        row = target.one(f"SELECT file, pos FROM {POSITION_TABLE} WHERE id = 1")
    except Exception:  # table not there yet: nothing applied
        return None
    return None if row is None else BinlogPosition(str(row[0]), int(row[1]))


def measure(source: MySQLSession, target: MySQLSession, flavour: Flavour) -> SyncStatus:
    head = source_head(source, flavour)
    applied = applied_position(target)
    lag_b = None if applied is None else lag_bytes(binary_logs(source), applied, head)
    try:
        lag_s = heartbeat.lag_seconds(source, target)
    except Exception:
        lag_s = None
    return SyncStatus(head, applied, lag_b, lag_s)
