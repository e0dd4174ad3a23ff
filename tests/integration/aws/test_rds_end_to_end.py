"""All 14 steps through the CLI with platform `rds` and DNS `route53` (moto) over a local MariaDB data plane."""

from __future__ import annotations

import signal
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from moto.route53.models import Route53Backend

from migrator.errors import EXIT_OK
from tests.conftest import MakeServer
from tests.harness import Sandbox, make_sandbox, write_config
from tests.integration.aws.conftest import (
    MASTER_PASSWORD,
    MASTER_USER,
    RECORD,
    REGION,
    REPLICA_ID,
    SOURCE_ID,
    Aws,
    RdsEmulation,
    create_source_instance,
    create_zone,
    prepare_rds_server,
    put_record,
)
from tests.integration.test_end_to_end import steps_status, table_checksums

TARGET_NAME = "target.internal.example.com"


def rds_sandbox(
    aws: Aws, make_server: MakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Sandbox, RdsEmulation, Counter[str]]:
    box = make_sandbox(make_server, tmp_path)
    prepare_rds_server(box.source)
    replica = make_server("rds-replica", 5, log_bin=False)
    prepare_rds_server(replica)
    create_source_instance(aws)
    emulation = RdsEmulation(aws=aws, source=box.source, replica=replica, tmp=tmp_path)
    emulation.patch(monkeypatch)
    zone = create_zone(aws)
    put_record(
        aws,
        zone,
        {
            "Name": RECORD,
            "Type": "CNAME",
            "TTL": 0,
            "ResourceRecords": [{"Value": f"{SOURCE_ID}.abc.{REGION}.rds.amazonaws.com"}],
        },
    )
    dns_changes: Counter[str] = Counter()
    original = Route53Backend.change_resource_record_sets

    def counted(backend: Route53Backend, *args: Any, **kwargs: Any) -> Any:
        dns_changes["ChangeResourceRecordSets"] += 1
        return original(backend, *args, **kwargs)

    monkeypatch.setattr(Route53Backend, "change_resource_record_sets", counted)
    sections = tomllib.loads(box.config_path.read_text())
    sections["migration"]["platform"] = "rds"
    sections["source"].update(user=MASTER_USER, password=MASTER_PASSWORD)
    sections.pop("replica", None)
    sections["rds"] = {
        "source_instance": SOURCE_ID,
        "replica_instance": REPLICA_ID,
        "region": REGION,
        "endpoint_url": aws.url,
        "endpoint_map": emulation.endpoint_map,
    }
    sections["dns"] = {
        "provider": "route53",
        "record": RECORD,
        "target_value": TARGET_NAME,
        "ttl": 0,
        "hosted_zone_id": zone,
        "endpoint_url": aws.url,
    }
    write_config(box.config_path, _flatten_tables(sections))
    return box, emulation, dns_changes


def _flatten_tables(sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """write_config writes flat tables: inline the endpoint_map as a TOML inline table via a dotted key."""
    out: dict[str, dict[str, Any]] = {}
    for name, values in sections.items():
        flat: dict[str, Any] = {}
        for key, value in values.items():
            if isinstance(value, dict):
                for sub, subvalue in value.items():
                    flat[f'{key}."{sub}"'] = subvalue
            else:
                flat[key] = value
        out[name] = flat
    return out


def assert_migrated(box: Sandbox, aws: Aws) -> None:
    tables = list(box.dataset.tables)
    assert table_checksums(box.source, tables) == table_checksums(box.target, tables)
    assert set(steps_status(box.workdir / "journal.sqlite").values()) == {"done"}
    sets = aws.client("route53").list_resource_record_sets(HostedZoneId=box.config().dns.hosted_zone_id)
    cnames = [s for s in sets["ResourceRecordSets"] if s["Type"] == "CNAME"]
    assert [c["ResourceRecords"][0]["Value"] for c in cnames] == [TARGET_NAME]


def test_rds_migration_resumes_after_kills_without_a_second_replica_or_dns_change(
    aws: Aws, make_server: MakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box, emulation, dns_changes = rds_sandbox(aws, make_server, tmp_path, monkeypatch)
    before = dns_changes["ChangeResourceRecordSets"]
    for point in ("step.2.before_complete", "step.3.before_complete", "step.13.before_complete"):
        crashed = box.cli("run", env={"MIGRATOR_CRASH_AT": point})
        assert crashed.returncode == -signal.SIGKILL, (point, crashed.stderr[-3000:])
    result = box.cli("run")
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    assert_migrated(box, aws)
    assert emulation.calls["CreateDBInstanceReadReplica"] == 1
    assert emulation.calls["PromoteReadReplica"] == 1
    assert dns_changes["ChangeResourceRecordSets"] - before == 1
    emulation.settle()
