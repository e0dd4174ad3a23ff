"""Contract tests of RdsPlatform against moto (server mode) and local servers standing in for the instances."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pymysql
import pytest

from migrator.aws import AwsCaller
from migrator.errors import PreflightFailed, StepFailed
from migrator.mysql.flavour import MARIADB_10_11
from migrator.mysql.session import MySQLSession
from migrator.mysql.xa import prepared_xas
from migrator.platforms.rds import MIGRATION_TAG, RdsPlatform, cleanup, describe_aws_calls
from tests.integration.aws.conftest import (
    MASTER_PASSWORD,
    MASTER_USER,
    REPLICA_ID,
    SOURCE_GROUP,
    SOURCE_ID,
    RdsEmulation,
    rds_config,
    wait_for,
)


def platform_for(emulation: RdsEmulation, **kwargs: Any) -> RdsPlatform:
    return RdsPlatform(rds_config(emulation, **kwargs))


def source_position(emulation: RdsEmulation) -> tuple[str, int]:
    conn = emulation.source.root()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
    finally:
        conn.close()
    assert row is not None
    return str(row[0]), int(row[1])


def replica_rows(emulation: RdsEmulation) -> list[tuple[Any, ...]]:
    conn = emulation.replica.root("shop")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, note FROM orders ORDER BY id")
            return list(cur.fetchall())
    finally:
        conn.close()


def caught_up(platform: RdsPlatform) -> bool:
    state = platform.replica_state(REPLICA_ID)
    return state.available and state.replicating and state.lag_seconds == 0


def test_binlog_retention_goes_through_the_rds_procedures(rds_env: RdsEmulation) -> None:
    platform = platform_for(rds_env)
    assert platform.binlog_retention_hours() is None  # RDS default NULL: not retained
    platform.set_binlog_retention_hours(48)
    assert platform.binlog_retention_hours() == 48
    platform.set_binlog_retention_hours(None)
    assert platform.binlog_retention_hours() is None
    with pytest.raises(PreflightFailed, match="1-168"):
        platform.set_binlog_retention_hours(5000)
    # The master user is RDS-like: no SUPER, so the procedures are the only way.
    with MySQLSession(platform.config.source) as s, pytest.raises(pymysql.err.OperationalError) as denied:
        s.execute("SET GLOBAL read_only = ON")
    assert denied.value.args[0] == 1227


def test_create_replica_waits_for_available_then_lag_zero_and_adopts(rds_env: RdsEmulation) -> None:
    platform = platform_for(rds_env)
    handle = platform.create_replica(REPLICA_ID)
    assert handle.identifier == REPLICA_ID
    first = platform.replica_state(REPLICA_ID)
    assert first.exists and not first.available and not first.replicating  # `creating`
    instance = rds_env.instance(REPLICA_ID)
    assert instance is not None
    assert instance["ReadReplicaSourceDBInstanceIdentifier"] == SOURCE_ID
    assert instance["DBInstanceClass"] == "db.r6g.large"
    assert instance["AvailabilityZone"] == "us-east-1b"
    tags = {t["Key"]: t["Value"] for t in instance["TagList"]}
    assert tags == {"team": "data", "purpose": "migration", MIGRATION_TAG: "shop-move"}

    wait_for(lambda: caught_up(platform), what="replica available with lag 0")
    rds_env.source.execute("INSERT INTO shop.orders VALUES (3, 'after create')")
    wait_for(lambda: caught_up(platform) and len(replica_rows(rds_env)) == 3, what="new row replicated")
    assert replica_rows(rds_env)[-1] == (3, "after create")
    assert platform.replica_handle(REPLICA_ID).endpoint.port == rds_env.replica.port  # endpoint_map

    again = platform.create_replica(REPLICA_ID)  # a resumed step 2: adopt, never a second replica
    assert again.identifier == REPLICA_ID
    assert rds_env.calls["CreateDBInstanceReadReplica"] == 1
    rds_env.settle()


def test_cloudwatch_replica_lag_holds_back_lag_zero(rds_env: RdsEmulation) -> None:
    platform = platform_for(rds_env)
    platform.create_replica(REPLICA_ID)
    wait_for(lambda: caught_up(platform), what="replica caught up")
    rds_env.aws.put_metric(REPLICA_ID, "ReplicaLag", 42.0, "Seconds", minutes_ago=2)
    state = platform.replica_state(REPLICA_ID)
    assert state.replicating and state.lag_seconds == 42.0  # SQL says 0; CloudWatch does not
    rds_env.aws.put_metric(REPLICA_ID, "ReplicaLag", 0.0, "Seconds")
    assert platform.replica_state(REPLICA_ID).lag_seconds == 0
    rds_env.settle()


def test_stop_replication_gives_exact_coordinates_then_promote(rds_env: RdsEmulation) -> None:
    platform = platform_for(rds_env)
    platform.create_replica(REPLICA_ID)
    rds_env.source.execute("INSERT INTO shop.orders VALUES (3, 'in snapshot')")
    wait_for(lambda: caught_up(platform) and len(replica_rows(rds_env)) == 3, what="caught up")
    head = source_position(rds_env)

    coords = platform.stop_replication(REPLICA_ID)
    assert (coords.file, coords.position) == head
    rds_env.source.execute("INSERT INTO shop.orders VALUES (4, 'after snapshot')")
    assert [r[0] for r in replica_rows(rds_env)] == [1, 2, 3]  # frozen

    platform.promote(REPLICA_ID)
    assert not platform.replica_state(REPLICA_ID).promoted  # `modifying`
    wait_for(lambda: platform.replica_state(REPLICA_ID).promoted, what="promotion")
    instance = rds_env.instance(REPLICA_ID)
    assert instance is not None and "ReadReplicaSourceDBInstanceIdentifier" not in instance
    with MySQLSession(platform.replica_handle(REPLICA_ID).endpoint) as s:
        assert s.dicts("SHOW SLAVE STATUS") == []
    platform.promote(REPLICA_ID)  # a resumed step 3: already promoted, no second call
    assert rds_env.calls["PromoteReadReplica"] == 1
    with pytest.raises(StepFailed, match="already promoted"):
        platform.stop_replication(REPLICA_ID)
    rds_env.settle()


def test_promote_refuses_when_replication_was_restarted(rds_env: RdsEmulation) -> None:
    platform = platform_for(rds_env)
    platform.create_replica(REPLICA_ID)
    wait_for(lambda: caught_up(platform), what="caught up")
    platform.stop_replication(REPLICA_ID)
    with MySQLSession(platform.replica_handle(REPLICA_ID).endpoint) as s:
        s.rows("CALL mysql.rds_start_replication")
    with pytest.raises(StepFailed, match="running again"):
        platform.promote(REPLICA_ID)
    assert rds_env.calls["PromoteReadReplica"] == 0
    rds_env.settle()


def test_read_only_through_the_source_parameter_group(rds_env: RdsEmulation) -> None:
    platform = platform_for(rds_env)

    def read_only() -> str:
        with MySQLSession(platform.config.source) as s:
            return str(s.variable("read_only"))

    platform.set_source_read_only(True)  # returns once the server reports it (applied 0.3 s later)
    assert read_only() == "ON"
    params = rds_env.aws.client("rds").describe_db_parameters(
        DBParameterGroupName=SOURCE_GROUP, Source="user"
    )
    assert {p["ParameterName"]: p["ParameterValue"] for p in params["Parameters"]} == {"read_only": "1"}
    with MySQLSession(platform.config.source) as s, pytest.raises(pymysql.err.OperationalError):
        s.execute("INSERT INTO shop.orders VALUES (9, 'refused')")
    platform.set_source_read_only(False)
    assert read_only() == "OFF"
    rds_env.settle()


def test_read_only_times_out_with_a_clear_error(rds_env: RdsEmulation) -> None:
    rds_env.transition_seconds = 5.0  # the parameter takes longer than the freeze timeout
    platform = RdsPlatform(rds_config(rds_env, cutover={"freeze_timeout_seconds": 1}))
    with pytest.raises(StepFailed, match="still has read_only=OFF 1 s after ModifyDBParameterGroup"):
        platform.set_source_read_only(True)


def test_check_storage_stops_at_the_configured_limits(rds_env: RdsEmulation) -> None:
    clock = [1000.0]
    config = rds_config(rds_env, rds={"max_binlog_disk_mb": 100, "min_free_storage_mb": 500})
    platform = RdsPlatform(config, monotonic=lambda: clock[0])
    assert platform.check_storage() == {"binlog_disk_bytes": None, "free_storage_bytes": None}
    rds_env.aws.put_metric(SOURCE_ID, "BinLogDiskUsage", 50 * 1024 * 1024, "Bytes")
    rds_env.aws.put_metric(SOURCE_ID, "FreeStorageSpace", 2000 * 1024 * 1024, "Bytes")
    assert platform.check_storage() == {}  # within the interval: no CloudWatch call
    clock[0] += 61
    assert platform.check_storage()["binlog_disk_bytes"] == 50 * 1024 * 1024
    rds_env.aws.put_metric(SOURCE_ID, "BinLogDiskUsage", 150 * 1024 * 1024, "Bytes")
    with pytest.raises(StepFailed, match=r"binlogs use 150 MiB .*above rds.max_binlog_disk_mb = 100"):
        platform.check_storage(force=True)
    # Free space alone (a one-minute Maximum keeps the 150 MiB binlog datapoint above).
    only_free = RdsPlatform(rds_config(rds_env, rds={"min_free_storage_mb": 500}), monotonic=lambda: clock[0])
    rds_env.aws.put_metric(SOURCE_ID, "FreeStorageSpace", 300 * 1024 * 1024, "Bytes")
    with pytest.raises(StepFailed, match=r"300 MiB free storage .*below rds.min_free_storage_mb = 500"):
        only_free.binlog_retention_hours()  # the steps' waits call this: the watch rides along


def test_cleanup_deletes_the_snapshot_instance_and_restores_retention(rds_env: RdsEmulation) -> None:
    config = rds_config(rds_env)
    platform = RdsPlatform(config)
    facts = {"replica_id": REPLICA_ID, "binlog_retention_previous": {"hours": None}}
    platform.set_binlog_retention_hours(24)
    platform.create_replica(REPLICA_ID)
    wait_for(lambda: caught_up(platform), what="caught up")
    platform.stop_replication(REPLICA_ID)
    platform.promote(REPLICA_ID)
    wait_for(lambda: platform.replica_state(REPLICA_ID).promoted, what="promotion")

    dry = cleanup(config, facts, confirm=False, platform=platform)
    assert dry == [
        f"would delete RDS instance {REPLICA_ID} (with a final snapshot)",
        "would restore binlog retention to NULL (not retained) (now 24 h)",
    ]
    assert rds_env.instance(REPLICA_ID) is not None and platform.binlog_retention_hours() == 24

    done = cleanup(config, facts, confirm=True, platform=platform)
    assert done[0] == f"delete RDS instance {REPLICA_ID} (with a final snapshot)"
    assert platform.binlog_retention_hours() is None
    assert rds_env.instance(REPLICA_ID) is None
    snapshots = rds_env.aws.client("rds").describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
    assert [s["DBSnapshotIdentifier"].startswith(f"{REPLICA_ID}-final-") for s in snapshots] == [True]
    assert cleanup(config, facts, confirm=True, platform=platform) == [
        f"RDS instance {REPLICA_ID}: already gone",
        "binlog retention: already NULL (not retained)",
    ]
    with pytest.raises(StepFailed, match="it is the migration's source"):
        platform.delete_replica(SOURCE_ID, final_snapshot=False)
    rds_env.settle()


def test_lost_create_response_is_not_repeated(rds_env: RdsEmulation, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first CreateDBInstanceReadReplica lands but its answer is a 500: the retry finds it and stops."""
    from moto.rds.models import RDSBackend

    patched = RDSBackend.create_db_instance_read_replica
    failed = []

    def create_then_fail(backend: RDSBackend, db_kwargs: dict[str, Any]) -> Any:
        replica = patched(backend, db_kwargs)
        if not failed:
            failed.append(True)
            raise RuntimeError("connection reset after commit")  # moto answers 500
        return replica

    monkeypatch.setattr(RDSBackend, "create_db_instance_read_replica", create_then_fail)
    sleeps: list[float] = []
    platform = RdsPlatform(rds_config(rds_env), caller=AwsCaller(sleep=sleeps.append))
    platform.create_replica(REPLICA_ID)
    assert rds_env.calls["CreateDBInstanceReadReplica"] == 1 and len(sleeps) == 1
    wait_for(lambda: caught_up(platform), what="caught up")
    rds_env.settle()


