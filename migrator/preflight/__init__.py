"""Checks before anything changes: every bad input is reported here with exit 2 and no side effect."""

from __future__ import annotations

from typing import Any

import pymysql

from migrator import doctor
from migrator.config import Config
from migrator.cutover import check_account_plugins
from migrator.doctor import Finding
from migrator.endpoint import Endpoint
from migrator.errors import EnvironmentProblem, PreflightFailed
from migrator.grants import Conditions
from migrator.journal import Journal
from migrator.mysql.flavour import Flavour, detect
from migrator.mysql.schema import non_transactional_tables, target_is_empty
from migrator.mysql.session import MySQLSession, error_code
from migrator.ports import DnsProvider
from migrator.preflight.grant_check import GrantRow, describe_missing, evaluate
from migrator.preflight.privileges import read_privileges
from migrator.tools import client_tools


def open_session(endpoint: Endpoint, role: str) -> MySQLSession:
    """A session for checks: a refused login or an unreachable server is bad input (exit 2) with a hint."""
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


def _flavour(session: MySQLSession) -> Flavour:
    return detect(str(session.value("SELECT VERSION()")))


def check_source(config: Config) -> Flavour:
    with open_session(config.source, "source") as s:
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
        _check_xa_recover(config, s, flavour)
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
    return flavour


XA_RECOVER_REFUSED = (1044, 1142, 1227, 1397)  # access denied / privilege needed / XAER_RMERR (MySQL 8 CONVERT XID)


def _check_xa_recover(config: Config, source: MySQLSession, flavour: Flavour) -> None:
    """Steps 9 and 10 read XA RECOVER on the source inside the pause (a prepared XA refuses the cut-over):
    an account that may not read it must be refused here, not there."""
    try:
        source.rows(flavour.xa_recover_sql)
    except pymysql.err.MySQLError as exc:
        if error_code(exc) not in XA_RECOVER_REFUSED:
            raise
        raise PreflightFailed(
            f"the source account {config.source.user} may not run XA RECOVER ({exc.args[-1] if exc.args else exc}); "
            "steps 9 and 10 read it to refuse a cut-over while an XA transaction is prepared",
            hint=f"GRANT XA_RECOVER_ADMIN ON *.* TO {config.source.user} (MySQL 8; RDS for MySQL gives the master "
            "user XA_RECOVER_ADMIN from 8.0.36)",
        ) from exc


def check_target(config: Config, *, copy_started: bool) -> Flavour:
    with open_session(config.target, "target") as t:
        flavour = _flavour(t)
        if not copy_started and not config.migration.allow_nonempty_target:
            non_empty = target_is_empty(t, list(config.migration.schemas))
            if non_empty:
                raise PreflightFailed(
                    f"the target already has data in {', '.join(non_empty[:10])}",
                    hint="migrate into an empty target, or pass --allow-nonempty-target if you know why",
                )
    return flavour


def check_tools(flavour: Flavour) -> client_tools.ToolSet:
    """Tools of one product that can read the source's binlogs, found by --version (review B3)."""
    return client_tools.choose(flavour)


def _yes(value: object) -> bool:
    return str(value).upper() in ("1", "ON")


def grant_conditions(config: Config, source: MySQLSession, target: MySQLSession) -> Conditions:
    """Which rows of the grant table apply: from the config and what the two servers hold."""
    schemas = list(config.migration.schemas)
    marks = ", ".join(["%s"] * len(schemas))
    creates_code = 0
    definers: set[str] = set()
    if schemas:
        creates_code = int(
            source.value(
                f"SELECT (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA IN ({marks})) + "
                f"(SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN ({marks}))",
                (*schemas, *schemas),
            )
            or 0
        )
        for table, column in (("ROUTINES", "ROUTINE_SCHEMA"), ("TRIGGERS", "TRIGGER_SCHEMA"),
                              ("EVENTS", "EVENT_SCHEMA"), ("VIEWS", "TABLE_SCHEMA")):
            definers.update(
                str(r[0]).lower()
                for r in source.rows(
                    f"SELECT DISTINCT DEFINER FROM information_schema.{table} WHERE {column} IN ({marks})", schemas
                )
            )
    me = str(target.value("SELECT CURRENT_USER()")).lower()
    # Step 12 copies every DEFINER account (or maps it as configured): each stays a DEFINER on the target.
    # (definers.fallback applies only to a definer that is not copied, so it does not decide this.)
    mapped = {k.lower(): v.lower() for k, v in config.definers.map}
    kept = {mapped.get(d, d) for d in definers}
    untrusted = _yes(target.value("SELECT @@log_bin")) and not _yes(
        target.value("SELECT @@log_bin_trust_function_creators")
    )
    return Conditions(
        platform=config.migration.platform,
        read_only=config.cutover.read_only,
        target_binlog_untrusted=untrusted and creates_code > 0,
        foreign_definers=bool(kept - {me}),
        rollback_window=config.rollback.enabled,
    )


