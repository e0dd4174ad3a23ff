"""Step 9: pause writes on the source (hook command and/or read_only); the write pause starts here."""

from __future__ import annotations

from typing import Any

from migrator import cutover, cutover_xa, proofs
from migrator.config import Config
from migrator.errors import OperatorGate, StepFailed
from migrator.hooks import run_hook
from migrator.services import HEARTBEAT
from migrator.step import Check, StepContext

NUMBER = 9
NAME = "pause-writes"
NEEDS: tuple[str, ...] = ("approx_sync",)


def describe(config: Config) -> str:
    parts = [
        "re-verify by key the rows changed since the last live proof until the lag is under the thresholds and "
        f"at most {config.cutover.max_pause_rows} rows are left for the pause"
        + (" (before asking for approval, and again right before freezing)" if config.cutover.require_approval else "")
    ]
    if config.cutover.require_approval:
        parts.append("stop for operator approval (exit 3; `migrator run --approve-cutover` continues)")
    parts.append(
        f"wait up to {config.cutover.xa_wait_seconds} s for prepared XA transactions on the source (XA RECOVER) "
        "to end, else refuse"
    )
    if config.cutover.pause_hook:
        parts.append(f"run the pause hook {' '.join(config.cutover.pause_hook)!r}")
    if config.cutover.read_only:
        how = "the source's DB parameter group (read_only=1)" if config.rds else "SET GLOBAL read_only=ON"
        parts.append(
            f"set the source read-only through {how}, giving up after {config.cutover.freeze_timeout_seconds} s"
        )
    return "; ".join(parts) + "; record the moment (start of the write pause)"


def _source_read_only(ctx: StepContext) -> bool:
    with ctx.source() as s:
        return str(s.variable("read_only")).upper() in ("ON", "1")


def check(ctx: StepContext) -> Check:
    paused_at = ctx.journal.fact("paused_at")
    if paused_at is None:
        return Check(False, "writes not paused yet")
    if ctx.config.cutover.read_only and not _source_read_only(ctx):
        return Check(False, "pause recorded but the source is writable")
    return Check(True, "writes paused", {"paused_at": paused_at})


def run(ctx: StepContext) -> dict[str, Any]:
    cut = ctx.config.cutover
    settling = ctx.journal.fact("paused_at") is None  # not once the freeze may already hold
    if (
        cut.require_approval
        and "cutover" not in ctx.approvals
        and ctx.journal.fact("cutover_approved") is None
    ):
        # Approval is asked only when the pause would be short: lag under the thresholds, few rows left.
        ctx.put_fact("before_approval", proofs.settle(ctx, why="approval"))
        prepared = cutover_xa.on_source(ctx)  # told now, refused (after a bounded wait) before the freeze
        raise OperatorGate(
            "waiting for approval to pause writes on the source (cut-over)" + (
                f"; note: {len(prepared)} XA transaction(s) prepared on the source now "
                f"({cutover_xa.listed([xa.readable for xa in prepared])}): the cut-over refuses while they stay"
                if prepared else ""
            ),
            hint="check `migrator status` and `migrator verify`, then `migrator run --approve-cutover`",
        )
    if "cutover" in ctx.approvals:
        ctx.put_fact("cutover_approved", {"at": ctx.clock.now()})
    if settling:  # again right before the freeze: the pause compares only what changed after this round
        ctx.put_fact("before_freeze", proofs.settle(ctx, why="freeze"))
        # A prepared XA would fail the pause (read_only blocks its XA COMMIT): wait for it here, unfrozen.
        cutover_xa.refuse_before_freeze(ctx)
    with ctx.source() as s:
        cutover.refuse_long_writers(ctx.config, s)  # before anything pauses: nothing to undo
        cutover.record_connected(ctx.journal, s, NUMBER)  # the last look at who writes to the source
    ctx.services.stop(HEARTBEAT)  # our own writes must stop too, or the source never goes still
    paused_at = ctx.journal.fact("paused_at")
    if paused_at is None:
        if cut.read_only:  # restored exactly by abort-cutover (and the engine on a failure in the pause)
            ctx.put_fact(cutover.READ_ONLY_BEFORE, ctx.platform.source_read_only_setting())
        paused_at = ctx.clock.now()
        ctx.put_fact("paused_at", paused_at)
    context = {
        "source_host": ctx.config.source.host,
        "source_port": str(ctx.config.source.port),
        "event": "pause",
    }
    run_hook(cut.pause_hook, context, timeout=cut.hook_timeout_seconds)
    if cut.read_only:
        try:
            ctx.platform.set_source_read_only(True)
        except Exception as exc:
            # The freeze did not take (or took late): undo it whatever cutover.on_failure says.
            cutover.abort_cutover(
                ctx.config, ctx.journal, ctx.platform, log=ctx.log, who="migrator (automatic)",
                why=f"the freeze failed: {exc}", automatic=True,
            )
            raise StepFailed(
                f"could not make the source read-only within {cut.freeze_timeout_seconds} s: {exc}; writes resumed",
                hint="a long transaction may hold locks: see information_schema.innodb_trx on the source, then "
                "`migrator run` to try the cut-over again",
            ) from exc
    ctx.log.info("writes.paused", at=paused_at)
    return {"paused_at": paused_at}
