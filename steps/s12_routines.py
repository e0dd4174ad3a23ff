"""Step 12: re-create stored procedures, functions, views, triggers and events on the target.

It runs after step 8 and before step 9 (see ``migrator.engine.EXECUTION_ORDER``): creating them can
fail for a grant (1419 without SUPER on a target with binary logging), a definition or a name, and
such a failure must come while the application still writes to the source. It is safe while the
applier runs: row events (``BINLOG`` statements) do not fire triggers; events are created DISABLED
and enabled by step 14. A definition changed on the source afterwards reaches the target through
the applier (it replays CREATE/DROP as DDL); step 11 compares the frozen source's definitions with
the ones recorded here and re-creates whatever changed.
"""

from __future__ import annotations

from typing import Any

import pymysql

from migrator.config import Config
from migrator.errors import StepFailed
from migrator.mysql import routines
from migrator.mysql.positions import position_key, source_head
from migrator.step import Check, StepContext
from migrator.sync_status import applied_position

NUMBER = 12
NAME = "routines"
NEEDS: tuple[str, ...] = ("approx_sync",)


def describe(config: Config) -> str:
    return (
        "before the write pause: read procedures, functions, views, triggers and events of the migrated schemas "
        "from the source, wait until the applier has every change up to that moment, and create them on the "
        "target (events DISABLED until step 14); DEFINERs missing on the target become "
        f"{config.definers.fallback}"
    )


def check(ctx: StepContext) -> Check:
    return Check(False, "definitions are read and created afresh on every run (drop-if-exists, create)")


def source_definitions(ctx: StepContext) -> list[routines.Definition]:
    schemas = list(ctx.config.migration.schemas)
    with ctx.source() as s:
        return [routines.definition(s, ref) for ref in routines.list_objects(s, schemas)]


def create_on_target(ctx: StepContext, definitions: list[routines.Definition]) -> list[str]:
    """Create (drop-if-exists first) each definition on the target; returns the DEFINER mappings made."""
    remapped: list[str] = []
    with ctx.target() as t:
        existing = routines.accounts(t)
        pending = []
        for d in definitions:
            sql, replaced = routines.map_definer(d.create_sql, existing, ctx.config.definers.fallback)
            if replaced is not None:
                remapped.append(f"{d.ref}: {replaced[0]}@{replaced[1]} -> {ctx.config.definers.fallback}")
                ctx.log.warning(
                    "definer.mapped",
                    object=str(d.ref),
                    definer=f"{replaced[0]}@{replaced[1]}",
                    to=ctx.config.definers.fallback,
                )
            pending.append(
                routines.Definition(
                    d.ref, sql, d.sql_mode, d.character_set_client, d.collation_connection, d.time_zone
                )
            )
        # Views may depend on views: create in passes until nothing more succeeds.
        errors: dict[str, str] = {}
        while pending:
            failed = []
            for d in pending:
                try:
                    routines.create(t, d)
                except pymysql.err.MySQLError as exc:
                    failed.append(d)
                    errors[str(d.ref)] = str(exc)
            if len(failed) == len(pending):
                raise StepFailed(
                    "could not create " + "; ".join(f"{d.ref}: {errors[str(d.ref)]}" for d in failed),
                    hint="fix the definitions or grants on the target (1419: give the target account SUPER or "
                    "set log_bin_trust_function_creators=ON there), then `migrator run`; the source was "
                    "never paused",
                )
            pending = failed
    return remapped


def run(ctx: StepContext) -> dict[str, Any]:
    definitions = source_definitions(ctx)
    with ctx.source() as s:
        read_at = source_head(s, ctx.source_flavour)

    # A CREATE/DROP logged before the definitions were read must be applied before we create them,
    # or the applier's replay of it would fail on (or silently undo) what we create.
    def applied_read_at() -> bool:
        with ctx.target() as t:
            applied = applied_position(t)
        return applied is not None and position_key(applied) >= position_key(read_at)

    ctx.wait(
        "reach-definitions",
        applied_read_at,
        timeout=ctx.config.sync.timeout_seconds,
        interval=0.2,
        what=f"the applier to reach {read_at}, where the definitions were read",
    )
    remapped = create_on_target(ctx, definitions)
    return {
        "routines": {
            "objects": len(definitions),
            "definers_mapped": remapped,
            "read_at": read_at.as_list(),
            "digests": {str(d.ref): routines.digest(d) for d in definitions},
        }
    }
