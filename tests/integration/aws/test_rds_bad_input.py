"""Bad input on the RDS side: each a PreflightFailed (exit 2) with a clear message, and nothing changed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto import settings as moto_settings

from migrator.errors import PreflightFailed
from migrator.platforms.rds import RdsPlatform, rds_preflight
from tests.integration.aws.conftest import (
    REPLICA_ID,
    SOURCE_ID,
    RdsEmulation,
    create_source_instance,
    rds_config,
)


def assert_nothing_changed(emulation: RdsEmulation) -> None:
    assert emulation.instance(REPLICA_ID) is None or emulation.calls["CreateDBInstanceReadReplica"] == 0
    assert sum(emulation.calls.values()) == 0
    conn = emulation.source.root()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT value FROM mysql.rds_configuration WHERE name = 'binlog retention hours'")
            assert cur.fetchone() == (None,)
            cur.execute("SELECT @@read_only")
            assert cur.fetchone() == (0,)
    finally:
        conn.close()


def preflight_error(emulation: RdsEmulation, **kwargs: Any) -> PreflightFailed:
    config = rds_config(emulation, **kwargs)
    with pytest.raises(PreflightFailed) as err:
        rds_preflight(config)
    assert err.value.exit_code == 2
    assert_nothing_changed(emulation)
    return err.value


def test_good_input_passes(rds_env: RdsEmulation) -> None:
    rds_preflight(rds_config(rds_env))
    assert_nothing_changed(rds_env)


def test_source_instance_not_found(rds_env: RdsEmulation) -> None:
    err = preflight_error(rds_env, rds={"source_instance": "no-such-db"})
    assert "RDS instance 'no-such-db' not found in us-east-1" in err.message


def test_engine_not_mysql_or_mariadb(rds_env: RdsEmulation) -> None:
    create_source_instance(rds_env.aws, identifier="pg-db", engine="postgres", parameter_group=None)
    err = preflight_error(rds_env, rds={"source_instance": "pg-db"})
    assert "runs engine 'postgres'; the migrator supports mysql and mariadb only" in err.message


def test_automated_backups_disabled(rds_env: RdsEmulation) -> None:
    create_source_instance(
        rds_env.aws, identifier="nobackup-db", backup_retention=0, parameter_group="nb-params"
    )
    err = preflight_error(rds_env, rds={"source_instance": "nobackup-db"})
    assert "automated backups are disabled on 'nobackup-db' (BackupRetentionPeriod 0)" in err.message
    assert "BackupRetentionPeriod >= 1" in err.hint


def test_default_parameter_group_with_read_only_freeze(rds_env: RdsEmulation) -> None:
    create_source_instance(rds_env.aws, identifier="plain-db", parameter_group=None)
    err = preflight_error(rds_env, rds={"source_instance": "plain-db"})
    assert "uses the default parameter group 'default.mariadb10.11'" in err.message
    assert "cutover.pause_hook" in err.hint
    # With a pause hook instead of read_only the same source is fine.
    rds_preflight(
        rds_config(
            rds_env, rds={"source_instance": "plain-db"}, cutover={"read_only": False, "pause_hook": ["true"]}
        )
    )


def test_replica_identifier_taken_by_an_unrelated_instance(rds_env: RdsEmulation) -> None:
    create_source_instance(rds_env.aws, identifier=REPLICA_ID, parameter_group=None)
    err = preflight_error(rds_env)
    assert (
        f"RDS instance {REPLICA_ID!r} already exists and is neither a read replica of {SOURCE_ID!r}"
        in err.message
    )
    assert rds_env.instance(REPLICA_ID) is not None  # left alone


def test_retention_beyond_the_rds_maximum(rds_env: RdsEmulation) -> None:
    # 169-2160 h (Aurora's bound) used to pass here and fail in step 2 with a raw procedure error (review B12).
    err = preflight_error(rds_env, extra={"binlog": {"retention_hours": 200}})
    assert "binlog.retention_hours = 200 exceeds RDS's maximum of 168 h" in err.message


def test_source_without_rds_procedures(rds_env: RdsEmulation) -> None:
    rds_env.source.execute("DROP PROCEDURE mysql.rds_show_configuration")
    err = preflight_error(rds_env)
    assert "has no mysql.rds_show_configuration: is it an RDS instance?" in err.message


def test_storage_already_past_the_limit(rds_env: RdsEmulation) -> None:
    rds_env.aws.put_metric(SOURCE_ID, "FreeStorageSpace", 100 * 1024 * 1024, "Bytes")
    err = preflight_error(rds_env, rds={"min_free_storage_mb": 1024})
    assert "100 MiB free storage" in err.message


def test_missing_iam_permission_names_the_action(
    rds_env: RdsEmulation, monkeypatch: pytest.MonkeyPatch
) -> None:
    iam = rds_env.aws.client("iam")
    iam.create_user(UserName="migrator")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "rds:DescribeDBInstances",
                    "rds:DescribeDBParameterGroups",
                    "cloudwatch:GetMetricData",
                ],
                "Resource": "*",
            },
        ],
    }
    iam.put_user_policy(UserName="migrator", PolicyName="narrow", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="migrator")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto now enforces IAM

    config = rds_config(rds_env)
    rds_preflight(config)  # everything preflight reads is allowed
    with pytest.raises(
        PreflightFailed, match="AWS refused rds:CreateDBInstanceReadReplica: AccessDenied"
    ) as err:
        RdsPlatform(config).create_replica(REPLICA_ID)
    assert "grant rds:CreateDBInstanceReadReplica" in err.value.hint
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    assert_nothing_changed(rds_env)

    policy["Statement"][0]["Action"] = ["rds:DescribeDBParameterGroups"]
    iam.put_user_policy(UserName="migrator", PolicyName="narrow", PolicyDocument=json.dumps(policy))
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    with pytest.raises(PreflightFailed, match="AWS refused rds:DescribeDBInstances"):
        rds_preflight(config)
