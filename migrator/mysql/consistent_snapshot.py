"""Several source sessions that all see one moment, and the binlog coordinates of that moment.

How mydumper starts a parallel dump: block commits, open every worker's ``START TRANSACTION WITH
CONSISTENT SNAPSHOT``, read the binlog position, unblock. Each worker then reads its share of the
tables as of that position, and a replica started there misses nothing and repeats nothing.

MariaDB blocks commits with ``BACKUP STAGE START`` + ``BACKUP STAGE BLOCK_COMMIT`` (the lock
mariadb-backup takes): statements keep running and only their commits wait, where ``FLUSH TABLES
WITH READ LOCK`` (MySQL, which has no backup stages) also stops every write statement and first
waits for running ones. MariaDB's per-session ``binlog_snapshot_file/position`` give one session's
coordinates without a lock, but N sessions opened one after another see N moments; they are
only read here to prove every session sits at the locked position.

A prepared XA transaction at that moment cannot be copied: its rows are invisible to the snapshot,
while its XA PREPARE is already in the binlog before the coordinates, so the replica would later
stop at its XA COMMIT (XAER_NOTA). Both locks block XA PREPARE (measured on MariaDB 10.11: it waits
for the backup lock), so ``XA RECOVER`` is read under the lock; if it lists any, the lock is
released, and taken again once XA RECOVER is empty, up to a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from migrator.endpoint import Endpoint
from migrator.errors import StepFailed
from migrator.mysql.flavour import Flavour
from migrator.mysql.session import MySQLSession
from migrator.ports import SnapshotCoordinates

# How long a commit may wait for our lock before we give up taking it (the source's writes wait
# meanwhile; a commit lock that cannot be had in this time is not worth holding).
LOCK_WAIT_SECONDS = 30
# How often XA RECOVER is read while prepared transactions are waited out.
XA_POLL_SECONDS = 0.2


class PreparedXaTransactions(StepFailed):
    """Prepared XA transactions on the source never cleared: no consistent start point could be taken."""


@dataclass
class ConsistentSnapshot:
    """``sessions`` each hold an open consistent-snapshot transaction taken at ``coordinates``."""

    coordinates: SnapshotCoordinates
    sessions: list[MySQLSession] = field(default_factory=list)
    xa_waits: int = 0  # how many times prepared XA transactions made us release the lock and wait

    def close(self) -> None:
        for session in self.sessions:
            session.close()
        self.sessions.clear()


def _lock_statements(flavour: Flavour) -> tuple[list[str], str]:
    if flavour.is_mariadb:
        return ["BACKUP STAGE START", "BACKUP STAGE BLOCK_COMMIT"], "BACKUP STAGE END"
    return ["FLUSH TABLES WITH READ LOCK"], "UNLOCK TABLES"


def prepared_xa(session: MySQLSession) -> list[str]:
    """The XIDs (gtrid+bqual as text) of XA transactions prepared on the server."""
    out = []
    for row in session.dicts("XA RECOVER"):
        data = row.get("data", b"")
        text = data.decode("utf-8", "replace") if isinstance(data, bytes | bytearray) else str(data)
        out.append(text)
    return out


def _coordinates(lock: MySQLSession, flavour: Flavour) -> SnapshotCoordinates:
    rows = lock.dicts(flavour.binary_log_status_sql)
    if not rows:
        raise StepFailed(
            "the source has no binary log: a replica cannot start from it",
            hint="enable log_bin (binlog_format=ROW) on the source",
        )
    return SnapshotCoordinates(file=str(rows[0]["File"]), position=int(rows[0]["Position"]))


def _session_position(session: MySQLSession) -> tuple[str, int] | None:
    """MariaDB: the binlog position this session's snapshot corresponds to (None elsewhere)."""
    status = {str(k).lower(): v for k, v in session.rows("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")}
    if "binlog_snapshot_file" not in status:
        return None
    return str(status["binlog_snapshot_file"]), int(status["binlog_snapshot_position"])


def open_consistent_snapshot(
    endpoint: Endpoint,
    flavour: Flavour,
    *,
    sessions: int,
    xa_timeout: float,
    log: Any,
    session_setup: Sequence[str] = (),
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ConsistentSnapshot:
    """``sessions`` connections to ``endpoint`` in one consistent snapshot, with its binlog coordinates.

    ``session_setup`` statements run in each session before its snapshot opens (time zone...).
    Raises PreparedXaTransactions when XA RECOVER is still not empty after ``xa_timeout`` seconds.
    """
    if sessions < 1:
        raise ValueError("sessions must be at least 1")
    lock_sql, unlock_sql = _lock_statements(flavour)
    readers: list[MySQLSession] = []
    lock = MySQLSession(endpoint)
    try:
        # Connected before the lock: the source's commits wait only for the statements below.
        for _ in range(sessions):
            reader = MySQLSession(endpoint)
            readers.append(reader)
            for sql in session_setup:
                reader.execute(sql)
            reader.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        lock.execute("SET SESSION lock_wait_timeout = %s", (LOCK_WAIT_SECONDS,))
        deadline = monotonic() + xa_timeout
        waits = 0
        while True:
            for sql in lock_sql:
                lock.execute(sql)
            try:
                pending = prepared_xa(lock)
                if not pending:
                    started = monotonic()
                    for reader in readers:
                        reader.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                    coordinates = _coordinates(lock, flavour)
                    held = monotonic() - started
                    break
            finally:
                lock.execute(unlock_sql)
            waits += 1
            log.info("replica.seed_waits_for_xa", prepared=pending[:10], count=len(pending))
            # Wait without the lock (the XA's owner needs commits to go on) until none is prepared.
            while prepared_xa(lock):
                if monotonic() > deadline:
                    raise PreparedXaTransactions(
                        f"{len(pending)} prepared XA transaction(s) on the source stayed prepared for "
                        f"{xa_timeout:.0f} s ({', '.join(pending[:5])}): a replica started while one is prepared "
                        "would lack its rows and stop at its XA COMMIT",
                        hint="XA COMMIT or XA ROLLBACK them on the source (XA RECOVER lists them), then run again",
                    )
                sleep(XA_POLL_SECONDS)
        for reader in readers:
            own = _session_position(reader)
            if own is not None and own != (coordinates.file, coordinates.position):
                raise StepFailed(
                    f"a snapshot session sits at {own[0]}:{own[1]}, not at the locked position "
                    f"{coordinates.file}:{coordinates.position}: commits were not blocked",
                )
        log.info(
            "replica.seed_snapshot",
            file=coordinates.file,
            position=coordinates.position,
            sessions=sessions,
            lock_held_seconds=round(held, 3),
            xa_waits=waits,
        )
        return ConsistentSnapshot(coordinates, readers, waits)
    except BaseException:
        for reader in readers:
            reader.close()
        raise
    finally:
        lock.close()
