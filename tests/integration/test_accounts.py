"""The application's accounts and DEFINERs on the target (issue 14 item 1), against real local servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from migrator.errors import EXIT_OK, EXIT_STEP_FAILED, PreflightFailed
from migrator.journal import Journal
from migrator.platforms.local_server import LocalServer
from migrator.sandbox.dataset import APP_USER
from tests.conftest import MakeServer
from tests.harness import APP_PASSWORD, Sandbox, make_sandbox, stop_local_replicas, write_config
from tests.integration.test_binlog_applier import rows

REPORT_PASSWORD = "Report-pw#7"


@pytest.fixture
def boxes() -> Iterator[list[Sandbox]]:
    made: list[Sandbox] = []
    yield made
    for box in made:
        stop_local_replicas(box)


def login(server: LocalServer, user: str, password: str) -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=server.port, user=user, password=password, autocommit=True)


def facts(box: Sandbox) -> dict[str, Any]:
    ro = Journal.open_readonly(box.workdir / "journal.sqlite")
    try:
        return ro.facts()
    finally:
        ro.close()


def steps_status(box: Sandbox) -> dict[int, str]:
    ro = Journal.open_readonly(box.workdir / "journal.sqlite")
    try:
        return {s.number: s.status for s in ro.steps()}
    finally:
        ro.close()


def test_application_accounts_exist_on_the_target_with_working_passwords(
    make_server: MakeServer, tmp_path: Path, boxes: list[Sandbox]
) -> None:
    box = make_sandbox(make_server, tmp_path)
    boxes.append(box)
    box.target.execute(f"DROP USER '{APP_USER}'@'%'")  # the harness made it; here the migration must
    box.source.execute(
        "CREATE ROLE reader",
        "GRANT SELECT ON shop.* TO reader",
        f"CREATE USER report@'%' IDENTIFIED BY '{REPORT_PASSWORD}' WITH MAX_USER_CONNECTIONS 3 "
        "PASSWORD EXPIRE INTERVAL 90 DAY",
        "GRANT reader TO report@'%'",
        "SET DEFAULT ROLE reader FOR report@'%'",
        "GRANT SELECT (email) ON shop.customers TO report@'%'",
        "GRANT EXECUTE ON mysql.* TO report@'%'",  # another schema: left out, listed
        "CREATE USER dba@'%' IDENTIFIED BY 'Dba-pw#1'",  # global privileges only: not the application's
        "GRANT PROCESS ON *.* TO dba@'%'",
        "CREATE USER rdsadmin@localhost IDENTIFIED BY 'Rds-pw#1'",  # RDS's own: never copied, listed
        "GRANT SELECT ON shop.* TO rdsadmin@localhost",
    )
    result = box.cli("run")
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    # The application logs in to the target with its own password and works there.
    conn = login(box.target, APP_USER, APP_PASSWORD)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM shop.customers")
        assert cur.fetchone()[0] > 0
    conn.close()
    conn = login(box.target, "report", REPORT_PASSWORD)
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_ROLE()")  # its default role came along
        assert cur.fetchone()[0] == "reader"
        cur.execute("SELECT COUNT(*) FROM shop.orders")
        assert cur.fetchone()[0] > 0
    conn.close()
    with pytest.raises(pymysql.err.OperationalError):
        login(box.target, "report", "wrong-password")
    create = str(rows(box.target, "SHOW CREATE USER report@'%'")[0][0])
    assert create == str(rows(box.source, "SHOW CREATE USER report@'%'")[0][0])  # hash, limits, expiry
    assert "MAX_USER_CONNECTIONS 3" in create and "PASSWORD EXPIRE INTERVAL 90 DAY" in create
    grants = {str(r[0]) for r in rows(box.target, "SHOW GRANTS FOR report@'%'")}
    assert "GRANT SELECT (`email`) ON `shop`.`customers` TO `report`@`%`" in grants
    assert not any("`mysql`" in g for g in grants)
    # The DEFINER account came along (locked, as on the source) and owns the objects again.
    assert "ACCOUNT LOCK" in str(rows(box.target, "SHOW CREATE USER app_owner@'%'")[0][0])
    definers = {r[0] for r in rows(box.target, "SELECT DEFINER FROM information_schema.ROUTINES "
                                                "WHERE ROUTINE_SCHEMA = 'shop'")}
    assert definers == {"app_owner@%"}
    copied = facts(box)["accounts"]
    assert {"app@%", "report@%", "app_owner@%", "reader@"} <= set(copied["created"])
    assert not any(name.startswith(("dba@", "root@", "admin@", "mariadb.sys@")) for name in copied["created"])
    assert any("report@%: EXECUTE ON `mysql`.*" in line for line in copied["left_out"])
    assert copied["kept_as_is"] == []
    assert any(line.startswith("rdsadmin@localhost: RDS or server system account") for line in copied["left_out"])
    assert rows(box.target, "SELECT COUNT(*) FROM mysql.user WHERE User = 'rdsadmin'") == [(0,)]


def test_a_session_account_missing_on_the_target_stops_before_dns_moves(
    make_server: MakeServer, tmp_path: Path, boxes: list[Sandbox]
) -> None:
    box = make_sandbox(make_server, tmp_path)
    boxes.append(box)
    # An account with global privileges only is not copied by default; it is connected all along.
    box.source.execute("CREATE USER ops@'%' IDENTIFIED BY 'Ops-pw#1'", "GRANT SELECT ON *.* TO ops@'%'")
    ops = login(box.source, "ops", "Ops-pw#1")
    try:
        result = box.cli("run")
        assert result.returncode == EXIT_STEP_FAILED
        assert "cannot log in to the target" in result.stderr and "ops@127.0.0.1" in result.stderr
        status = steps_status(box)
        assert status[13] == "pending" and status[11] == "pending"  # reset by the automatic abort
        assert rows(box.source, "SELECT @@global.read_only") == [(0,)]  # writes given back
        assert "ops@127.0.0.1" in facts(box)["accounts_seen"]
        # Created on the target by hand: the same command goes on to the end.
        box.target.execute("CREATE USER ops@'%' IDENTIFIED BY 'Ops-pw#1'", "GRANT SELECT ON *.* TO ops@'%'")
        again = box.cli("run")
        assert again.returncode == EXIT_OK, again.stderr[-3000:]
    finally:
        ops.close()


def test_a_definer_procedure_never_runs_with_the_migration_accounts_privileges(
    make_server: MakeServer, tmp_path: Path, boxes: list[Sandbox]
) -> None:
    """A SQL SECURITY DEFINER procedure whose DEFINER is not copied used to become the migration account's
    (definers.fallback) and run with all its privileges. Now the mapping is refused before the pause; the
    account copied, the procedure runs with exactly the privileges it had on the source."""
    box = make_sandbox(make_server, tmp_path, accounts={"exclude": ["ghost@%"]})
    boxes.append(box)
    box.source.execute(
        "CREATE USER ghost@'%' IDENTIFIED BY 'Ghost-pw#1' ACCOUNT LOCK",
        "GRANT SELECT, EXECUTE ON shop.* TO ghost@'%'",
        "CREATE DEFINER=ghost@'%' PROCEDURE shop.peek() SQL SECURITY DEFINER "
        "SELECT COUNT(*) FROM mysql.user",
    )
    refused = box.cli("run")
    assert refused.returncode == EXIT_STEP_FAILED
    assert "definers mapping ghost@% -> admin@% refused" in refused.stderr, refused.stderr[-2000:]
    assert steps_status(box)[12] == "failed" and steps_status(box)[9] == "pending"
    assert rows(box.source, "SELECT @@global.read_only") == [(0,)]
    assert rows(box.target, "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_NAME = 'peek'") == [(0,)]
    # Without the exclusion the DEFINER is copied: the procedure keeps its owner and its (lack of) rights.
    text = box.config_path.read_text().replace('exclude = ["ghost@%"]', "exclude = []")
    box.config_path.write_text(text)
    result = box.cli("run")
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    assert rows(box.target, "SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_NAME = 'peek'") == [
        ("ghost@%",)
    ]
    for server in (box.source, box.target):
        conn = login(server, APP_USER, APP_PASSWORD)
        with conn.cursor() as cur, pytest.raises(pymysql.err.OperationalError, match=r"1142|denied"):
            cur.execute("CALL shop.peek()")
        conn.close()


def test_preflight_names_an_account_whose_plugin_the_target_cannot_load(
    make_server: MakeServer, tmp_path: Path
) -> None:
    from migrator.config import load
    from migrator.cutover import check_account_plugins
    from tests.conftest import ADMIN_PASSWORD, ADMIN_USER

    source = make_server("source", 1)
    target = make_server("target", 2)
    source.execute(
        "INSTALL SONAME 'auth_ed25519'",
        "CREATE DATABASE shop",
        "CREATE USER edgar@'%' IDENTIFIED VIA ed25519 USING PASSWORD('Edgar-pw#1')",
        "GRANT SELECT ON shop.* TO edgar@'%'",
        "CREATE USER native@'%' IDENTIFIED BY 'Native-pw#1'",
        "GRANT SELECT ON shop.* TO native@'%'",
    )
    endpoint = {"host": "127.0.0.1", "user": ADMIN_USER, "password": ADMIN_PASSWORD}
    config = load(write_config(tmp_path / "m.toml", {
        "migration": {"workdir": str(tmp_path / "w"), "schemas": ["shop"]},
        "source": {**endpoint, "port": source.port},
        "target": {**endpoint, "port": target.port},
        "dns": {"record": "db", "target_value": "x"},
    }))
    with pytest.raises(PreflightFailed, match=r"edgar@% \(ed25519\)") as caught:
        check_account_plugins(config)
    assert "native" not in caught.value.message
    target.execute("INSTALL SONAME 'auth_ed25519'")
    assert set(check_account_plugins(config)) == {"edgar@%", "native@%"}


def test_accounts_changed_on_the_source_after_step_12_are_refreshed(
    make_server: MakeServer, tmp_path: Path, boxes: list[Sandbox]
) -> None:
    box = make_sandbox(make_server, tmp_path)
    boxes.append(box)
    box.target.execute(f"DROP USER '{APP_USER}'@'%'")
    first = box.cli("run", "--until", "12")
    assert first.returncode == EXIT_OK, first.stderr[-3000:]
    login(box.target, APP_USER, APP_PASSWORD).close()  # copied before the pause
    # Meanwhile on the source: the password is rotated, a grant revoked, an account added.
    box.source.execute(
        f"ALTER USER '{APP_USER}'@'%' IDENTIFIED BY 'Rotated-pw#2'",
        f"REVOKE DELETE ON shop.* FROM '{APP_USER}'@'%'",
        "CREATE USER late@'%' IDENTIFIED BY 'Late-pw#3'",
        "GRANT SELECT ON hr.* TO late@'%'",
    )
    result = box.cli("run")
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    login(box.target, APP_USER, "Rotated-pw#2").close()
    with pytest.raises(pymysql.err.OperationalError):
        login(box.target, APP_USER, APP_PASSWORD)
    grants = [str(r[0]) for r in rows(box.target, f"SHOW GRANTS FOR '{APP_USER}'@'%'")]
    assert "GRANT SELECT, INSERT, UPDATE, EXECUTE ON `shop`.* TO `app`@`%`" in grants  # DELETE revoked there too
    assert grants == [str(r[0]) for r in rows(box.source, f"SHOW GRANTS FOR '{APP_USER}'@'%'")]
    login(box.target, "late", "Late-pw#3").close()
    assert facts(box)["routines_resync"]["accounts_refreshed"] == ["app@%"]
