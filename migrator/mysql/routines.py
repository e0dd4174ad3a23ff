"""Stored procedures, functions, triggers, events and views: read from one server, re-created on another.

The copy leaves them out (a trigger firing during the load, or a view over a table not yet there,
would break it); step 12 creates them after the copy and before the write pause. Triggers on the
target do not fire for the applier's row events (``BINLOG`` statements), so they can exist while it
runs; events are created DISABLED and enabled when writes resume on the target (step 14).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from migrator.mysql.session import MySQLSession, qualified, quote_identifier

ORDER = ("PROCEDURE", "FUNCTION", "VIEW", "TRIGGER", "EVENT")
_DEFINER = re.compile(
    r"DEFINER\s*=\s*(`(?:[^`]|``)*`|'[^']*'|\S+?)@(`(?:[^`]|``)*`|'[^']*'|[^\s*]+)", re.IGNORECASE
)


@dataclass(frozen=True, order=True)
class ObjectRef:
    kind: str
    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind.lower()} {self.schema}.{self.name}"


@dataclass(frozen=True)
class Definition:
    ref: ObjectRef
    create_sql: str
    sql_mode: str
    character_set_client: str
    collation_connection: str
    time_zone: str | None = None


def list_objects(session: MySQLSession, schemas: list[str]) -> list[ObjectRef]:
    if not schemas:
        return []
    marks = ", ".join(["%s"] * len(schemas))
    refs: list[ObjectRef] = []
    for kind, schema, name in session.rows(
        f"SELECT ROUTINE_TYPE, ROUTINE_SCHEMA, ROUTINE_NAME FROM information_schema.ROUTINES "
        f"WHERE ROUTINE_SCHEMA IN ({marks})",
        schemas,
    ):
        refs.append(ObjectRef(str(kind), str(schema), str(name)))
    for kind, query in (
        (
            "TRIGGER",
            "SELECT TRIGGER_SCHEMA, TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA",
        ),
        ("EVENT", "SELECT EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA"),
        ("VIEW", "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA"),
    ):
        refs.extend(
            ObjectRef(kind, str(s), str(n)) for s, n in session.rows(f"{query} IN ({marks})", schemas)
        )
    return sorted(refs, key=lambda r: (ORDER.index(r.kind), r.schema, r.name))


def definition(session: MySQLSession, ref: ObjectRef) -> Definition:
    row: dict[str, Any] = session.dicts(f"SHOW CREATE {ref.kind} {qualified(ref.schema, ref.name)}")[0]
    sql_key = {
        "PROCEDURE": "Create Procedure",
        "FUNCTION": "Create Function",
        "TRIGGER": "SQL Original Statement",
        "EVENT": "Create Event",
        "VIEW": "Create View",
    }[ref.kind]
    return Definition(
        ref=ref,
        create_sql=str(row[sql_key]),
        sql_mode=str(row.get("sql_mode", "")),
        character_set_client=str(row.get("character_set_client", "utf8mb4")),
        collation_connection=str(row.get("collation_connection", "utf8mb4_general_ci")),
        time_zone=str(row["time_zone"]) if row.get("time_zone") else None,
    )


def _unquote(part: str) -> str:
    if part.startswith("`") and part.endswith("`"):
        return part[1:-1].replace("``", "`")
    if part.startswith("'") and part.endswith("'"):
        return part[1:-1]
    return part


def definer_of(sql: str) -> tuple[str, str] | None:
    match = _DEFINER.search(sql)
    return None if match is None else (_unquote(match.group(1)), _unquote(match.group(2)))


def accounts(session: MySQLSession) -> set[tuple[str, str]]:
    return {(str(u), str(h)) for u, h in session.rows("SELECT User, Host FROM mysql.user")}


def map_definer(
    sql: str, existing: set[tuple[str, str]], fallback: str
) -> tuple[str, tuple[str, str] | None]:
    """Replace a DEFINER the target lacks with ``fallback`` (user@host); returns (sql, replaced account)."""
    found = definer_of(sql)
    if found is None or found in existing:
        return sql, None
    user, host = fallback.rsplit("@", 1)
    replacement = f"DEFINER={quote_identifier(user)}@{quote_identifier(host)}"
    return _DEFINER.sub(lambda _m: replacement, sql, count=1), found


def create(session: MySQLSession, d: Definition, *, events_disabled: bool = True) -> None:
    """Drop-if-exists then create, in the object's schema and with its original session settings.

    Events are created DISABLED unless ``events_disabled`` is False (a replica's twin of the source).
    """
    ref = d.ref
    session.execute(f"USE {quote_identifier(ref.schema)}")
    session.execute("SET SESSION sql_mode = %s", (d.sql_mode,))
    session.execute("SET SESSION character_set_client = %s", (d.character_set_client,))
    session.execute("SET SESSION collation_connection = %s", (d.collation_connection,))
    if d.time_zone:
        session.execute("SET SESSION time_zone = %s", (d.time_zone,))
    session.execute(f"DROP {ref.kind} IF EXISTS {qualified(ref.schema, ref.name)}")
    session.execute(disabled_event_sql(d.create_sql) if ref.kind == "EVENT" and events_disabled else d.create_sql)


def drop(session: MySQLSession, ref: ObjectRef) -> None:
    session.execute(f"DROP {ref.kind} IF EXISTS {qualified(ref.schema, ref.name)}")


_EVENT_STATUS = re.compile(r"\s(DISABLE\s+ON\s+(?:SLAVE|REPLICA)|ENABLE|DISABLE)(?=\s)", re.IGNORECASE)
_QUOTED = re.compile(r"'(?:[^'\\]|\\.|'')*'|`(?:[^`]|``)*`|\"(?:[^\"\\]|\\.)*\"")


def _masked(sql: str) -> str:
    """``sql`` with the inside of every quoted string or name blanked, same length: keywords only."""
    return _QUOTED.sub(lambda m: m.group(0)[0] + "x" * (len(m.group(0)) - 2) + m.group(0)[-1], sql)


def disabled_event_sql(sql: str) -> str:
    """A CREATE EVENT with its status clause (ENABLE / DISABLE [ON SLAVE]) replaced by DISABLE.

    SHOW CREATE EVENT always prints the status between the schedule and ``DO``; the body is left alone.
    """
    masked = _masked(sql)
    body = re.search(r"\sDO\s", masked, re.IGNORECASE)
    head_end = body.start() if body else len(sql)
    # The last status keyword before DO (ON COMPLETION ... PRESERVE comes before it).
    found = list(_EVENT_STATUS.finditer(masked, 0, head_end + 1))
    match = found[-1] if found else None
    if match is None:
        return sql[:head_end] + " DISABLE" + sql[head_end:]
    return sql[: match.start(1)] + "DISABLE" + sql[match.end(1) :]


def digest(d: Definition) -> str:
    """What identifies a definition's content (its text and session settings), for change detection."""
    text = "\x00".join([d.create_sql, d.sql_mode, d.character_set_client, d.collation_connection, d.time_zone or ""])
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:20]


def enabled_events(session: MySQLSession, schemas: list[str]) -> list[ObjectRef]:
    """Events whose status is ENABLED (not DISABLED, not SLAVESIDE_DISABLED) on this server."""
    if not schemas:
        return []
    marks = ", ".join(["%s"] * len(schemas))
    return [
        ObjectRef("EVENT", str(s), str(n))
        for s, n in session.rows(
            f"SELECT EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS "
            f"WHERE EVENT_SCHEMA IN ({marks}) AND STATUS = 'ENABLED' ORDER BY 1, 2",
            schemas,
        )
    ]


def enable_event(session: MySQLSession, ref: ObjectRef) -> None:
    """ALTER EVENT ... ENABLE keeping the event's definer (named, so the current user never takes it over)."""
    row = session.one(
        "SELECT DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s AND EVENT_NAME = %s",
        (ref.schema, ref.name),
    )
    if row is None:
        raise LookupError(f"{ref} does not exist")
    user, _, host = str(row[0]).rpartition("@")
    session.execute(
        f"ALTER DEFINER={quote_identifier(user)}@{quote_identifier(host)} EVENT "
        f"{qualified(ref.schema, ref.name)} ENABLE"
    )