def _client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


def test_retry_policy_throttling_and_5xx_only() -> None:
    sleeps: list[float] = []
    caller = AwsCaller(sleep=sleeps.append, attempts=4)
    answers: list[Exception | str] = [
        _client_error("Throttling", 400),
        _client_error("InternalFailure", 500),
        "ok",
    ]

    def flaky() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert caller("rds:DescribeDBInstances", flaky) == "ok" and len(sleeps) == 2
    calls = []

    def invalid() -> str:
        calls.append(1)
        raise _client_error("InvalidParameterValue", 400)

    with pytest.raises(botocore.exceptions.ClientError):
        caller("rds:DescribeDBInstances", invalid)
    assert len(calls) == 1  # a client error is not retried
    with pytest.raises(PreflightFailed, match="AWS refused rds:PromoteReadReplica: AccessDenied"):
        caller(
            "rds:PromoteReadReplica",
            lambda: (_ for _ in ()).throw(_client_error("AccessDenied", 403)),
            idempotent=False,
            took_effect=lambda: None,
        )
    with pytest.raises(ValueError, match="took_effect"):
        caller("rds:PromoteReadReplica", lambda: "x", idempotent=False)
    with pytest.raises(StepFailed, match="kept failing rds:DescribeDBInstances after 4 attempts"):
        caller("rds:DescribeDBInstances", lambda: (_ for _ in ()).throw(_client_error("Throttling", 400)))


