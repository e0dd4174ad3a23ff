"""`migrator cleanup`: remove the snapshot replica and restore binlog retention. Never automatic."""

from __future__ import annotations

from typing import Any

from migrator.config import Config
from migrator.errors import BadInput
from migrator.journal import Journal


def cleanup(config: Config, *, confirm: bool, abandon: bool, log: Any) -> list[str]:
    """Returns what was done (or, without ``confirm``, what would be done)."""
    journal = Journal.open_readonly(config.journal_path)
    try:
        facts = journal.facts()
        finished = facts.get("finished") is not None
        ran = {row.number: row.status for row in journal.steps()}.get(14) == "done"
    finally:
        journal.close()
    if (facts.get("rollback_window") or {}).get("state") == "open":
        raise BadInput(
            "the rollback window is open: the source still replicates from the target",
            hint="`migrator finish` ends it (or `migrator rollback` goes back to the source); then cleanup",
        )
    if not finished and not abandon:
        raise BadInput(
            "the migration has not finished: the snapshot and the retained binlogs may still be needed"
            + (" (the rollback window is still open)" if ran else ""),
            hint="`migrator finish` ends the rollback window first"
            if ran
            else "finish it with `migrator run` and `migrator finish`, or pass --abandon to clean up a "
            "migration you are giving up",
        )
    if config.rds is not None:
        from migrator.platforms.rds import cleanup as rds_cleanup

        return rds_cleanup(config, facts, confirm=confirm)
    from migrator.platforms.local import LocalPlatform

    platform = LocalPlatform(config, log=log)
    lines: list[str] = []
    identifier = facts.get("replica_id")
    if identifier:
        if confirm:
            platform.delete_replica(str(identifier), final_snapshot=False)
        lines.append(f"{'' if confirm else 'would '}delete local replica {identifier}")
    previous = (facts.get("binlog_retention_previous") or {}).get("hours")
    if previous is not None and previous < 1_000_000:
        if confirm:
            platform.set_binlog_retention_hours(int(previous))
        lines.append(f"{'' if confirm else 'would '}restore binlog retention to {previous} h")
    return lines
