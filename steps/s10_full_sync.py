"""Step 10: prove the target equals the paused source: same position, equal chunk checksums.

Tables step 8 proved equal, and that no binlog event touched since, are equal now too; every
other table is compared chunk by chunk here, while writes are paused.
"""

from __future__ import annotations

from typing import Any

from migrator.config import Config
from migrator.errors import VerificationFailed
from migrator.mysql.checksum import compare_tables
from migrator.mysql.schema import base_tables
from migrator.mysql.sequences import compare_sequences
from migrator.step import Check, StepContext
from migrator.sync_status import SyncStatus, measure
from migrator.tools.binlog_changes import tables_changed

NUMBER = 10
NAME = "full-sync"
NEEDS: tuple[str, ...] = ("paused_at",)


def describe(config: Config) -> str:
    return (
        "wait until the applied position equals the paused source's binlog head "
        f"(up to {config.cutover.catchup_timeout_seconds} s); then compare every table not proven equal in step 8 "
        "and untouched since"
        + (
            " by CHECKSUM TABLE (same server version), and each table that differs"
            if config.cutover.whole_table_checksums
            else ""
        )
        + " by COUNT + BIT_XOR(hash) per primary-key chunk; any difference stops here, naming table and key range"
    )


def check(ctx: StepContext) -> Check:
    return Check(False, "equality is proven afresh on every run")


def _proven_before_pause(ctx: StepContext, final: tuple[str, int]) -> set[tuple[str, str]]:
    pre = ctx.journal.fact("preverify")
    if not pre or ctx.config.cutover.verify_all_in_pause:
        return set()
    since = tables_changed(ctx.config.archive_dir, ctx.source_flavour, tuple(pre["until"]), final)
    if since is None:
        return set()
    return {(schema, name) for schema, name in pre["proven"]} - since


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


def run(ctx: StepContext) -> dict[str, Any]:
    _reassert_pause(ctx)
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
    with ctx.source() as s:
        tables = base_tables(s, list(ctx.config.migration.schemas))
    proven = _proven_before_pause(ctx, final)
    to_check = [t for t in tables if (t.schema, t.name) not in proven]
    report = compare_tables(
        ctx.config.source,
        ctx.config.target,
        to_check,
        workers=ctx.config.sync.checksum_workers,
        whole_tables=_whole_tables_comparable(ctx),
    )
    with ctx.source() as s, ctx.target() as t:
        sequences = compare_sequences(s, t, list(ctx.config.migration.schemas))  # MariaDB SEQUENCE state
        after = measure(s, t, ctx.source_flavour)
    if after.source_head != final:
        raise VerificationFailed(
            f"the source's binlog moved from {final} to {after.source_head} while writes were paused",
            hint="something still writes to the source (an event, a SUPER user, a missed app): stop it, then "
            "`migrator run` verifies again",
        )
    if sequences:
        raise VerificationFailed(f"sequences differ: {'; '.join(sequences[:5])}", hint="do not cut over")
    if not report.ok:
        detail = "; ".join(m.describe() for m in report.mismatches[:5])
        raise VerificationFailed(
            f"{len(report.mismatches)} chunk(s) differ between source and target: {detail}",
            hint="the target is not a faithful copy; do not cut over. `migrator verify` shows the same detail",
        )
    ctx.log.info(
        "verify.equal",
        tables=len(tables),
        checked_in_pause=len(to_check),
        proven_before=len(proven),
        rows=report.rows,
        seconds=round(report.seconds, 3),
    )
    return {
        "final_position": final.as_list(),
        "verification": {
            "tables": len(tables),
            "checked_during_pause": len(to_check),
            "proven_before_pause": len(proven),
            "rows_checked": report.rows,
            "chunks": report.chunks,
            "whole_tables": report.whole_tables,
            "seconds": round(report.seconds, 3),
            "ok": True,
        },
    }
