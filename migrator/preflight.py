"""Checks before anything changes: every bad input is reported here with exit 2 and no side effect."""

from __future__ import annotations

import re
from typing import Any

import pymysql

from migrator.config import Config
from migrator.endpoint import Endpoint
from migrator.errors import EnvironmentProblem, PreflightFailed
from migrator.journal import Journal
from migrator.mysql.flavour import Flavour, detect
from migrator.mysql.schema import non_transactional_tables, target_is_empty
from migrator.mysql.session import MySQLSession, error_code
from migrator.platforms.local_server import find_binary
from migrator.ports import DnsProvider

# What each side needs (MariaDB names; MySQL 8 grants imply them through ALL or the listed ones).
SOURCE_PRIVILEGES = ("SELECT", "REPLICATION SLAVE", "RELOAD", "SHOW VIEW", "TRIGGER", "EVENT")
SOURCE_CLIENT_PRIVILEGES = ("REPLICATION CLIENT", "BINLOG MONITOR")  # either name
TARGET_PRIVILEGES = (
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "ALTER",
    "INDEX",
    "CREATE VIEW",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
    "TRIGGER",
    "EVENT",
)


def _open(endpoint: Endpoint, role: str) -> MySQLSession:
    try:
        return MySQLSession(endpoint, connect_timeout=10)
    except pymysql.err.MySQLError as exc:
        code = error_code(exc)
        if code == 1045:
            raise PreflightFailed(
                f"{role} {endpoint.describe()} refused the login: access denied (wrong user or password)",
                hint=f"check [{role}] user and password_env/password_file in the config",
            ) from exc
        raise PreflightFailed(
            f"cannot connect to the {role} at {endpoint.describe()}: {exc.args[-1] if exc.args else exc}",
            hint=f"check [{role}] host and port, and that the server is up and reachable from here",
        ) from exc


def global_privileges(session: MySQLSession) -> set[str]:
    """Privileges granted ON *.* to the current user (ALL expands to everything)."""
    privileges: set[str] = set()
    for (grant,) in session.rows("SHOW GRANTS"):
        match = re.match(r"GRANT (.+?) ON \*\.\* TO", str(grant))
        if match:
            privileges.update(p.strip().upper() for p in match.group(1).split(","))
    return privileges


def _require(session: MySQLSession, role: str, needed: tuple[str, ...], any_of: tuple[str, ...] = ()) -> None:
    have = global_privileges(session)
    if "ALL PRIVILEGES" in have:
        return
    missing = [p for p in needed if p not in have]
    if any_of and not have.intersection(any_of):
        missing.append(" or ".join(any_of))
    if missing:
        raise PreflightFailed(
            f"the {role} account {session.endpoint.describe()} lacks {', '.join(missing)} ON *.*",
            hint=f"GRANT {', '.join(m.split(' or ')[0] for m in missing)} ON *.* TO the {role} user",
        )


def _flavour(session: MySQLSession) -> Flavour:
    return detect(str(session.value("SELECT VERSION()")))


def check_source(config: Config) -> Flavour:
    with _open(config.source, "source") as s:
        flavour = _flavour(s)
        log_bin = str(s.variable("log_bin")).upper()
        if log_bin not in ("ON", "1"):
            raise PreflightFailed(
                f"the source {config.source.describe()} has binary logging off (log_bin={log_bin})",
                hint="enable binary logs (RDS: a backup retention period > 0 turns them on)",
            )
        fmt = str(s.variable("binlog_format")).upper()
        if fmt != "ROW":
            raise PreflightFailed(
                f"the source's binlog_format is {fmt}; row-based logging is required to apply changes exactly",
                hint="set binlog_format=ROW (RDS: in the DB parameter group), then run again",
            )
        image = str(s.variable("binlog_row_image") or "FULL").upper()
        if image != "FULL":
            raise PreflightFailed(
                f"the source's binlog_row_image is {image}; FULL is required",
                hint="set binlog_row_image=FULL in the source's configuration",
            )
        compression = str(s.variable("binlog_transaction_compression") or "OFF").upper()
        if compression in ("ON", "1"):
            raise PreflightFailed(
                "binlog_transaction_compression is ON on the source; turn it off for the migration"
            )
        present = {str(r[0]) for r in s.rows("SHOW DATABASES")}
        missing = [name for name in config.migration.schemas if name not in present]
        if missing:
            raise PreflightFailed(
                f"schema(s) {', '.join(missing)} do not exist on the source",
                hint="check migration.schemas in the config",
            )
        myisam = non_transactional_tables(s, list(config.migration.schemas))
        if myisam:
            raise PreflightFailed(
                f"non-transactional tables cannot be applied exactly once: {', '.join(myisam[:10])}",
                hint="convert them to InnoDB (ALTER TABLE ... ENGINE=InnoDB) before migrating",
            )
        _require(s, "source", SOURCE_PRIVILEGES, SOURCE_CLIENT_PRIVILEGES)
    return flavour


def check_target(config: Config, *, copy_started: bool) -> Flavour:
    with _open(config.target, "target") as t:
        flavour = _flavour(t)
        # The applier replays row events with BINLOG statements.
        replay = ("BINLOG REPLAY", "SUPER") if flavour.is_mariadb else ("REPLICATION_APPLIER", "SUPER")
        _require(t, "target", TARGET_PRIVILEGES, replay)
        if not copy_started and not config.migration.allow_nonempty_target:
            non_empty = target_is_empty(t, list(config.migration.schemas))
            if non_empty:
                raise PreflightFailed(
                    f"the target already has data in {', '.join(non_empty[:10])}",
                    hint="migrate into an empty target, or pass --allow-nonempty-target if you know why",
                )
    return flavour


def check_tools(flavour: Flavour) -> None:
    for tools in (flavour.binlog_tool, flavour.dump_tool, flavour.client_tool):
        find_binary(*tools)


def run_preflight(config: Config, journal: Journal | None, dns: DnsProvider, *, log: Any) -> None:
    """Cheap, read-only; repeated on every run so a resume also meets a clear error, not a stack trace."""
    steps = {row.number: row.status for row in journal.steps()} if journal else {}
    copy_started = journal is not None and (bool(journal.chunk_plan()) or steps.get(6) == "done")
    if config.rds is not None:
        from migrator.platforms.rds import rds_preflight

        rds_preflight(config, resuming=journal is not None)
    source_flavour = check_source(config)
    check_target(config, copy_started=copy_started)
    if steps.get(6) != "done":
        with _open(config.target, "target") as t:
            if str(t.value("SELECT @@local_infile")) not in ("1", "ON"):
                log.warning(
                    "preflight.local_infile_off",
                    effect="step 6 copies through mysqldump | mysql, which costs the target more CPU",
                    hint="SET GLOBAL local_infile = ON on the target lets it use LOAD DATA LOCAL",
                )
    check_tools(source_flavour)
    if steps.get(13) != "done":
        dns.read(config.dns.record)
    log.info("preflight.ok")


__all__ = ["EnvironmentProblem", "run_preflight"]
