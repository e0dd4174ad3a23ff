"""Step 3: stop the replica at exact source coordinates and promote it: a frozen snapshot.

The snapshot must equal the source at those coordinates (review A3): a replica whose parallel
applier can stop with gaps, or whose event scheduler can fire the migrated schemas' events, is
refused before it is stopped; the replica's GTID state and replicated heartbeat are recorded with
the coordinates and must not move through the promotion (and up to the end of the copy, step 6).

A stop between an XA PREPARE and its XA COMMIT is no snapshot: the replica holds the transaction
prepared (invisible to the copy) and the applier would meet its XA COMMIT without the prepared part.
Such a stop is undone (replication started again until the replica is past those transactions) and
retried a bounded number of times; an XA transaction left prepared on the source fails the step.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from migrator.clock import poll_until
from migrator.config import Config
from migrator.errors import StepFailed
from migrator.mysql import heartbeat
from migrator.mysql.snapshot_proof import (
    SnapshotState,
    prove_unchanged,
    read_state,
    refuse_firing_events,
    refuse_parallel_gaps,
)
from migrator.mysql.source_identity import read_identity
from migrator.mysql.xa import PreparedXa, prepared_xas
from migrator.ports import SnapshotCoordinates
from migrator.services import HEARTBEAT
from migrator.step import Check, StepContext

NUMBER = 3
NAME = "snapshot"
NEEDS: tuple[str, ...] = ("replica_id",)
STATE_FACT = "snapshot_state"
# Stops tried before a prepared XA transaction fails the step, and how long each waits for the replica to
# apply past the ones it held: an application's XA PREPARE -> XA COMMIT takes milliseconds, so ~20 s of
# prepared XA at every stop means one the application (or a crashed transaction manager) left prepared.
XA_STOP_ATTEMPTS = 20
XA_SETTLE_SECONDS = 1.0


def describe(config: Config) -> str:
    stop = "CALL mysql.rds_stop_replication" if config.rds else "STOP SLAVE"
    promote = "PromoteReadReplica" if config.rds else "RESET SLAVE ALL"
    return (
        f"refuse a replica whose parallel applier can leave gaps or whose event scheduler can fire events; "
        f"{stop} on the replica (again, up to {XA_STOP_ATTEMPTS} times, while XA RECOVER there lists a "
        f"prepared XA transaction), record Relay_Master_Log_File/Exec_Master_Log_Pos (the source coordinates "
        f"of the snapshot) with its GTID state and heartbeat in the journal, then {promote} and prove the "
        f"GTID state and heartbeat did not move"
    )


def prove_snapshot(ctx: StepContext, *, when: str) -> None:
    """Raise SnapshotNotProven if the snapshot moved since its coordinates (used by steps 3 and 6)."""
    recorded = ctx.journal.fact(STATE_FACT)
    if recorded is None:  # a journal from before the proof existed: say so, every time
        ctx.log.warning("snapshot.unproven", reason="no snapshot state recorded with the coordinates", when=when)
        return
    with ctx.snapshot() as snapshot:
        prove_unchanged(
            snapshot, ctx.source_flavour, SnapshotState.from_fact(recorded), ctx.config.migration.schemas, when=when
        )


def check(ctx: StepContext) -> Check:
    snapshot = ctx.journal.fact("snapshot")
    if snapshot is None:
        return Check(False, "coordinates not recorded yet")
    state = ctx.platform.replica_state(ctx.fact("replica_id"))
    if state.promoted:
        prove_snapshot(ctx, when="after promotion")
        return Check(True, f"promoted at {snapshot['file']}:{snapshot['position']}", {"snapshot": snapshot})
    return Check(False, "coordinates recorded, promotion pending")


def _replica_has_beat(ctx: StepContext) -> bool:
    with ctx.snapshot() as replica:
        return heartbeat.latest(replica) is not None


def _prepared_on_replica(ctx: StepContext) -> list[PreparedXa]:
    with ctx.snapshot() as replica:
        return prepared_xas(replica, ctx.source_flavour)


def _wait_past(ctx: StepContext, held: set[PreparedXa]) -> None:
    """Until the running replica no longer holds these prepared (their XA COMMIT/ROLLBACK applied), briefly."""
    poll_until(
        ctx.clock,
        lambda: not held.intersection(_prepared_on_replica(ctx)),
        deadline=ctx.clock.now() + XA_SETTLE_SECONDS,
        interval=0.1,
    )


def _stop_clear_of_prepared_xa(ctx: StepContext, identifier: str) -> SnapshotCoordinates:
    """Stop replication at a point where the replica holds no prepared XA transaction (or fail, running)."""
    for attempt in range(1, XA_STOP_ATTEMPTS + 1):
        coords = ctx.platform.stop_replication(identifier)
        prepared = _prepared_on_replica(ctx)
        if not prepared:
            if attempt > 1:
                ctx.log.info("snapshot.xa_clear", attempt=attempt, file=coords.file, position=coords.position)
            return coords
        names = [xa.readable for xa in prepared]
        ctx.journal.event(
            "snapshot.prepared_xa", step=ctx.step_number, attempt=attempt, attempts=XA_STOP_ATTEMPTS,
            xids=len(prepared), prepared=names, file=coords.file, position=coords.position,
        )
        ctx.log.warning(
            "snapshot.prepared_xa", attempt=attempt, attempts=XA_STOP_ATTEMPTS, xids=len(prepared),
            prepared=names, file=coords.file, position=coords.position,
        )
        # Not a snapshot point: replicate on (also after the last attempt, so a retry starts from a live replica).
        ctx.platform.start_replication(identifier)
        if attempt == XA_STOP_ATTEMPTS:
            break
        _wait_past(ctx, set(prepared))
    listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    raise StepFailed(
        f"each of {XA_STOP_ATTEMPTS} stops of the replica held a prepared XA transaction; the last held "
        f"{len(names)}: {listed}. A snapshot taken between an XA PREPARE and its XA COMMIT would miss their "
        "rows, so replication was started again and nothing was promoted",
        hint="on the source, `XA RECOVER` lists them: have the application (or its transaction manager) "
        "finish them, or end one that was left behind with `XA COMMIT <xid>` or `XA ROLLBACK <xid>` "
        "(xid as listed above), then `migrator run` again: step 3 starts over",
    )


def run(ctx: StepContext) -> dict[str, Any]:
    identifier = ctx.fact("replica_id")
    snapshot = ctx.journal.fact("snapshot")
    flavour = ctx.source_flavour
    if snapshot is None:
        with ctx.snapshot() as replica:
            refuse_parallel_gaps(replica, flavour)
            refuse_firing_events(replica, ctx.config.migration.schemas, "the replica")
        # Without GTIDs the replicated heartbeat is the proof: have one before stopping.
        ctx.services.start(HEARTBEAT)  # started by step 2; a journal from before that starts it here
        ctx.wait(
            "heartbeat-replicated",
            lambda: _replica_has_beat(ctx),
            timeout=max(60.0, ctx.config.sync.heartbeat_seconds * 10),
            interval=0.2,
            what="the source's heartbeat row to reach the replica",
        )
        with ctx.source() as source:
            # Which server the coordinates belong to: every streamer (re)start checks it (review A6).
            identity = read_identity(source, flavour)
        coords = _stop_clear_of_prepared_xa(ctx, identifier)
        with ctx.snapshot() as replica:
            state = read_state(replica, flavour)
        # The state and identity first: a "snapshot" fact always has them beside it.
        ctx.put_fact(STATE_FACT, state.as_fact())
        ctx.put_fact("source_identity", identity.as_fact())
        snapshot = asdict(coords)
        # Journaled before promote: promotion erases the replica's record of where it stopped.
        ctx.put_fact("snapshot", snapshot)
        ctx.log.info(
            "snapshot.coordinates",
            file=coords.file,
            position=coords.position,
            gtid=coords.gtid,
            gtid_state=state.gtid,
            heartbeat=state.heartbeat,
        )
    ctx.platform.promote(identifier)
    ctx.wait(
        "promoted",
        lambda: ctx.platform.replica_state(identifier).promoted,
        timeout=ctx.config.sync.promote_timeout_seconds,  # its own budget (review C5): a reboot of a big instance
        interval=1.0,
        what=f"replica {identifier!r} to be promoted to a standalone instance",
    )
    prove_snapshot(ctx, when="after promotion")
    return {"snapshot": snapshot}
