"""Step 12: re-create stored procedures, functions, views, triggers and events on the target.

Definitions are read from the (paused) source, so anything changed during the migration is
current. A DEFINER missing on the target is mapped to definers.fallback and reported.
"""

from __future__ import annotations

from typing import Any

import pymysql

from migrator.config import Config
from migrator.errors import StepFailed
from migrator.mysql import routines
from migrator.step import Check, StepContext

NUMBER = 12
NAME = "routines"
NEEDS: tuple[str, ...] = ("final_position",)


def describe(config: Config) -> str:
    return (
        "read procedures, functions, views, triggers and events of the migrated schemas from the source and "
        f"create them on the target; DEFINERs missing on the target become {config.definers.fallback}"
    )


def _missing(ctx: StepContext) -> tuple[list[routines.ObjectRef], int]:
    schemas = list(ctx.config.migration.schemas)
    with ctx.source() as s, ctx.target() as t:
        wanted = routines.list_objects(s, schemas)
        present = set(routines.list_objects(t, schemas))
    return [r for r in wanted if r not in present], len(wanted)


def check(ctx: StepContext) -> Check:
    missing, total = _missing(ctx)
    if missing:
        return Check(False, f"{len(missing)} of {total} objects missing on the target")
    return Check(True, f"all {total} objects present", {"routines": {"objects": total}})


def run(ctx: StepContext) -> dict[str, Any]:
    schemas = list(ctx.config.migration.schemas)
    with ctx.source() as s:
        definitions = [routines.definition(s, ref) for ref in routines.list_objects(s, schemas)]
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
                    hint="fix the definitions or grants on the target, then `migrator run`",
                )
            pending = failed
    return {"routines": {"objects": len(definitions), "definers_mapped": remapped}}
