"""Step 14: writes resume, now on the target; report the write-pause window."""

from __future__ import annotations

from typing import Any

from migrator import cutover
from migrator.config import Config
from migrator.hooks import run_hook
from migrator.mysql import routines
from migrator.step import Check, StepContext

NUMBER = 14
NAME = "resume-writes"
NEEDS: tuple[str, ...] = ("paused_at", "dns_switch_change")


def describe(config: Config) -> str:
    hook = (
        f"; run the resume hook {' '.join(config.cutover.resume_hook)!r}"
        if config.cutover.resume_hook
        else ""
    )
    return (
        f"refuse while an account seen connected to the source is missing on the target; "
        f"set the target writable (read_only=OFF); enable the events enabled on the source (created DISABLED by "
        f"step 12){hook}; report the write pause (step 9 to now)"
    )


def _target_writable(ctx: StepContext) -> bool:
    with ctx.target() as t:
        return str(t.variable("read_only")).upper() in ("OFF", "0")


def check(ctx: StepContext) -> Check:
    resumed = ctx.journal.fact("resumed_at")
    if resumed is not None and _target_writable(ctx):
        return Check(
            True,
            "target writable",
            {"resumed_at": resumed, "write_pause_seconds": ctx.journal.fact("write_pause_seconds")},
        )
    return Check(False, "target still read-only")


def run(ctx: StepContext) -> dict[str, Any]:
    with ctx.target() as t:
        cutover.refuse_missing_accounts(ctx.config, ctx.journal, t)  # the application must be able to log in
        for sql in ctx.target_flavour.read_only_statements(False):
            t.execute(sql)
        schemas = list(ctx.config.migration.schemas)
        with ctx.source() as s:
            enabled = routines.enabled_events(s, schemas)
        for ref in enabled:
            routines.enable_event(t, ref)
    resumed_at = ctx.clock.now()
    pause = round(resumed_at - float(ctx.fact("paused_at")), 3)
    cut = ctx.config.cutover
    context = {
        "target_host": ctx.config.target.host,
        "target_port": str(ctx.config.target.port),
        "event": "resume",
    }
    run_hook(cut.resume_hook, context, timeout=cut.hook_timeout_seconds)
    ctx.log.info("writes.resumed", on=ctx.config.target.describe(), write_pause_seconds=pause)
    return {"resumed_at": resumed_at, "write_pause_seconds": pause}
