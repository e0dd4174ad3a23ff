"""Step 10: prove the target equals the paused source: same position, then the rows changed since the
last live proof compared by key (migrator/proofs.py).

Rows proven in step 8's pass or a later round and untouched since are equal now too; the rows the
archive shows changed since the last round (and those still pending) are compared by key on the
paused source and the caught-up target; a table whose changes cannot be named by key (no key, an
undecodable key type) is compared whole. Afterwards the source's binlog may have moved (RDS rotates
files and writes its heartbeat table): only a change in the migrated schemas fails the proof.
"""

from __future__ import annotations

from typing import Any

from migrator import cutover_xa, proofs
from migrator.config import Config
from migrator.errors import VerificationFailed
from migrator.mysql.positions import BinlogPosition
from migrator.mysql.schema import TableInfo
from migrator.mysql.sequences import compare_sequences
from migrator.step import Check, StepContext
from migrator.sync_status import SyncStatus, measure

NUMBER = 10
NAME = "full-sync"
NEEDS: tuple[str, ...] = ("paused_at",)


def describe(config: Config) -> str:
    how = (
        "compare every table in full"
        if config.cutover.verify_all_in_pause
        else "compare by key only the rows changed since the last live round (and those still pending); a table "
        "with no key, or a key the archive cannot name, is compared whole"
    )
    return (
        "refuse a prepared XA transaction on the source (XA RECOVER, at once under read_only, which blocks its "
        "XA COMMIT) or pending in the target's _migrator.apply_xa; "
        "wait until the applied position equals the paused source's binlog head "
        f"(up to {config.cutover.catchup_timeout_seconds} s); then {how}"
        + (" (CHECKSUM TABLE first, same server version)" if config.cutover.whole_table_checksums else "")
        + "; any difference, or any write to the migrated schemas after the final position, stops here naming "
        "table and keys"
    )


def check(ctx: StepContext) -> Check:
    return Check(False, "equality is proven afresh on every run")


def _reassert_pause(ctx: StepContext) -> None:
    """read_only does not survive a source restart: a source restarted after step 9 takes writes again,
    and the head never holds still. Put the pause back; what was written meanwhile streams and applies."""
    if not ctx.config.cutover.read_only:
        return
    with ctx.source() as s:
        writable = str(s.variable("read_only")).upper() in ("OFF", "0")
    if writable:
        ctx.log.warning("writes.pause_lost", why="the source is writable again (restarted?); read_only set again")
        ctx.journal.event("writes.pause_reasserted", NUMBER)
        ctx.platform.set_source_read_only(True)


def _whole_tables_comparable(ctx: StepContext) -> bool:
    """CHECKSUM TABLE values depend on the server's row format: compare them only across one version."""
    if not ctx.config.cutover.whole_table_checksums:
        return False
    return ctx.source_flavour == ctx.target_flavour


def _still_written(ctx: StepContext, final: BinlogPosition, tables: list[TableInfo]) -> None:
    """Fail if the migrated schemas changed after ``final``; the head moving for other reasons (RDS rotating
    binlogs, rdsadmin writing mysql.rds_heartbeat2) is fine."""
    after = proofs.changed_after(ctx, final, tables)
    if after is not None and after.tables():
        names = ", ".join(sorted(f"{s}.{t}" for s, t in after.tables()))
        raise VerificationFailed(
            f"the migrated schemas changed on the source after the final position {final} while writes were "
            f"paused: {names}",
            hint="something still writes to the source (an event, a SUPER user, a missed app): stop it, then "
            "`migrator run` verifies again",
        )


def run(ctx: StepContext) -> dict[str, Any]:
    _reassert_pause(ctx)
    cutover_xa.wait_in_pause(ctx)  # before the catch-up: a commit while a hook-only pause waits is applied
    last: list[SyncStatus] = []

    def at_head() -> bool:
        with ctx.source() as s, ctx.target() as t:
            status = measure(s, t, ctx.source_flavour)
        last[:] = [status]
        return status.at_head

    ctx.wait(
        "catch-up",
        at_head,
        timeout=ctx.config.cutover.catchup_timeout_seconds,
        interval=0.05,
        what="the applier to reach the paused source's final position",
    )
    final = last[0].source_head
    ctx.put_fact("final_position", final.as_list())
    # Committed rows may be equal while a prepared XA is not: that alone must stop the switch.
    cutover_xa.refuse_at_final_position(ctx)
    tables = proofs.migrated_tables(ctx)
    try:
        compared, how = proofs.prove_in_pause(
            ctx, final, tables, whole_tables_checksum=_whole_tables_comparable(ctx)
        )
    except VerificationFailed:
        _still_written(ctx, final, tables)  # a write during the comparison explains a difference better
        raise
    _still_written(ctx, final, tables)
    ctx.log.info("verify.equal", migrated_tables=len(tables), how=how, **compared.as_dict())
    with ctx.source() as s, ctx.target() as t:
        sequences = compare_sequences(s, t, list(ctx.config.migration.schemas))  # MariaDB SEQUENCE state
    if sequences:
        raise VerificationFailed(f"sequences differ: {'; '.join(sequences[:5])}", hint="do not cut over")
    return {
        "final_position": final.as_list(),
        "verification": {
            "tables": len(tables),
            "how": how,
            "checked_during_pause": len(compared.tables),
            "proven_before_pause": len(tables) - len(compared.tables),
            "keys_checked": compared.keys,
            "rows_checked": compared.rows,
            "bytes_checked": compared.bytes,
            "whole_tables": len(compared.whole_tables),
            "whole_table_names": compared.whole_tables,
            "seconds": round(compared.seconds, 3),
            "ok": True,
        },
    }
