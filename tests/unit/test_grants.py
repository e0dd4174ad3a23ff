"""The grant table, the README generated from it, and SHOW GRANTS as MySQL 8 and MariaDB print it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from migrator import grants
from migrator.grants import Conditions
from migrator.mysql.flavour import MARIADB_10_11, MYSQL_8_0, MYSQL_8_4, Flavour
from migrator.preflight.grant_check import evaluate
from migrator.preflight.privileges import read_privileges

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_grant_lists_are_generated_from_the_table() -> None:
    assert grants.readme_is_current(README), "run `python -m migrator.grants --readme` and commit README.md"


class CannedSession:
    """Answers the few statements read_privileges sends, as a MySQL 8 server prints them (manual, SHOW GRANTS)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def value(self, sql: str) -> Any:
        self.asked.append(sql)
        return self.answers[sql]

    def rows(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        self.asked.append(sql)
        return [(line,) for line in self.answers[sql]]


MYSQL_DYNAMIC = (
    "GRANT BINLOG_ADMIN,CONNECTION_ADMIN,REPLICATION_APPLIER,SESSION_VARIABLES_ADMIN,SET_USER_ID,"
    "SYSTEM_VARIABLES_ADMIN ON *.* TO `mig`@`%`"
)
MYSQL_STATIC = (
    "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, REFERENCES, INDEX, ALTER, CREATE VIEW, SHOW VIEW, "
    "CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER, CREATE USER, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, "
    "REPLICATION SLAVE, REPLICATION CLIENT "
    "ON *.* TO `mig`@`%` WITH GRANT OPTION"
)


def _target_rows(flavour: Flavour, session: CannedSession, conditions: Conditions) -> dict[str, str]:
    privileges = read_privileges(session, flavour)  # type: ignore[arg-type]
    rows = evaluate("target", privileges, flavour, ("shop",), conditions)
    return {row.need.statements.split(" (")[0]: row.status for row in rows}


def test_mysql8_role_grants_are_read_with_using() -> None:
    """MySQL 8 lists a granted role without its privileges; SHOW GRANTS ... USING expands it."""
    session = CannedSession({
        "SELECT CURRENT_USER()": "mig@%",
        "SHOW GRANTS": ["GRANT USAGE ON *.* TO `mig`@`%`", "GRANT `migrator_role`@`%` TO `mig`@`%`"],
        "SELECT CURRENT_ROLE()": "`migrator_role`@`%`",
        "SHOW GRANTS FOR CURRENT_USER() USING `migrator_role`@`%`": [
            "GRANT USAGE ON *.* TO `mig`@`%`", MYSQL_STATIC, MYSQL_DYNAMIC,
            "GRANT SELECT ON `mysql`.`user` TO `mig`@`%`",
            "GRANT `migrator_role`@`%` TO `mig`@`%`",
        ],
    })
    statuses = _target_rows(MYSQL_8_0, session, Conditions(target_binlog_untrusted=False, foreign_definers=True))
    assert set(statuses.values()) == {"ok", "n/a"}, statuses
    assert "SHOW GRANTS FOR CURRENT_USER() USING `migrator_role`@`%`" in session.asked


def test_mysql8_target_needs_connection_admin_and_session_variables() -> None:
    session = CannedSession({
        "SELECT CURRENT_USER()": "mig@%",
        "SHOW GRANTS": [MYSQL_STATIC, "GRANT REPLICATION_APPLIER ON *.* TO `mig`@`%`",
                        "GRANT SELECT ON `mysql`.`user` TO `mig`@`%`"],
        "SELECT CURRENT_ROLE()": "NONE",
    })
    statuses = _target_rows(MYSQL_8_4, session, Conditions())
    assert statuses["write while read_only = ON"] == "missing"  # B2: CONNECTION_ADMIN or SUPER
    assert statuses["SET GLOBAL read_only = ON before the copy, OFF at step 14"] == "missing"
    assert statuses["SET @@session.pseudo_thread_id, sql_mode, ..."] == "missing"
    assert statuses["BINLOG '...'"] == "ok"


def test_mariadb_schema_grants_wildcards_and_column_grants() -> None:
    session = CannedSession({
        "SELECT CURRENT_USER()": "mig@%",
        "SHOW GRANTS": [
            "GRANT BINLOG MONITOR, REPLICATION SLAVE ON *.* TO `mig`@`%` IDENTIFIED BY PASSWORD '*AB'",
            "GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON `sho%`.* TO `mig`@`%`",
            "GRANT SELECT ON `hr\\_%`.* TO `mig`@`%`",
            "GRANT SELECT (id, note) ON `hr`.`t` TO `mig`@`%`",
        ],
        "SELECT CURRENT_ROLE()": None,
    })
    privileges = read_privileges(session, MARIADB_10_11)  # type: ignore[arg-type]
    assert privileges.has("SELECT", grants.SCHEMAS, ("shop",)) == []  # `sho%` matches shop
    assert privileges.has("SELECT", grants.SCHEMAS, ("shop", "hr")) == ["`hr`.*"]  # a column grant is not enough
    assert privileges.has("SELECT", grants.SCHEMAS, ("hr_x", "hrax")) == ["`hrax`.*"]  # \_ is a literal _
    assert privileges.has("REPLICATION SLAVE", grants.GLOBAL, ()) == []


def test_mariadb_super_counts_for_read_only_only_before_10_11() -> None:
    session = CannedSession({
        "SELECT CURRENT_USER()": "mig@%",
        "SHOW GRANTS": ["GRANT ALL PRIVILEGES ON `shop`.* TO `mig`@`%`", "GRANT SUPER ON *.* TO `mig`@`%`"],
        "SELECT CURRENT_ROLE()": None,
    })
    read_only = next(n for n in grants.TABLE if n.server == "source" and "read_only" in n.statements)
    for flavour, expected in ((MARIADB_10_11, "missing"), (Flavour("mariadb", 10, 6), "ok")):
        privileges = read_privileges(session, flavour)  # type: ignore[arg-type]
        (row,) = evaluate("source", privileges, flavour, ("shop",), Conditions(), table=(read_only,))
        assert row.status == expected, flavour
    (row,) = evaluate("source", read_privileges(session, MARIADB_10_11), MARIADB_10_11, ("shop",),  # type: ignore[arg-type]
                      Conditions(), table=(read_only,))
    assert row.grant_sql == ("GRANT READ_ONLY ADMIN ON *.* TO 'mig'@'%'",)


def test_rds_needs_execute_on_the_procedures() -> None:
    session = CannedSession({
        "SELECT CURRENT_USER()": "admin@%",
        "SHOW GRANTS": ["GRANT SELECT, EXECUTE ON *.* TO `admin`@`%`"],
        "SELECT CURRENT_ROLE()": "NONE",
    })
    privileges = read_privileges(session, MYSQL_8_0)  # type: ignore[arg-type]
    rows = evaluate("source", privileges, MYSQL_8_0, ("shop",), Conditions(platform="rds"),
                    servers=("source", "snapshot"))
    rds = [r for r in rows if "rds_" in r.need.statements]
    # configuration x2, stop, start again (a prepared XA at the stop), kill, rollback
    assert len(rds) == 6 and {r.status for r in rds} == {"ok"}
    # XA RECOVER on the source (steps 9, 10) and the replica (the source's accounts): MySQL 8 needs
    # XA_RECOVER_ADMIN, MariaDB nothing.
    xa = [r for r in rows if r.need.statements.startswith("XA RECOVER")]
    assert [(r.need.server, r.server, r.status) for r in xa] == [
        ("source", "source", "missing"), ("snapshot", "source", "missing")
    ]
    assert all(r.status == "n/a" for r in rows if "read_only" in r.need.statements)  # RDS: parameter group
