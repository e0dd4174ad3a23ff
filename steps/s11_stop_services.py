"""Step 11: stop the applier; the target now holds the source's final position.

The streamer keeps copying the source's binlog until `migrator finish`: anything written to a
migrated schema there from now on is a stray write, raised as an alarm (migrator/source_watch.py).

The target's AUTO_INCREMENT counters are raised to the paused source's (ids burned there by rolled-back
inserts are not handed out again after the switch).

Then, still before the DNS switch, the definitions step 12 created are brought up to the frozen
source's: anything created, changed or dropped on the source since step 12 read them (the applier
replayed that DDL, but with the source's DEFINER and possibly racing step 12) is re-created or dropped.
Accounts are refreshed the same way (a password rotated on the source since step 12 is the target's too).
Those statements already succeeded on this target in step 12, so they cannot fail for a grant here.
"""

from __future__ import annotations

from typing import Any

from migrator import cutover
from migrator.config import Config
from migrator.mysql import auto_increment, routines
from migrator.services import APPLIER
from migrator.step import Check, StepContext
from steps import s12_routines

NUMBER = 11
NAME = "stop-services"
NEEDS: tuple[str, ...] = ("final_position",)


def describe(config: Config) -> str:
    return (
        "stop the binlog applier (the streamer keeps reading the source until `migrator finish`, so a write "
        "to a migrated schema after the final position raises an alarm); refuse if an account seen "
        "connected to the source cannot log in to the target; raise the target's "
        "AUTO_INCREMENT counters to the paused source's (information_schema.TABLES); re-create any procedure, "
        "view, trigger or event changed on the source since step 12"
    )


def check(ctx: StepContext) -> Check:
    services = ctx.journal.services()
    if services.get(APPLIER, ("stopped", None))[0] == "running":
        return Check(False, "the applier is still running")
    return Check(False, "applier stopped; definitions are compared afresh")


def resync_definitions(ctx: StepContext) -> dict[str, Any]:
    """Make the target's definitions the frozen source's, touching only what changed since step 12."""
    recorded: dict[str, str] = (ctx.journal.fact("routines") or {}).get("digests") or {}
    current = s12_routines.source_definitions(ctx)
    accounts_refresh = s12_routines.copy_accounts(ctx, current)  # DEFINERs first, as in step 12
    on_source = {str(d.ref) for d in current}
    changed = [d for d in current if recorded.get(str(d.ref)) != routines.digest(d)]
    with ctx.target() as t:
        on_target = routines.list_objects(t, list(ctx.config.migration.schemas))
        gone = [ref for ref in on_target if str(ref) not in on_source]
        present = {str(ref) for ref in on_target}
        for ref in gone:
            routines.drop(t, ref)
    changed += [d for d in current if str(d.ref) not in present and d not in changed]
    if changed:
        s12_routines.create_on_target(ctx, changed)
    if changed or gone:
        ctx.log.warning(
            "routines.resynced", recreated=[str(d.ref) for d in changed], dropped=[str(r) for r in gone]
        )
        ctx.journal.event(
            "routines.resynced", NUMBER, recreated=[str(d.ref) for d in changed], dropped=[str(r) for r in gone]
        )
    return {
        "recreated": [str(d.ref) for d in changed],
        "dropped": [str(r) for r in gone],
        "accounts_refreshed": accounts_refresh["refreshed"],
    }


def run(ctx: StepContext) -> dict[str, Any]:
    ctx.services.stop(APPLIER)
    resync = resync_definitions(ctx)  # accounts refreshed first, then definitions
    with ctx.target() as t:  # before DNS moves: a failure here still gives the source its writes back
        cutover.refuse_missing_accounts(ctx.config, ctx.journal, t)
    with ctx.source() as s, ctx.target() as t:
        raised = auto_increment.raise_counters(
            s, t, ctx.source_flavour, ctx.target_flavour, list(ctx.config.migration.schemas)
        )
    if raised:
        ctx.log.info("auto_increment.raised", tables=len(raised))
    return {
        "services_stopped": True,
        "auto_increment_raised": {k: list(v) for k, v in raised.items()},
        "routines_resync": resync,
    }
