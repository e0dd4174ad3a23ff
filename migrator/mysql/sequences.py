"""MariaDB SEQUENCE objects: copied to the target with their state, and compared in verification.

A sequence is a one-row table (information_schema lists it with TABLE_TYPE='SEQUENCE', so
base_tables leaves it out). Its row holds the state: ``next_not_cached_value`` and the definition.
The server writes that row when a NEXTVAL exhausts the cache, on SETVAL and on ALTER SEQUENCE, and
row-based binlogs carry each write as an INSERT row event on the sequence (a Write_rows event in
the transaction that used it; ``SELECT NEXTVAL(s)`` alone makes a transaction of its own). Applied
to a target where the sequence exists, such an event replaces the target's row, so the applier
keeps the target's sequence in step with the source's as long as the sequence is there before the
first event: the schema copy creates it, before the tables (a column DEFAULT NEXTVAL(s) needs it).

The state is copied by writing the row itself (``INSERT INTO s VALUES (...)``, as the binlog
does): SETVAL, which mariadb-dump uses, ignores a value below the sequence's current one and
cannot set the cycle count. MySQL has no sequences: every list here is empty on it.

After the cut-over the target hands out values from ``next_not_cached_value`` on: values the
source had cached but not handed out are skipped, never repeated (as on any MariaDB replica).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from migrator.errors import PreflightFailed
from migrator.mysql.session import MySQLSession, qualified, quote_identifier

log = structlog.get_logger()

# The sequence table's columns, in their order (MariaDB 10.3+).
STATE_COLUMNS = (
    "next_not_cached_value",
    "minimum_value",
    "maximum_value",
    "start_value",
    "increment",
    "cache_size",
    "cycle_option",
    "cycle_count",
)


@dataclass(frozen=True)
class SequenceState:
    schema: str
    name: str
    definition: str  # SHOW CREATE SEQUENCE
    state: tuple[int, ...]  # the row, in STATE_COLUMNS order

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"

    def describe_state(self) -> str:
        return ", ".join(f"{c}={v}" for c, v in zip(STATE_COLUMNS, self.state, strict=True))


def list_sequences(session: MySQLSession, schemas: Sequence[str]) -> list[tuple[str, str]]:
    """(schema, name) of every sequence in ``schemas``, by name."""
    if not schemas:
        return []
    marks = ", ".join(["%s"] * len(schemas))
    return [
        (str(schema), str(name))
        for schema, name in session.rows(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES"
            f" WHERE TABLE_SCHEMA IN ({marks}) AND TABLE_TYPE = 'SEQUENCE' ORDER BY TABLE_SCHEMA, TABLE_NAME",
            list(schemas),
        )
    ]


def read_sequence(session: MySQLSession, schema: str, name: str) -> SequenceState:
    row = session.one(f"SHOW CREATE SEQUENCE {qualified(schema, name)}")
    assert row is not None
    columns = ", ".join(quote_identifier(c) for c in STATE_COLUMNS)
    state = session.one(f"SELECT {columns} FROM {qualified(schema, name)}")
    if state is None:
        raise PreflightFailed(f"sequence {schema}.{name} has no state row on {session.endpoint.describe()}")
    return SequenceState(schema, name, str(row[1]), tuple(int(v) for v in state))


def read_sequences(session: MySQLSession, schemas: Sequence[str]) -> dict[tuple[str, str], SequenceState]:
    return {(s, n): read_sequence(session, s, n) for s, n in list_sequences(session, schemas)}


def set_state(session: MySQLSession, seq: SequenceState) -> None:
    """Write the sequence's row: its whole state, cycle count included, in either direction."""
    marks = ", ".join(["%s"] * len(seq.state))
    session.execute(f"INSERT INTO {qualified(seq.schema, seq.name)} VALUES ({marks})", seq.state)


def copy_sequences(snapshot: MySQLSession, target: MySQLSession, schemas: Sequence[str]) -> list[SequenceState]:
    """Create the snapshot's sequences of ``schemas`` on the target (their schemas exist) with their state.

    Idempotent: a sequence already on the target gets the snapshot's state again (the snapshot is
    frozen and the applier has not started, so that state is the one at the snapshot's
    coordinates). Returns the snapshot's sequences.
    """
    wanted = read_sequences(snapshot, schemas)
    present = set(list_sequences(target, schemas))
    for (schema, name), seq in wanted.items():
        if (schema, name) not in present:
            if target.value(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                (schema, name),
            ):
                raise PreflightFailed(
                    f"{seq.qualified_name} is a sequence on the snapshot but a table or view on the target",
                    hint="drop it on the target and run again",
                )
            target.execute(f"USE {quote_identifier(schema)}")  # SHOW CREATE SEQUENCE names it unqualified
            target.execute(seq.definition)
        set_state(target, seq)
        log.info("schema.sequence_copied", sequence=seq.qualified_name, state=seq.describe_state())
    return list(wanted.values())


def compare_sequences(
    source_session: MySQLSession, target_session: MySQLSession, schemas: Sequence[str]
) -> list[str]:
    """What differs between the source's and the target's sequences of ``schemas``: one line each; [] if equal.

    The state compared is the stored row (what the binlog carries), not the servers' in-memory caches.
    """
    source, target = read_sequences(source_session, schemas), read_sequences(target_session, schemas)
    differences = []
    for key in sorted(source.keys() | target.keys()):
        name = ".".join(key)
        if key not in target:
            differences.append(f"sequence {name} is missing on the target")
        elif key not in source:
            differences.append(f"sequence {name} exists on the target only")
        elif source[key].state != target[key].state:
            differences.append(
                f"sequence {name}: source {source[key].describe_state()}; target {target[key].describe_state()}"
            )
    return differences
