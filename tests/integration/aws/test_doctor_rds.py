"""`migrator doctor` for an RDS source against moto: the retention bound and the source's free storage."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from migrator.cli import main
from migrator.errors import EXIT_BAD_INPUT, EXIT_OK
from tests.conftest import ADMIN_PASSWORD, ADMIN_USER, MakeServer
from tests.integration.aws.conftest import (
    MASTER_PASSWORD,
    MASTER_USER,
    REGION,
    REPLICA_ID,
    SOURCE_ID,
    RdsEmulation,
)


def rds_toml(emulation: RdsEmulation, target_port: int, path: Path, retention: int) -> Path:
    """The RDS example's shape (configs/rds-to-ec2.example.toml), pointed at moto and the local servers."""
    endpoint_map = ", ".join(f'"{k}" = "{v}"' for k, v in emulation.endpoint_map.items())
    path.write_text(f"""
[migration]
name = "shop-move"
workdir = "{emulation.tmp / 'work'}"
platform = "rds"
schemas = ["shop"]

[source]
host = "127.0.0.1"
port = {emulation.source.port}
user = "{MASTER_USER}"
password = "{MASTER_PASSWORD}"

[target]
host = "127.0.0.1"
port = {target_port}
user = "{ADMIN_USER}"
password = "{ADMIN_PASSWORD}"

[rds]
region = "{REGION}"
source_instance = "{SOURCE_ID}"
replica_instance = "{REPLICA_ID}"
endpoint_url = "{emulation.aws.url}"
endpoint_map = {{ {endpoint_map} }}
min_free_storage_mb = 5000

[binlog]
retention_hours = {retention}

[dns]
provider = "local"
record = "db.example.com"
target_value = "127.0.0.1:1"
file = "dns.json"
""")
    return path


def test_doctor_on_rds_prints_retention_and_storage(rds_env: RdsEmulation, make_server: MakeServer) -> None:
    target = make_server("rds-target", 7)
    rds_env.aws.put_metric(SOURCE_ID, "FreeStorageSpace", 50 * 1024**3, "Bytes")
    config = rds_toml(rds_env, target.port, rds_env.tmp / "rds.toml", retention=72)
    runner = CliRunner()
    text = runner.invoke(main, ["doctor", "-c", str(config)])
    assert text.exit_code == EXIT_OK, text.output
    assert "RDS binlog retention limit" in text.output and "RDS maximum 168 h" in text.output
    assert "source free storage" in text.output and "51200 MB" in text.output
    rows = {r["check"]: r for r in json.loads(runner.invoke(main, ["doctor", "-c", str(config), "--json"]).output)["rows"]}
    assert rows["RDS binlog retention limit"]["status"] == "OK"
    assert rows["source free storage"]["status"] == "OK"

    # 169-2160 h passed preflight before (Aurora's bound) and failed in step 2 with a raw procedure error.
    config = rds_toml(rds_env, target.port, rds_env.tmp / "rds-long.toml", retention=336)
    result = runner.invoke(main, ["doctor", "-c", str(config), "--json"])
    assert result.exit_code == EXIT_BAD_INPUT
    rows = {r["check"]: r for r in json.loads(result.output)["rows"]}
    assert rows["RDS binlog retention limit"]["status"] == "blocking"
    assert "use at most 168" in rows["RDS binlog retention limit"]["remedy"]
    assert sum(rds_env.calls.values()) == 0  # read-only: no RDS call that changes anything