def grant_rows(config: Config) -> tuple[list[GrantRow], dict[str, Flavour]]:
    """The grant table evaluated for this migration's two accounts (snapshot needs on the source's)."""
    schemas = tuple(config.migration.schemas)
    with open_session(config.source, "source") as s, open_session(config.target, "target") as t:
        source_flavour, target_flavour = _flavour(s), _flavour(t)
        conditions = grant_conditions(config, s, t)
        rows = evaluate(
            "source", read_privileges(s, source_flavour), source_flavour, schemas, conditions,
            servers=("source", "snapshot"),
        )
        rows += evaluate("target", read_privileges(t, target_flavour), target_flavour, schemas, conditions)
    return rows, {"source": source_flavour, "target": target_flavour}


def check_grants(
    config: Config, *, log: Any, evaluated: tuple[list[GrantRow], dict[str, Flavour]] | None = None
) -> list[GrantRow]:
    """Exit 2 naming every missing grant, its account, the step needing it and the GRANT to run."""
    rows, flavours = evaluated or grant_rows(config)
    for row in rows:
        if row.status == "warning":
            log.warning("preflight.optional_grant_missing", step=row.need.step, account=row.account,
                        effect=row.need.statements, grant="; ".join(row.grant_sql))
    missing = [row for row in rows if row.status == "missing"]
    if missing:
        lines = [describe_missing(row, flavours[row.server]) for row in missing]
        endpoints = {"source": config.source, "target": config.target}
        who = " and ".join(
            f"the {server} account {endpoints[server].describe()} ({account})"
            for server, account in dict.fromkeys((row.server, row.account) for row in missing)
        )
        raise PreflightFailed(
            f"{who} {'lacks' if ' and ' not in who else 'lack'} {len(missing)} grant(s) the migration needs "
            f"(nothing was changed):\n  - " + "\n  - ".join(lines),
            hint="run the GRANT statements above as an administrator (`migrator plan` prints the whole grant "
            "table), then run again",
        )
    return rows


def check_doctor(config: Config, *, rows: list[Finding] | None = None) -> list[Finding]:
    """The compatibility report's blocking rows stop the run here (exit 2), each with its remedy."""
    rows = rows if rows is not None else doctor.diagnose(config)
    stop = doctor.blocking(rows)
    if stop:
        raise PreflightFailed(
            "source and target differ in ways the migration cannot survive (nothing was changed):\n  - "
            + "\n  - ".join(f"{r.check}: source {r.source}, target {r.target}; fix: {r.remedy}" for r in stop),
            hint="`migrator doctor -c CONFIG` prints the whole comparison",
        )
    return rows


def run_preflight(config: Config, journal: Journal | None, dns: DnsProvider, *, log: Any) -> None:
    """Cheap, read-only; repeated on every run so a resume also meets a clear error, not a stack trace."""
    steps = {row.number: row.status for row in journal.steps()} if journal else {}
    copy_started = journal is not None and (bool(journal.chunk_plan()) or steps.get(6) == "done")
    if config.rds is not None:
        from migrator.platforms.rds import rds_preflight, require_dedicated_parameter_group

        rds_preflight(config, resuming=journal is not None)
        if steps.get(9) != "done":
            require_dedicated_parameter_group(config)
    source_flavour = check_source(config)
    check_target(config, copy_started=copy_started)
    check_grants(config, log=log)
    if steps.get(12) != "done":
        check_account_plugins(config)  # an account step 12 copies must log in on the target
    for row in check_doctor(config):
        if row.status == doctor.WARNING:
            log.warning("preflight.doctor_warning", check=row.check, source=row.source, target=row.target,
                        fix=row.remedy)
    if steps.get(6) != "done":
        with open_session(config.target, "target") as t:
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
