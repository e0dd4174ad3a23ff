"""AUTO_INCREMENT counters: the target takes over the paused source's, so ids burned there are not reused.

A rolled-back insert or a deleted tail row advances the source's counter without leaving a row the
copy or the applier could carry; after the cut-over the target would hand those ids out again. The
counters come from information_schema.TABLES (metadata only) and are only ever raised on the target.
"""

from __future__ import annotations

from migrator.mysql.flavour import Flavour
from migrator.mysql.session import MySQLSession, qualified


def counters(session: MySQLSession, flavour: Flavour, schemas: list[str]) -> dict[tuple[str, str], int]:
    """(schema, table) -> next AUTO_INCREMENT value, for base tables that have one."""
    if not schemas:
        return {}
    if not flavour.is_mariadb:
        # MySQL 8 caches information_schema table statistics for a day by default: read them fresh.
        session.execute("SET SESSION information_schema_stats_expiry = 0")
    marks = ", ".join(["%s"] * len(schemas))
    return {
        (str(s), str(t)): int(n)
        for s, t, n in session.rows(
            f"SELECT TABLE_SCHEMA, TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA IN ({marks}) AND TABLE_TYPE = 'BASE TABLE' AND AUTO_INCREMENT IS NOT NULL",
            schemas,
        )
    }


def raise_counters(
    source: MySQLSession, target: MySQLSession, source_flavour: Flavour, target_flavour: Flavour, schemas: list[str]
) -> dict[str, tuple[int, int]]:
    """Raise each target counter below the source's to the source's; returns "schema.table" -> (old, new)."""
    wanted = counters(source, source_flavour, schemas)
    have = counters(target, target_flavour, schemas)
    changed: dict[str, tuple[int, int]] = {}
    for (schema, table), value in sorted(wanted.items()):
        current = have.get((schema, table))
        if current is None or current >= value:
            continue
        target.execute(f"ALTER TABLE {qualified(schema, table)} AUTO_INCREMENT = {int(value)}")
        changed[f"{schema}.{table}"] = (current, value)
    return changed
