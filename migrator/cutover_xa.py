"""Prepared XA transactions at the cut-over: refused, never carried across the DNS switch.

A transaction prepared on the source (XA PREPARE, no XA COMMIT yet) holds rows the source has not
committed; the target holds them only as pending in ``_migrator.apply_xa``. After the switch the
application's transaction manager would send its XA COMMIT to the target (DNS), which has no such XA
(XAER_NOTA), or to the old source: a write the target never gets. So no cut-over while one exists.

Can the application still end one once step 9 froze the source? Measured on MariaDB 10.11.19 (a real
server, tests' harness): with read_only=ON, XA COMMIT and XA ROLLBACK of a prepared XA fail with error
1290 (ER_OPTION_PREVENTS_STATEMENT, "running with the --read-only option") for an account without
READ ONLY ADMIN, from the preparing session and from another one (a transaction manager's recovery);
an account holding READ ONLY ADMIN (or ALL) ends it. The manual only says read_only makes non-temporary
tables read-only except for READ ONLY ADMIN. Hence: step 9 waits for them before freezing (cheap, nothing
to undo); inside a read_only pause waiting is pointless, so step 10 fails at once (the failure path gives
the source its writes back, and with them the application's XA COMMIT); a hook-only pause waits there too.
"""

from __future__ import annotations

from migrator.clock import poll_until
from migrator.errors import StepFailed
from migrator.mysql.xa import PreparedXa, prepared_xas
from migrator.step import StepContext
from migrator.tools.binlog_applier import XA_TABLE

POLL_SECONDS = 0.2
APPLY_XA_SQL = f"SELECT xid FROM {XA_TABLE} ORDER BY xid"
REMEDY = (
    "on the source, `XA RECOVER` lists them: have the application (or its transaction manager) finish them, "
    "or end one left behind with `XA COMMIT <xid>` or `XA ROLLBACK <xid>` (xid as listed), then `migrator run` "
    "again: the cut-over starts over; cutover.xa_wait_seconds sets how long step 9 waits for them"
)


def on_source(ctx: StepContext) -> list[PreparedXa]:
    with ctx.source() as source:
        return prepared_xas(source, ctx.source_flavour)


def pending_on_target(ctx: StepContext) -> list[str]:
    """XIDs whose XA PREPARE the applier recorded and whose XA COMMIT/ROLLBACK it has not applied."""
    with ctx.target() as target:
        return [bytes(xid).decode("utf-8", "replace") for (xid,) in target.rows(APPLY_XA_SQL)]


def listed(names: list[str]) -> str:
    return ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")


def _wait_for_source(ctx: StepContext, seconds: float, *, when: str) -> list[PreparedXa]:
    """Poll the source's XA RECOVER for up to ``seconds``; returns what is still prepared."""
    prepared = on_source(ctx)
    if not prepared or seconds <= 0:
        return prepared
    names = [xa.readable for xa in prepared]
    ctx.journal.event("cutover.prepared_xa_wait", ctx.step_number, when=when, prepared=names, seconds=seconds)
    ctx.log.warning("cutover.prepared_xa_wait", when=when, prepared=names, seconds=seconds)
    left: list[PreparedXa] = prepared

    def ended() -> bool:
        left[:] = on_source(ctx)
        return not left

    poll_until(ctx.clock, ended, deadline=ctx.clock.now() + seconds, interval=POLL_SECONDS)
    return left


def _refuse(ctx: StepContext, source: list[PreparedXa], target: list[str], *, when: str, why: str) -> None:
    names = [xa.readable for xa in source]
    ctx.journal.event("cutover.prepared_xa", ctx.step_number, when=when, source=names, target=target)
    ctx.log.error("cutover.prepared_xa", when=when, source=names, target=target)
    parts = []
    if names:
        parts.append(f"{len(names)} prepared XA transaction(s) on the source: {listed(names)}")
    if target:
        parts.append(f"{len(target)} pending in the target's _migrator.apply_xa: {listed(target)}")
    raise StepFailed(
        f"{why}: {'; '.join(parts)}. Their rows are not committed on the source, and after the DNS switch the "
        "application's XA COMMIT would reach the target, which has no such XA (XAER_NOTA)",
        hint=REMEDY,
    )


def refuse_before_freeze(ctx: StepContext) -> None:
    """Step 9, before anything pauses: wait (bounded) for the source's prepared XA to end, else refuse."""
    left = _wait_for_source(ctx, ctx.config.cutover.xa_wait_seconds, when="before freeze")
    if left:
        _refuse(ctx, left, [], when="before freeze", why="not pausing writes")


def wait_in_pause(ctx: StepContext) -> None:
    """Step 10, before the catch-up: only a hook-only pause waits (read_only blocks XA COMMIT, see above),
    and before the catch-up so what the application commits meanwhile is applied."""
    frozen = ctx.config.cutover.read_only
    left = _wait_for_source(ctx, 0 if frozen else ctx.config.cutover.xa_wait_seconds, when="in pause")
    if left:
        why = "not cutting over" + (" (read_only on the source refuses their XA COMMIT: no use waiting)" if frozen else "")
        _refuse(ctx, left, pending_on_target(ctx), when="in pause", why=why)


def refuse_at_final_position(ctx: StepContext) -> None:
    """Step 10, caught up and before the proof counts: nothing prepared on either side."""
    source, target = on_source(ctx), pending_on_target(ctx)
    if source or target:
        _refuse(ctx, source, target, when="at the final position", why="not cutting over")
