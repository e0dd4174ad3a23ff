"""Contract tests of Route53Dns against moto in server mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from migrator.config import Config, parse
from migrator.dns.route53 import Route53Dns
from migrator.errors import PreflightFailed
from migrator.ports import DnsRecord
from tests.integration.aws.conftest import RECORD, Aws, create_zone, put_record

TARGET = "ec2-db.internal.example.com"


def dns_config(aws: Aws, tmp_path: Path, zone_id: str, **dns: Any) -> Config:
    data = {
        "migration": {"name": "m", "workdir": str(tmp_path / "work"), "schemas": ["shop"]},
        "source": {"host": "127.0.0.1", "user": "u"},
        "target": {"host": "127.0.0.1", "user": "u"},
        "dns": {
            "provider": "route53",
            "record": RECORD,
            "target_value": TARGET,
            "hosted_zone_id": zone_id,
            "endpoint_url": aws.url,
            **dns,
        },
    }
    return parse(data, tmp_path / "m.toml")


def cname(value: str, ttl: int = 300, name: str = RECORD) -> dict[str, Any]:
    return {"Name": name, "Type": "CNAME", "TTL": ttl, "ResourceRecords": [{"Value": value}]}


def test_read_upsert_and_poll_until_insync(aws: Aws, tmp_path: Path, route53_pending: dict[str, int]) -> None:
    zone = create_zone(aws)
    put_record(aws, zone, cname("shop-db.abc.us-east-1.rds.amazonaws.com"))
    dns = Route53Dns(dns_config(aws, tmp_path, zone))
    assert dns.read(RECORD) == DnsRecord(RECORD, "shop-db.abc.us-east-1.rds.amazonaws.com", 300, "CNAME")

    change = dns.upsert(DnsRecord(RECORD, TARGET, 30, "CNAME"))
    assert not change.startswith("/change/")
    assert [dns.in_sync(change) for _ in range(3)] == [False, False, True]  # PENDING twice, then INSYNC
    assert dns.read(RECORD) == DnsRecord(RECORD, TARGET, 30, "CNAME")
    sets = aws.client("route53").list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    assert [s["ResourceRecords"] for s in sets if s["Type"] == "CNAME"] == [[{"Value": TARGET}]]


def test_a_record_and_trailing_dots(aws: Aws, tmp_path: Path) -> None:
    zone = create_zone(aws)
    put_record(
        aws,
        zone,
        {"Name": "db.example.com.", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "10.0.0.5"}]},
    )
    dns = Route53Dns(
        dns_config(aws, tmp_path, f"/hostedzone/{zone}", target_value="10.0.9.9", record_type="A")
    )
    assert dns.read("db.example.com") == DnsRecord("db.example.com", "10.0.0.5", 60, "A")
    dns.upsert(DnsRecord("db.example.com", "10.0.9.9", 60, "A"))
    assert dns.read("DB.example.com.").value == "10.0.9.9"


def test_value_differing_only_by_a_trailing_dot_counts_as_switched(aws: Aws, tmp_path: Path) -> None:
    zone = create_zone(aws)
    put_record(aws, zone, cname(TARGET + "."))
    assert Route53Dns(dns_config(aws, tmp_path, zone)).read(RECORD).value == TARGET


@pytest.mark.parametrize(
    ("record_set", "message"),
    [
        (
            {
                "Name": RECORD,
                "Type": "A",
                "AliasTarget": {
                    "HostedZoneId": "Z2",
                    "DNSName": "lb.example.com",
                    "EvaluateTargetHealth": False,
                },
            },
            "is a Route53 alias record",
        ),
        ({**cname("a.example.net"), "SetIdentifier": "blue", "Weight": 10}, "routing policy"),
        (
            {
                "Name": RECORD,
                "Type": "A",
                "TTL": 60,
                "ResourceRecords": [{"Value": "10.0.0.1"}, {"Value": "10.0.0.2"}],
            },
            "holds 2 values",
        ),
        (cname("x.example.net", name="other.example.com"), "not found in Route53 hosted zone"),
    ],
)
def test_unswitchable_or_missing_records_are_bad_input(
    aws: Aws, tmp_path: Path, record_set: dict[str, Any], message: str
) -> None:
    zone = create_zone(aws)
    put_record(aws, zone, record_set)
    with pytest.raises(PreflightFailed, match=message) as err:
        Route53Dns(dns_config(aws, tmp_path, zone)).read(RECORD)
    assert err.value.exit_code == 2


def test_unknown_zone_and_record_outside_the_zone(aws: Aws, tmp_path: Path) -> None:
    with pytest.raises(PreflightFailed, match="hosted zone 'ZNOSUCHZONE' not found"):
        Route53Dns(dns_config(aws, tmp_path, "ZNOSUCHZONE")).read(RECORD)
    zone = create_zone(aws, name="other.org")
    with pytest.raises(PreflightFailed, match=r"is not inside hosted zone .* \(other.org.\)"):
        Route53Dns(dns_config(aws, tmp_path, zone)).read(RECORD)
