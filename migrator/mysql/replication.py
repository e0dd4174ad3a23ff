"""A replica's own view of its replication (SHOW SLAVE/REPLICA STATUS), read the same way on every platform."""

from __future__ import annotations

from dataclasses import dataclass

from migrator.errors import StepFailed
from migrator.mysql.flavour import detect
from migrator.mysql.session import MySQLSession
from migrator.ports import SnapshotCoordinates


@dataclass(frozen=True)
class ReplicationStatus:
    replicating: bool  # IO and SQL threads running
    lag_seconds: float | None
    coordinates: SnapshotCoordinates  # the source position applied so far


def replication_status(session: MySQLSession, identifier: str) -> ReplicationStatus | None:
    """None when the server has no replication configured (promoted, or never a replica).

    A stopped SQL thread with an error raises: waiting would never end.
    """
    flavour = detect(str(session.value("SELECT VERSION()")))
    rows = session.dicts(flavour.replica_status_sql)
    if not rows:
        return None
    row = rows[0]
    io, sql = flavour.replica_threads_running(row)
    if not sql and flavour.replica_error(row):
        raise StepFailed(f"replica {identifier!r} stopped with an error: {flavour.replica_error(row)}")
    lag = flavour.replica_lag_seconds(row)
    if io and sql and not flavour.replica_caught_up(row):
        lag = max(lag or 0.0, 0.001)  # Seconds_Behind says 0 while events are still queued
    return ReplicationStatus(
        replicating=io and sql, lag_seconds=lag, coordinates=flavour.replica_coordinates(row)
    )
