"""Proof that the promoted snapshot still equals the source at its recorded coordinates (review A3).

Step 3 stops the replica at coordinates and promotes it; step 6 copies it hours later. Three things
can change it after the coordinates, and each is refused here with its reason:

- the replica applied past its coordinates (a parallel applier stopped with gaps, or relay log
  applied during the promotion): the GTID state read right after the stop grows, or, without GTIDs
  (MySQL with gtid_mode=OFF), the heartbeat row the source writes every second moves on;
- something writes on the promoted instance (an event, a person): its GTID state grows;
- the event scheduler could fire the migrated schemas' enabled events: refused before the stop, and
  again before and after the copy, whether or not an event has fired yet.

A state that cannot be read is "not proven", never "equal".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from migrator.errors import StepFailed
from migrator.mysql import heartbeat
from migrator.mysql.flavour import Flavour
from migrator.mysql.session import MySQLSession, error_code

START_OVER = (
    "the snapshot no longer matches its coordinates: start over from step 2 (`migrator cleanup --confirm`, "
    "a new migration.workdir) after removing the cause"
)


class SnapshotNotProven(StepFailed):
    """The snapshot may differ from the source at its coordinates; copying it would copy the difference."""


@dataclass(frozen=True)
class SnapshotState:
    gtid: str | None  # flavour's executed-transaction state; None: the server has no GTIDs
    replicated_gtid: str | None  # MariaDB's gtid_slave_pos; None on MySQL (gtid_executed holds both)
    heartbeat: int | None  # the replicated heartbeat's beat; None: no row yet

    def as_fact(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_fact(cls, data: dict[str, Any]) -> SnapshotState:
        return cls(data.get("gtid"), data.get("replicated_gtid"), data.get("heartbeat"))


def read_state(session: MySQLSession, flavour: Flavour) -> SnapshotState:
    row = session.one(flavour.gtid_state_sql)
    gtid = None if row is None or row[0] is None else str(row[0])
    replicated = None if row is None or row[1] is None else str(row[1])
    try:
        beat = heartbeat.latest(session)
    except Exception as exc:
        if error_code(exc) not in (1146, 1049):  # no heartbeat table (yet) on this server
            raise
        beat = None
    return SnapshotState(gtid=gtid, replicated_gtid=replicated, heartbeat=None if beat is None else beat[0])


def has_gtids(state: SnapshotState) -> bool:
    return state.gtid is not None or state.replicated_gtid is not None


def differences(recorded: SnapshotState, now: SnapshotState) -> list[str]:
    """What moved since the stop, in words; empty when nothing did."""
    found = []
    if recorded.gtid != now.gtid:
        found.append(f"its executed GTIDs went from {recorded.gtid!r} to {now.gtid!r}")
    if recorded.replicated_gtid != now.replicated_gtid:
        found.append(f"its replicated GTIDs went from {recorded.replicated_gtid!r} to {now.replicated_gtid!r}")
    if recorded.heartbeat is not None and recorded.heartbeat != now.heartbeat:
        found.append(
            f"the source's heartbeat row went from beat {recorded.heartbeat} to {now.heartbeat} "
            "(replication ran past the coordinates)"
        )
    return found


def enabled_events(session: MySQLSession, schemas: Sequence[str]) -> list[str]:
    """``schema.event`` of ENABLED events in ``schemas`` (SLAVESIDE_DISABLED and DISABLED ones cannot fire)."""
    if not schemas:
        return []
    placeholders = ", ".join(["%s"] * len(schemas))
    return [
        f"{r[0]}.{r[1]}"
        for r in session.rows(
            "SELECT EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS"
            f" WHERE EVENT_SCHEMA IN ({placeholders}) AND STATUS = 'ENABLED' ORDER BY 1, 2",
            list(schemas),
        )
    ]


def refuse_firing_events(session: MySQLSession, schemas: Sequence[str], where: str) -> None:
    scheduler = str(session.value("SELECT @@GLOBAL.event_scheduler")).upper()
    if scheduler not in ("ON", "1"):
        return
    events = enabled_events(session, schemas)
    if events:
        shown = ", ".join(events[:10]) + (f" and {len(events) - 10} more" if len(events) > 10 else "")
        raise SnapshotNotProven(
            f"the event scheduler is ON on {where} and the migrated schemas have enabled events ({shown}): "
            "an event firing there changes the snapshot after its coordinates",
            hint="turn the event scheduler off on the snapshot (event_scheduler=OFF in the replica's parameter "
            "group, or SET GLOBAL event_scheduler = OFF) and retry; the events are created on the target in "
            "step 12 and enabled at step 14",
        )


def refuse_parallel_gaps(session: MySQLSession, flavour: Flavour) -> None:
    row = session.one(flavour.parallel_replication_sql)
    if row is None:
        raise SnapshotNotProven("the replica's parallel replication settings could not be read")
    reason = flavour.parallel_replication_gaps(row[0], row[1])
    if reason is not None:
        raise SnapshotNotProven(
            f"{reason}, so its stop position would not describe what it holds",
            hint=flavour.parallel_replication_remedy,
        )


def prove_unchanged(
    session: MySQLSession, flavour: Flavour, recorded: SnapshotState, schemas: Sequence[str], *, when: str
) -> SnapshotState:
    """Raise SnapshotNotProven when the snapshot moved since ``recorded`` or could move by an event."""
    refuse_firing_events(session, schemas, f"the snapshot ({when})")
    now = read_state(session, flavour)
    moved = differences(recorded, now)
    if moved:
        raise SnapshotNotProven(
            f"the snapshot changed after its coordinates ({when}): " + "; ".join(moved), hint=START_OVER
        )
    return now
