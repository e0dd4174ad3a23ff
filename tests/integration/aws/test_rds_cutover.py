"""The freeze on RDS has effects outside the migration (review B6): a shared parameter group, the group's own
read_only value. moto answers the API; the emulation applies read_only to the local source standing in for it."""

from __future__ import annotations

from typing import Any

import pytest

from migrator.errors import PreflightFailed
from migrator.mysql.session import MySQLSession
from migrator.platforms.rds import RdsPlatform, require_dedicated_parameter_group
from tests.integration.aws.conftest import (
    MASTER_PASSWORD,
    MASTER_USER,
    SOURCE_GROUP,
    RdsEmulation,
    emulate_reset_parameter_group,
    rds_config,
)


def group_values(emulation: RdsEmulation) -> dict[str, Any]:
    params = emulation.aws.client("rds").describe_db_parameters(DBParameterGroupName=SOURCE_GROUP)
    return {p["ParameterName"]: p.get("ParameterValue") for p in params["Parameters"]}


def source_read_only(platform: RdsPlatform) -> str:
    with MySQLSession(platform.config.source) as s:
        return str(s.variable("read_only"))


def test_a_parameter_group_shared_with_another_instance_is_refused(rds_env: RdsEmulation) -> None:
    rds = rds_env.aws.client("rds")
    platform = RdsPlatform(rds_config(rds_env))
    require_dedicated_parameter_group(platform.config, platform=platform)  # the source alone: fine
    rds.create_db_instance(
        DBInstanceIdentifier="billing-db", Engine="mariadb", EngineVersion="10.11.8", DBInstanceClass="db.t3.micro",
        MasterUsername=MASTER_USER, MasterUserPassword=MASTER_PASSWORD, AllocatedStorage=20,
        DBParameterGroupName=SOURCE_GROUP,
    )
    with pytest.raises(PreflightFailed, match=r"shared with billing-db: setting read_only=1 in it"):
        require_dedicated_parameter_group(platform.config, platform=platform)
    # The freeze itself refuses too, before changing the group.
    with pytest.raises(PreflightFailed, match="billing-db"):
        platform.set_source_read_only(True)
    assert "read_only" not in group_values(rds_env)
    assert source_read_only(platform) == "OFF"
    # Without read_only (a pause hook pauses the writes) the group is never touched: no refusal.
    hooked = rds_config(rds_env, cutover={"read_only": False, "pause_hook": ["true"]})
    require_dedicated_parameter_group(hooked, platform=RdsPlatform(hooked))


def test_the_groups_own_read_only_value_is_restored_exactly(rds_env: RdsEmulation) -> None:
    rds_env.aws.client("rds").modify_db_parameter_group(
        DBParameterGroupName=SOURCE_GROUP,
        Parameters=[{"ParameterName": "read_only", "ParameterValue": "{TrueIfReplica}", "ApplyMethod": "immediate"}],
    )
    rds_env.settle()
    platform = RdsPlatform(rds_config(rds_env))
    before = platform.source_read_only_setting()
    assert before == {
        "platform": "rds", "parameter_group": SOURCE_GROUP, "value": "{TrueIfReplica}", "source": "user",
        "effective": False,
    }
    platform.set_source_read_only(True)
    assert group_values(rds_env)["read_only"] == "1" and source_read_only(platform) == "ON"
    platform.restore_source_read_only(before)
    assert group_values(rds_env)["read_only"] == "{TrueIfReplica}"  # not "0"
    assert source_read_only(platform) == "OFF"
    rds_env.settle()


def test_an_engine_default_read_only_is_reset_not_overwritten(
    rds_env: RdsEmulation, monkeypatch: pytest.MonkeyPatch
) -> None:
    resets = emulate_reset_parameter_group(monkeypatch, rds_env)
    platform = RdsPlatform(rds_config(rds_env))
    before = platform.source_read_only_setting()
    assert before["value"] is None and before["source"] == "engine-default"
    platform.set_source_read_only(True)
    platform.restore_source_read_only(before)
    assert resets == [["read_only"]]
    assert "read_only" not in group_values(rds_env)
    assert source_read_only(platform) == "OFF"
    rds_env.settle()
