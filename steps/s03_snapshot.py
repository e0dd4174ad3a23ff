"""Step 3: stop the replica at exact source coordinates and promote it: a frozen snapshot."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from migrator.config import Config
from migrator.step import Check, StepContext

NUMBER = 3
NAME = "snapshot"
NEEDS: tuple[str, ...] = ("replica_id",)


def describe(config: Config) -> str:
    stop = "CALL mysql.rds_stop_replication" if config.rds else "STOP SLAVE"
    promote = "PromoteReadReplica" if config.rds else "RESET SLAVE ALL"
    return (
        f"{stop} on the replica, record Relay_Master_Log_File/Exec_Master_Log_Pos (the source coordinates "
        f"of the snapshot) in the journal, then {promote}"
    )


def check(ctx: StepContext) -> Check:
    snapshot = ctx.journal.fact("snapshot")
    if snapshot is None:
        return Check(False, "coordinates not recorded yet")
    state = ctx.platform.replica_state(ctx.fact("replica_id"))
    if state.promoted:
        return Check(True, f"promoted at {snapshot['file']}:{snapshot['position']}", {"snapshot": snapshot})
    return Check(False, "coordinates recorded, promotion pending")


def run(ctx: StepContext) -> dict[str, Any]:
    identifier = ctx.fact("replica_id")
    snapshot = ctx.journal.fact("snapshot")
    if snapshot is None:
        coords = ctx.platform.stop_replication(identifier)
        snapshot = asdict(coords)
        # Journaled before promote: promotion erases the replica's record of where it stopped.
        ctx.put_fact("snapshot", snapshot)
        ctx.log.info("snapshot.coordinates", file=coords.file, position=coords.position, gtid=coords.gtid)
    ctx.platform.promote(identifier)
    ctx.wait(
        "promoted",
        lambda: ctx.platform.replica_state(identifier).promoted,
        timeout=ctx.config.sync.timeout_seconds,
        interval=1.0,
        what=f"replica {identifier!r} to be promoted to a standalone instance",
    )
    return {"snapshot": snapshot}
