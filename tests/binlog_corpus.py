"""The mysqlbinlog text corpus (tests/fixtures/binlog/) and the allow-list of what may run inside a group.

A statement queued inside the applier's open target transaction must never commit it implicitly nor
fail there: only row events (BINLOG), the applier's own bookkeeping, USE, and SETs of per-statement
context are allowed. Anything else that reaches a group is a bug (review A1/B1).
"""

from __future__ import annotations

import re
from pathlib import Path

from migrator.tools.binlog_text import _top_level_items

FIXTURES = Path(__file__).parent / "fixtures" / "binlog"

# Session variables a replayed statement may need, or harmless bookkeeping of the tool / MariaDB GTIDs.
CONTEXT_VARIABLES = frozenset({
    "timestamp", "insert_id", "last_insert_id", "rand_seed1", "rand_seed2", "pseudo_thread_id",
    "foreign_key_checks", "sql_auto_is_null", "unique_checks", "sql_mode", "auto_increment_increment",
    "auto_increment_offset", "character_set_client", "collation_connection", "collation_server",
    "collation_database", "character_set_database", "time_zone", "lc_time_names",
    "default_collation_for_utf8mb4", "sql_require_primary_key", "default_table_encryption",
    "check_constraint_checks", "sql_if_exists", "explicit_defaults_for_timestamp",
    "system_versioning_insert_history", "gtid_domain_id", "server_id", "gtid_seq_no",
    "skip_parallel_replication", "pseudo_slave_mode", "max_delayed_threads", "completion_type",
    "rbr_exec_mode",
})
_VERSIONED = re.compile(r"^/\*M?!\d*\s?([\s\S]*?)\s*\*/$")
_NAME = re.compile(r"^\s*(?:@@(?:session\.)?)?(@?`?[\w$]+`?)\s*:?=", re.IGNORECASE)


def corpus() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(FIXTURES.glob("*.txt"))}


def is_allowed_in_group(sql: bytes) -> bool:
    """True for the shapes that may run inside an open target transaction."""
    text = sql.decode("utf-8", "surrogateescape").strip()
    versioned = _VERSIONED.match(text)
    if versioned:
        text = versioned.group(1).strip()
    upper = text.upper()
    if upper.startswith("BINLOG '") or upper in ("BEGIN", "COMMIT"):
        return True
    if re.match(r"^USE `(?:[^`]|``)+`$", text):
        return True
    if upper.startswith("SELECT FILE, POS, DDL_PENDING FROM `_MIGRATOR`.`APPLY_POSITION`"):
        return True  # the guard
    if re.match(r"^(UPDATE `_migrator`\.`apply_position`|(INSERT INTO|DELETE FROM) `_migrator`\.`apply_xa`)",
                text):
        return True
    if re.match(r"^SET NAMES \w+$", text, re.IGNORECASE):
        return True
    if not upper.startswith("SET "):
        return False
    for item in _top_level_items(text[4:].encode()):
        name = _NAME.match(item.decode())
        if name is None:
            return False
        variable = name.group(1).strip("`")
        if not (variable.startswith("@") or variable.lower() in CONTEXT_VARIABLES):
            return False
    return True