def test_plan_lists_the_aws_calls(rds_env: RdsEmulation) -> None:
    lines = describe_aws_calls(rds_config(rds_env, rds={"source_parameter_group": "default.mariadb10.11"}))
    text = "\n".join(lines)
    assert (
        "rds:CreateDBInstanceReadReplica shop-db-migrator from shop-db (class db.r6g.large, AZ us-east-1b"
        in text
    )
    assert "CALL mysql.rds_stop_replication on shop-db-migrator, then rds:PromoteReadReplica" in text
    assert "WILL FAIL PREFLIGHT: default parameter groups cannot be modified" in text


def test_master_user_cannot_stop_replication_directly(rds_env: RdsEmulation) -> None:
    conn = pymysql.connect(
        host="127.0.0.1", port=rds_env.replica.port, user=MASTER_USER, password=MASTER_PASSWORD
    )
    try:
        with conn.cursor() as cur, pytest.raises(pymysql.err.OperationalError) as denied:
            cur.execute("STOP SLAVE")
        assert "REPLICATION SLAVE ADMIN" in str(denied.value)
    finally:
        conn.close()


def test_stop_holding_a_prepared_xa_is_undone_with_rds_start_replication(rds_env: RdsEmulation) -> None:
    """Step 3's pieces on RDS: the master user (no SUPER) sees the prepared XA and restarts replication."""
    platform = platform_for(rds_env)
    platform.create_replica(REPLICA_ID)
    wait_for(lambda: caught_up(platform), what="caught up")
    app = rds_env.source.root()
    try:
        with app.cursor() as cur:
            for statement in ("XA START 'rds-xa'", "INSERT INTO shop.orders VALUES (5, 'xa')", "XA END 'rds-xa'",
                              "XA PREPARE 'rds-xa'"):
                cur.execute(statement)
        wait_for(lambda: caught_up(platform) and source_position(rds_env) == stopped_at(platform),
                 what="the XA PREPARE on the replica")

        platform.stop_replication(REPLICA_ID)
        endpoint = platform.replica_handle(REPLICA_ID).endpoint
        with MySQLSession(endpoint) as s:  # the master user
            held = prepared_xas(s, MARIADB_10_11)
        assert [xa.readable for xa in held] == [f"X'{b'rds-xa'.hex()}',X'',1 ('rds-xa')"]

        platform.start_replication(REPLICA_ID)  # CALL mysql.rds_start_replication
        with app.cursor() as cur:
            cur.execute("XA COMMIT 'rds-xa'")
    finally:
        app.close()

    def past_commit() -> bool:
        with MySQLSession(endpoint) as s:
            return not prepared_xas(s, MARIADB_10_11)

    wait_for(past_commit, what="the XA COMMIT applied on the replica")
    wait_for(lambda: stopped_at(platform) == source_position(rds_env), what="caught up")
    coords = platform.stop_replication(REPLICA_ID)
    assert (coords.file, coords.position) == source_position(rds_env)
    assert [r[0] for r in replica_rows(rds_env)] == [1, 2, 5]
    rds_env.settle()


def stopped_at(platform: RdsPlatform) -> tuple[str, int]:
    """Where the replica's SQL thread is (Relay_Master_Log_File, Exec_Master_Log_Pos)."""
    with MySQLSession(platform.replica_handle(REPLICA_ID).endpoint) as s:
        coords = MARIADB_10_11.replica_coordinates(s.dicts("SHOW SLAVE STATUS")[0])
    return coords.file, coords.position
