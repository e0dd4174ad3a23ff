"""`migrator verify`: sync status now, read-only on both servers and without the journal lock."""

from __future__ import annotations

from typing import Any

from migrator.config import Config
from migrator.errors import PreflightFailed
from migrator.mysql.checksum import compare_tables, row_counts
from migrator.mysql.flavour import detect
from migrator.mysql.schema import base_tables
from migrator.mysql.sequences import compare_sequences
from migrator.mysql.session import MySQLSession
from migrator.sync_status import measure


def verify_now(config: Config, *, checksums: bool = True) -> dict[str, Any]:
    try:
        source, target = MySQLSession(config.source), MySQLSession(config.target)
    except Exception as exc:
        raise PreflightFailed(f"cannot connect for verification: {exc}") from exc
    try:
        flavour = detect(str(source.value("SELECT VERSION()")))
        status = measure(source, target, flavour)
        tables = base_tables(source, list(config.migration.schemas))
        src, tgt = row_counts(source, tables), row_counts(target, tables)
        sequences = compare_sequences(source, target, list(config.migration.schemas))
    finally:
        source.close()
        target.close()
    counts = {name: {"source": n, "target": tgt.get(name, 0)} for name, n in src.items()}
    data: dict[str, Any] = {**status.as_dict(), "row_counts": counts, "checksums": None}
    counts_equal = all(c["source"] == c["target"] for c in counts.values())
    data["sequence_differences"] = sequences
    in_sync = status.at_head and counts_equal and not sequences
    if checksums:
        report = compare_tables(config.source, config.target, tables, workers=config.sync.checksum_workers)
        data["checksums"] = {
            "tables": len(tables),
            "rows": report.rows,
            "chunks": report.chunks,
            "seconds": round(report.seconds, 2),
            "mismatches": [
                f"{m.schema}.{m.table} [{m.lower}, {m.upper}): source {m.source_count} rows, target "
                f"{m.target_count}, differing keys {list(m.differing_keys)[:10]}"
                for m in report.mismatches
            ],
        }
        in_sync = in_sync and report.ok
    data["in_sync"] = in_sync
    return data
