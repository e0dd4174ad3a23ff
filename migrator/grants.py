"""The grant table: for each step and each server, what the migrator runs there and the grant it needs.

This table is the single source of truth: preflight checks it against the accounts' effective
privileges (``SHOW GRANTS`` including roles, see migrator/preflight/privileges.py), ``migrator plan`` prints it,
and the README's grant lists are generated from it (``python -m migrator.grants --readme`` rewrites
them; tests/unit/test_grants.py fails when they differ).

An alternative is a set of privileges that together suffice ("A + B"); a need is met by any one of
its alternatives. MariaDB names are those of 10.5.2+ (where SUPER was split); MariaDB 10.11 took
READ_ONLY ADMIN out of SUPER, so SUPER counts for read_only only before 10.11.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

# Where a grant must be held ("scope"): at *.* only, or on each migrated schema (a schema grant
# suffices), on _migrator, on mysql.proc, or EXECUTE on one RDS procedure.
GLOBAL = "*.*"
SCHEMAS = "schemas"
MIGRATOR_SCHEMA = "_migrator"
SCHEMAS_AND_MIGRATOR = "schemas+_migrator"
MYSQL_PROC = "TABLE mysql.proc"
MYSQL_USER = "TABLE mysql.user"
MYSQL_SCHEMA = "mysql"  # the whole mysql schema: SHOW CREATE USER / SHOW GRANTS FOR other accounts


def procedure(name: str) -> str:
    return f"PROCEDURE {name}"


@dataclass(frozen=True)
class Alternative:
    privileges: frozenset[str]
    below: tuple[int, int] | None = None  # only counts on servers older than this (MariaDB SUPER vs read_only)

    def render(self) -> str:
        text = " + ".join(sorted(self.privileges))
        return f"{text} (before {self.below[0]}.{self.below[1]})" if self.below else text


def alt(*privileges: str, below: tuple[int, int] | None = None) -> Alternative:
    return Alternative(frozenset(privileges), below)


# When a need applies (evaluated by preflight from the config and the servers):
ALWAYS = "always"
LOCAL = "platform local"
RDS = "platform rds"
READ_ONLY_SQL = "cutover.read_only on a source we reach directly (not RDS)"
TARGET_BINLOG = "target logs binary logs and log_bin_trust_function_creators=OFF, schemas have triggers/routines"
ROLLBACK = "[rollback] enabled (the default)"
ROLLBACK_LOCAL = "platform local, [rollback] enabled (the default)"
ROLLBACK_RDS = "platform rds, [rollback] enabled (the default)"
FOREIGN_DEFINERS = "a view/routine/trigger/event keeps a DEFINER (existing on the target) other than the target account"


@dataclass(frozen=True)
class Need:
    step: str
    server: str  # "source" | "target" | "snapshot" (RDS: the replica is a copy of the source's accounts)
    statements: str
    mariadb: tuple[Alternative, ...]
    mysql: tuple[Alternative, ...]
    on: str = GLOBAL
    when: str = ALWAYS
    optional: bool = False  # missing: a warning (the migrator falls back), never a refusal
    or_setting: str = ""  # a server setting that makes the grant unnecessary
    mysql_on: str = ""  # where MySQL wants it, when not where MariaDB does

    def alternatives(self, is_mariadb: bool) -> tuple[Alternative, ...]:
        return self.mariadb if is_mariadb else self.mysql

    def scope(self, is_mariadb: bool) -> str:
        return self.on if is_mariadb or not self.mysql_on else self.mysql_on


def _same(*privileges: str) -> tuple[Alternative, ...]:
    return (alt(*privileges),)


def _each(*privileges: str) -> tuple[Alternative, ...]:
    return tuple(alt(p) for p in privileges)


# What GRANT ALL ON db.* holds (MariaDB adds DELETE HISTORY): a copied account may have any of it.
SCHEMA_PRIVILEGES = (
    "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "REFERENCES", "INDEX", "ALTER",
    "CREATE TEMPORARY TABLES", "LOCK TABLES", "EXECUTE", "CREATE VIEW", "SHOW VIEW", "CREATE ROUTINE",
    "ALTER ROUTINE", "EVENT", "TRIGGER",
)


def grant_sql(privileges: list[str], on: str, to: str) -> str:
    """GRANT OPTION is a clause, not a list item (``GRANT a, GRANT OPTION ON`` is a syntax error)."""
    listed = [p for p in privileges if p != "GRANT OPTION"] or ["USAGE"]
    suffix = " WITH GRANT OPTION" if "GRANT OPTION" in privileges else ""
    return f"GRANT {', '.join(listed)} ON {on} TO {to}{suffix}"


SESSION_VARS_MYSQL = _each("SESSION_VARIABLES_ADMIN", "SYSTEM_VARIABLES_ADMIN", "SUPER")

TABLE: tuple[Need, ...] = (
    # --- source ----------------------------------------------------------------------------------
    Need("preflight, 6, 8, 10", "source", "SELECT rows, SHOW CREATE TABLE, information_schema, checksums",
         _same("SELECT"), _same("SELECT"), on=SCHEMAS),
    Need("2, 5", "source", "CREATE DATABASE/TABLE _migrator.heartbeat, INSERT/UPDATE the heartbeat row",
         _same("CREATE", "INSERT", "UPDATE", "SELECT"), _same("CREATE", "INSERT", "UPDATE", "SELECT"),
         on=MIGRATOR_SCHEMA),
    Need("4, 5, 8, 10", "source", "SHOW BINARY LOGS, SHOW MASTER STATUS / SHOW BINARY LOG STATUS",
         _each("BINLOG MONITOR", "SUPER"), _each("REPLICATION CLIENT", "SUPER")),
    Need("5", "source", "mysqlbinlog --read-from-remote-server --stop-never (binlog dump)",
         _same("REPLICATION SLAVE"), _same("REPLICATION SLAVE")),
    Need("12", "source", "SHOW CREATE VIEW", _same("SHOW VIEW"), _same("SHOW VIEW"), on=SCHEMAS),
    Need("12", "source", "SHOW CREATE TRIGGER, information_schema.TRIGGERS", _same("TRIGGER"), _same("TRIGGER"),
         on=SCHEMAS),
    Need("12", "source", "SHOW CREATE EVENT", _same("EVENT"), _same("EVENT"), on=SCHEMAS),
    Need("12", "source", "SHOW CREATE PROCEDURE/FUNCTION of other definers",
         _same("SELECT"), (alt("SHOW_ROUTINE"), alt("SELECT")), on=MYSQL_SCHEMA, mysql_on=GLOBAL),
    Need("2", "source", "SET GLOBAL binlog_expire_logs_seconds (binlog retention)",
         _each("BINLOG ADMIN", "SUPER"), _each("BINLOG_ADMIN", "SYSTEM_VARIABLES_ADMIN", "SUPER"), when=LOCAL),
    Need("2", "source", "BACKUP STAGE BLOCK_COMMIT (MySQL: FLUSH TABLES WITH READ LOCK) for a moment, while the local "
         "replica's snapshot sessions open at one binlog position",
         _same("RELOAD"), _same("RELOAD"), when=LOCAL),
    Need("2", "source", "the local replica's copy of the schemas and _migrator: rows, routines, views, triggers, events",
         _same("SELECT", "SHOW VIEW", "TRIGGER", "EVENT"), _same("SELECT", "SHOW VIEW", "TRIGGER", "EVENT"),
         on=SCHEMAS_AND_MIGRATOR, when=LOCAL),
    Need("9, 10", "source", "SET GLOBAL read_only = ON (and OFF if the pause fails)",
         (alt("READ_ONLY ADMIN"), alt("SUPER", below=(10, 11))), _each("SYSTEM_VARIABLES_ADMIN", "SUPER"),
         when=READ_ONLY_SQL),
    Need("8, 9, 12", "source", "information_schema.PROCESSLIST of every account (who uses the source), "
         "INNODB_TRX (long writers before the freeze)", _same("PROCESS"), _same("PROCESS")),
    Need("2, 9, 10", "source", "XA RECOVER when the local replica's snapshot opens, before the freeze and in the pause "
         "(a prepared XA transaction holds back the snapshot and refuses the cut-over; MariaDB lists every "
         "account's to any account)", (alt("USAGE"),), _same("XA_RECOVER_ADMIN")),
    Need("preflight, 11, 12", "source", "SELECT FROM mysql.user, SHOW CREATE USER and SHOW GRANTS FOR the "
         "application accounts and DEFINERs copied to the target", _same("SELECT"), _same("SELECT"),
         on=MYSQL_SCHEMA),
    Need("14", "source", "KILL CONNECTION of application sessions left after the grace period",
         _each("CONNECTION ADMIN", "SUPER"), _each("CONNECTION_ADMIN", "SUPER"), when=LOCAL),
    Need("14", "source", "CALL mysql.rds_kill (application sessions left after the grace period)",
         _same("EXECUTE"), _same("EXECUTE"), on=procedure("mysql.rds_kill"), when=RDS),
    Need("14, rollback, finish", "source", "CHANGE MASTER TO / START SLAVE / STOP SLAVE / RESET SLAVE ALL "
         "(the source follows the target during the rollback window)",
         _each("REPLICATION SLAVE ADMIN", "SUPER"), _each("REPLICATION_SLAVE_ADMIN", "SUPER"), when=ROLLBACK_LOCAL),
    Need("14, rollback", "source", "SHOW SLAVE STATUS (the rollback window's lag)",
         _each("SLAVE MONITOR", "SUPER"), _each("REPLICATION CLIENT", "SUPER"), when=ROLLBACK_LOCAL),
    Need("14, rollback", "source", "CALL mysql.rds_start_replication (rds_set_external_master on 8.0, "
         "rds_set_external_source on 8.4, rds_stop_replication and rds_reset_external_* likewise)",
         _same("EXECUTE"), _same("EXECUTE"), on=procedure("mysql.rds_start_replication"), when=ROLLBACK_RDS),
    Need("finish", "source", "DROP DATABASE _migrator", _same("DROP"), _same("DROP"), on=MIGRATOR_SCHEMA),
    Need("preflight, 2, 4", "source", "CALL mysql.rds_show_configuration",
         _same("EXECUTE"), _same("EXECUTE"), on=procedure("mysql.rds_show_configuration"), when=RDS),
    Need("2, 4", "source", "CALL mysql.rds_set_configuration('binlog retention hours', N)",
         _same("EXECUTE"), _same("EXECUTE"), on=procedure("mysql.rds_set_configuration"), when=RDS),
    Need("3", "snapshot", "CALL mysql.rds_stop_replication (the replica keeps the source's accounts)",
         _same("EXECUTE"), _same("EXECUTE"), on=procedure("mysql.rds_stop_replication"), when=RDS),
    Need("3", "snapshot", "XA RECOVER after the stop (a point holding a prepared XA transaction is no snapshot; "
         "RDS for MySQL gives the master user XA_RECOVER_ADMIN from 8.0.36)",
         (alt("USAGE"),), _same("XA_RECOVER_ADMIN"), when=RDS),
    Need("3", "snapshot", "CALL mysql.rds_start_replication (again, when the stop held a prepared XA transaction)",
         _same("EXECUTE"), _same("EXECUTE"), on=procedure("mysql.rds_start_replication"), when=RDS),
    # --- target ----------------------------------------------------------------------------------
    Need("6, 7, 12", "target", "CREATE DATABASE, CREATE TABLE (with foreign keys), DROP ... IF EXISTS",
         _same("CREATE", "DROP"), _same("CREATE", "DROP", "REFERENCES"), on=SCHEMAS_AND_MIGRATOR),
    Need("6", "target", "ALTER TABLE ... ADD INDEX (secondary indexes after the data)",
         _same("ALTER", "INDEX"), _same("ALTER", "INDEX"), on=SCHEMAS),
    Need("6, 7, 8, 10", "target", "LOAD DATA LOCAL / INSERT, DELETE of a partly loaded chunk, SELECT, checksums, "
         "UPDATE _migrator.apply_position", _same("SELECT", "INSERT", "UPDATE", "DELETE"),
         _same("SELECT", "INSERT", "UPDATE", "DELETE"), on=SCHEMAS_AND_MIGRATOR),
    Need("6, 14", "target", "SET GLOBAL read_only = ON before the copy, OFF at step 14 (MariaDB: also to write "
         "while read_only)", _same("READ_ONLY ADMIN"), _each("SYSTEM_VARIABLES_ADMIN", "SUPER")),
    Need("6-12", "target", "write while read_only = ON (copy, applier, step 12)",
         (alt("USAGE"),), _each("CONNECTION_ADMIN", "SUPER")),
    Need("6", "target", "SET SESSION sql_log_bin = 0 for the bulk load (else the copy is logged too)",
         _each("BINLOG ADMIN", "SUPER"), SESSION_VARS_MYSQL, optional=True),
    Need("7", "target", "BINLOG '...' (row events replayed by the applier)",
         _each("BINLOG REPLAY", "SUPER"), _each("REPLICATION_APPLIER", "BINLOG_ADMIN", "SUPER")),
    Need("7", "target", "SET @@session.pseudo_thread_id, sql_mode, ... (mysqlbinlog's session state)",
         (alt("USAGE"),), SESSION_VARS_MYSQL),
    Need("12", "target", "SELECT User, Host FROM mysql.user (which DEFINERs exist on the target)",
         _same("SELECT"), _same("SELECT"), on=MYSQL_USER),
    Need("11, 12", "target", "CREATE USER / ALTER USER of the copied application accounts and DEFINERs",
         _same("CREATE USER"), _same("CREATE USER")),
    # GRANT hands on only what the grantor holds: the copied accounts' schema grants (ALL for a DEFINER) need
    # every schema privilege with GRANT OPTION.
    Need("11, 12", "target", "GRANT the copied accounts their privileges on the migrated schemas",
         _same(*SCHEMA_PRIVILEGES, "DELETE HISTORY", "GRANT OPTION"), _same(*SCHEMA_PRIVILEGES, "GRANT OPTION"),
         on=SCHEMAS),
    Need("13, 14, rollback", "target", "the source replicates the target's binlog (the rollback window: the "
         "migration account, or rollback.user which step 13 creates)", _same("REPLICATION SLAVE"),
         _same("REPLICATION SLAVE"), when=ROLLBACK),
    Need("13, rollback", "target", "SHOW MASTER STATUS (the switch position), SHOW BINARY LOGS",
         _each("BINLOG MONITOR", "SUPER"), _each("REPLICATION CLIENT", "SUPER")),
    Need("rollback", "target", "KILL CONNECTION of sessions left on the target after a rollback",
         _each("CONNECTION ADMIN", "SUPER"), _each("CONNECTION_ADMIN", "SUPER"), when=ROLLBACK),
    Need("12", "target", "CREATE VIEW", _same("CREATE VIEW"), _same("CREATE VIEW"), on=SCHEMAS),
    Need("12", "target", "CREATE PROCEDURE/FUNCTION", _same("CREATE ROUTINE", "ALTER ROUTINE"),
         _same("CREATE ROUTINE", "ALTER ROUTINE"), on=SCHEMAS),
    Need("12", "target", "CREATE TRIGGER", _same("TRIGGER"), _same("TRIGGER"), on=SCHEMAS),
    Need("12", "target", "CREATE EVENT", _same("EVENT"), _same("EVENT"), on=SCHEMAS),
    Need("12", "target", "CREATE TRIGGER/FUNCTION/PROCEDURE with binary logging on (else error 1419)",
         _same("SUPER"), _same("SUPER"), when=TARGET_BINLOG,
         or_setting="SET GLOBAL log_bin_trust_function_creators = ON on the target"),
    Need("12", "target", "CREATE DEFINER=<another account> VIEW/ROUTINE/TRIGGER/EVENT",
         _each("SET USER", "SUPER"), _each("SET_ANY_DEFINER", "SET_USER_ID", "SUPER"), when=FOREIGN_DEFINERS),
)


@dataclass
class Conditions:
    """The facts deciding which needs apply to one migration."""

    platform: str = "local"
    read_only: bool = True
    target_binlog_untrusted: bool = False
    foreign_definers: bool = False
    rollback_window: bool = True
    extra: dict[str, bool] = field(default_factory=dict)

    def holds(self, when: str) -> bool:
        return {
            ALWAYS: True,
            LOCAL: self.platform == "local",
            RDS: self.platform == "rds",
            READ_ONLY_SQL: self.read_only and self.platform != "rds",
            TARGET_BINLOG: self.target_binlog_untrusted,
            FOREIGN_DEFINERS: self.foreign_definers,
            ROLLBACK: self.rollback_window,
            ROLLBACK_LOCAL: self.platform == "local" and self.rollback_window,
            ROLLBACK_RDS: self.platform == "rds" and self.rollback_window,
        }.get(when, self.extra.get(when, True))


def grant_statements(
    servers: tuple[str, ...],
    is_mariadb: bool,
    conditions: Conditions,
    account: str,
    schemas: tuple[str, ...],
    *,
    include_optional: bool = True,
    settings_instead: bool = True,
) -> list[str]:
    """What an administrator runs to give ``account`` every applicable grant (first alternatives).

    Schema-scoped needs are granted per schema, so this also proves a schema grant suffices.
    With ``settings_instead``, a need that a server setting can replace is left to the setting.
    """
    out: list[str] = []
    for need in TABLE:
        if need.server not in servers or not conditions.holds(need.when):
            continue
        if (need.optional and not include_optional) or (need.or_setting and settings_instead):
            continue
        privileges = sorted(need.alternatives(is_mariadb)[0].privileges - {"USAGE"})
        if not privileges:
            continue
        on = need.scope(is_mariadb)
        if on == GLOBAL:
            places = ["*.*"]
        elif on.startswith(("TABLE ", "PROCEDURE ")):
            places = [on.removeprefix("TABLE ")]
        else:
            dbs = list(schemas) if on in (SCHEMAS, SCHEMAS_AND_MIGRATOR) else []
            dbs += ["_migrator"] if on in (MIGRATOR_SCHEMA, SCHEMAS_AND_MIGRATOR) else []
            dbs += ["mysql"] if on == MYSQL_SCHEMA else []
            places = [f"`{db}`.*" for db in dbs]
        out.extend(grant_sql(privileges, place, account) for place in places)
    return out


# --- the README section ------------------------------------------------------------------------
README_BEGIN = "<!-- grants:begin -->"
README_END = "<!-- grants:end -->"


def _scope_text(on: str) -> str:
    return {
        GLOBAL: "`*.*`",
        SCHEMAS: "each migrated schema (or `*.*`)",
        MIGRATOR_SCHEMA: "`_migrator.*` (or `*.*`)",
        SCHEMAS_AND_MIGRATOR: "each migrated schema and `_migrator.*` (or `*.*`)",
        MYSQL_PROC: "`mysql.proc` (or `*.*`)",
        MYSQL_USER: "`mysql.user` (or `*.*`)",
        MYSQL_SCHEMA: "`mysql.*` (or `*.*`)",
    }.get(on, f"`{on.removeprefix('PROCEDURE ')}`")


def _grant_text(alternatives: tuple[Alternative, ...]) -> str:
    shown = [a for a in alternatives if a.privileges != {"USAGE"}]
    return " or ".join(f"`{a.render()}`" for a in shown) if shown else "nothing"


def readme_section() -> str:
    lines = [
        README_BEGIN,
        "",
        "| step | server | statements | MariaDB 10.5.2+ | MySQL 8.0/8.4 | on | when |",
        "|---|---|---|---|---|---|---|",
    ]
    for need in TABLE:
        when = "" if need.when == ALWAYS else need.when
        if need.optional:
            when = (when + "; " if when else "") + "optional (a warning when missing)"
        if need.or_setting:
            when += f"; or {need.or_setting}"
        lines.append(
            f"| {need.step} | {need.server} | {need.statements} | {_grant_text(need.mariadb)} | "
            f"{_grant_text(need.mysql)} | {_scope_text(need.on)}"
            + (f" (MySQL: {_scope_text(need.mysql_on)})" if need.mysql_on else "")
            + f" | {when} |"
        )
    lines += ["", README_END]
    return "\n".join(lines)


def rewrite_readme(path: Path) -> bool:
    """Replace the README's generated section; returns whether the file changed."""
    text = path.read_text()
    start, end = text.index(README_BEGIN), text.index(README_END) + len(README_END)
    new = text[:start] + readme_section() + text[end:]
    if new != text:
        path.write_text(new)
    return new != text


def readme_is_current(path: Path) -> bool:
    text = path.read_text()
    if README_BEGIN not in text or README_END not in text:
        return False
    start, end = text.index(README_BEGIN), text.index(README_END) + len(README_END)
    return text[start:end] == readme_section()


if __name__ == "__main__":  # pragma: no cover
    readme = Path(__file__).resolve().parent.parent / "README.md"
    if sys.argv[1:] == ["--readme"]:
        print("README.md " + ("rewritten" if rewrite_readme(readme) else "already current"))
    else:
        print(readme_section())
