"""The RDS side of the after-cut-over: mysql.rds_kill and the external-source procedures (moto + local servers).

The master user has neither SUPER nor CONNECTION ADMIN nor the right to CHANGE MASTER, exactly as on
RDS: every effect here goes through the emulated mysql.rds_* procedures.
"""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from migrator.mysql.flavour import MYSQL_8_0, MYSQL_8_4
from migrator.mysql.session import MySQLSession
from migrator.platforms.rds import RdsPlatform
from migrator.source_sessions import application_sessions
from tests.conftest import ADMIN_PASSWORD, ADMIN_USER, MakeServer
from tests.integration.aws.conftest import (
    MASTER_USER,
    RdsEmulation,
    emulate_reset_parameter_group,
    rds_config,
    wait_for,
)


def _connect(port: int, user: str, password: str) -> Any:
    return pymysql.connect(host="127.0.0.1", port=port, user=user, password=password, autocommit=True)


def test_rds_kill_ends_an_application_session_the_master_user_cannot_kill(rds_env: RdsEmulation) -> None:
    rds_env.source.execute(
        "CREATE USER 'shopapp'@'%' IDENTIFIED BY 'app-Pw#1'", "GRANT SELECT ON shop.* TO 'shopapp'@'%'"
    )
    config = rds_config(rds_env)
    app = _connect(rds_env.source.port, "shopapp", "app-Pw#1")
    with MySQLSession(config.source) as s:
        (session,) = application_sessions(s, migration_users=frozenset({MASTER_USER}))
        assert session.account == "shopapp@127.0.0.1"
        with pytest.raises(pymysql.err.OperationalError) as refused:  # as on RDS: no CONNECTION_ADMIN
            s.execute("KILL CONNECTION %s", (session.id,))
        assert refused.value.args[0] == 1095
    RdsPlatform(config).kill_session(session.id)
    with pytest.raises(pymysql.err.OperationalError) as ended, app.cursor() as cur:
        cur.execute("SELECT 1")
    assert ended.value.args[0] in (2006, 2013)
    RdsPlatform(config).kill_session(session.id)  # gone already: not an error
    with MySQLSession(config.source) as s:
        assert application_sessions(s, migration_users=frozenset({MASTER_USER})) == []


def _target_head(target: Any) -> tuple[str, int]:
    conn = target.root()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
    finally:
        conn.close()
    return str(row[0]), int(row[1])


def _orders(server: Any) -> list[tuple[Any, ...]]:
    conn = server.root()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, note FROM shop.orders ORDER BY id")
            return list(cur.fetchall())
    finally:
        conn.close()


@pytest.mark.parametrize("flavour", [MYSQL_8_0, MYSQL_8_4], ids=["8.0-external-master", "8.4-external-source"])
def test_reverse_replication_through_the_external_source_procedures(
    rds_env: RdsEmulation, make_server: MakeServer, monkeypatch: pytest.MonkeyPatch, flavour: Any
) -> None:
    target = make_server("target", 7)
    target.execute(
        "CREATE DATABASE shop",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(40)) ENGINE=InnoDB",
        "INSERT INTO shop.orders VALUES (1, 'first'), (2, 'second')",
    )
    config = rds_config(rds_env, target=target)
    # The procedure names depend on the engine version; the data plane here is MariaDB.
    monkeypatch.setattr(RdsPlatform, "_flavour", staticmethod(lambda _session: flavour))
    gone = "rds_set_external_master" if flavour is MYSQL_8_4 else "rds_set_external_source"
    rds_env.source.execute(f"DROP PROCEDURE mysql.{gone}")  # prove the other one is the one called
    with MySQLSession(config.source) as s, pytest.raises(pymysql.err.OperationalError) as refused:
        s.execute("CHANGE MASTER TO MASTER_HOST='127.0.0.1'")  # the master user may not, as on RDS
    assert refused.value.args[0] in (1227, 1044)
    platform = RdsPlatform(config)
    file, pos = _target_head(target)
    platform.start_reverse_replication(
        host="127.0.0.1", port=target.port, user=ADMIN_USER, password=ADMIN_PASSWORD, log_file=file,
        log_pos=pos, ssl=False,
    )
    target.execute(
        "INSERT INTO shop.orders VALUES (3, 'written on the target')", "UPDATE shop.orders SET note = 'x' WHERE id = 1"
    )
    wait_for(lambda: _orders(rds_env.source) == _orders(target), what="the source to follow the target")
    assert _orders(rds_env.source) == [(1, "x"), (2, "second"), (3, "written on the target")]
    platform.ensure_reverse_replication_running()  # already running: a no-op
    platform.stop_reverse_replication()
    conn = rds_env.source.root()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW SLAVE STATUS")
            assert cur.fetchall() == ()
    finally:
        conn.close()
    with MySQLSession(config.source) as s:
        assert s.value("SELECT CURRENT_USER()").startswith(MASTER_USER)


def test_rds_migration_then_rollback_through_the_cli(
    aws: Any, make_server: MakeServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """platform rds + route53: the window opens through rds_set_external_master, the rollback points the
    CNAME back and turns read_only off through the parameter group; the target's writes are on the source."""
    from tests.integration.aws.test_rds_end_to_end import rds_sandbox

    box, emulation, _changes = rds_sandbox(aws, make_server, tmp_path, monkeypatch)
    resets = emulate_reset_parameter_group(monkeypatch, emulation)
    result = box.cli("run")
    assert result.returncode == 0, result.stderr[-3000:]
    with MySQLSession(box.config().source) as s:
        (status,) = s.dicts("SHOW SLAVE STATUS")
    assert status["Master_Port"] == box.target.port and status["Slave_SQL_Running"] == "Yes"
    box.target.execute(
        "INSERT INTO shop.ledger (id, c, writer, updated_at) VALUES (777001, 5, 'after-switch', NOW(6))",
        "UPDATE shop.ledger SET c = c + 1 WHERE id = 777001",
    )
    done = box.cli("rollback")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _ledger_row(box.source, 777001) == _ledger_row(box.target, 777001) == (777001, 6, "after-switch")
    sets = aws.client("route53").list_resource_record_sets(HostedZoneId=box.config().dns.hosted_zone_id)
    (cname,) = [s for s in sets["ResourceRecordSets"] if s["Type"] == "CNAME"]
    assert cname["ResourceRecords"][0]["Value"].startswith("shop-db.")
    # read_only on at step 9; at the rollback the group's own value comes back: the engine default, by a reset
    assert emulation.calls["ModifyDBParameterGroup"] == 1 and resets == [["read_only"]]
    wait_for(lambda: _read_only(box.source) == 0, what="the parameter group's read_only=0 to apply")
    emulation.settle()


def _ledger_row(server: Any, row_id: int) -> tuple[Any, ...] | None:
    conn = server.root()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, c, writer FROM shop.ledger WHERE id = %s", (row_id,))
            row = cur.fetchone()
    finally:
        conn.close()
    return None if row is None else tuple(row)


def _read_only(server: Any) -> int:
    conn = server.root()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@global.read_only")
            return int(cur.fetchone()[0])
    finally:
        conn.close()
