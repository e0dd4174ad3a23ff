"""Route53 as the DnsProvider: read one A/AAAA/CNAME record, UPSERT it, poll GetChange until INSYNC.

Only simple records are handled: an alias record, a routing policy (SetIdentifier) or several
values cannot be switched by rewriting one value, so they are refused with a clear error before
anything changes. UPSERT is idempotent (the same record twice is one state), so it is retried
like a read; the change id it returns is what the steps journal and poll.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import botocore.exceptions
import structlog

from migrator.aws import AwsCaller, error_code, make_client
from migrator.config import Config
from migrator.errors import PreflightFailed, StepFailed
from migrator.ports import DnsRecord

log = structlog.get_logger()

SWITCHABLE_TYPES = ("A", "AAAA", "CNAME")


def _fqdn(name: str) -> str:
    return name.rstrip(".").lower() + "."


def _decode(name: str) -> str:
    r"""Route53 returns some characters octal-escaped (``\052`` for ``*``)."""
    out, i = [], 0
    while i < len(name):
        if name[i] == "\\" and name[i + 1 : i + 4].isdigit():
            out.append(chr(int(name[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(name[i])
            i += 1
    return "".join(out)


class Route53Dns:
    name = "route53"

    def __init__(
        self, config: Config, *, client: Any = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = config.dns
        if not self.settings.hosted_zone_id:
            raise PreflightFailed("dns.hosted_zone_id is required with provider = 'route53'")
        self.zone_id = self.settings.hosted_zone_id.removeprefix("/hostedzone/")
        region = config.rds.region if config.rds else "us-east-1"
        self.client = client or make_client("route53", region=region, endpoint_url=self.settings.endpoint_url)
        self.call = AwsCaller(sleep=sleep)
        self._zone_name: str | None = None

    def _zone(self) -> str:
        if self._zone_name is None:
            try:
                zone = self.call(
                    "route53:GetHostedZone", lambda: self.client.get_hosted_zone(Id=self.zone_id)
                )
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) in ("NoSuchHostedZone", "InvalidInput"):
                    raise PreflightFailed(
                        f"Route53 hosted zone {self.zone_id!r} not found",
                        hint="check dns.hosted_zone_id (the zone's Id, e.g. Z0123456789ABC)",
                    ) from exc
                raise
            self._zone_name = _fqdn(str(zone["HostedZone"]["Name"]))
        return self._zone_name

    def _record_sets(self, name: str) -> list[dict[str, Any]]:
        zone = self._zone()
        fqdn = _fqdn(name)
        if fqdn != zone and not fqdn.endswith("." + zone):
            raise PreflightFailed(
                f"DNS record {name!r} is not inside hosted zone {self.zone_id} ({zone})",
                hint="check dns.record and dns.hosted_zone_id",
            )
        try:
            response = self.call(
                "route53:ListResourceRecordSets",
                lambda: self.client.list_resource_record_sets(
                    HostedZoneId=self.zone_id, StartRecordName=fqdn, MaxItems="20"
                ),
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "NoSuchHostedZone":
                raise PreflightFailed(
                    f"Route53 hosted zone {self.zone_id!r} not found", hint="check dns.hosted_zone_id"
                ) from exc
            raise
        return [r for r in response.get("ResourceRecordSets", []) if _fqdn(_decode(str(r["Name"]))) == fqdn]

    def read(self, name: str) -> DnsRecord:
        sets = [r for r in self._record_sets(name) if r["Type"] in SWITCHABLE_TYPES]
        if not sets:
            raise PreflightFailed(
                f"DNS record {name!r} (A, AAAA or CNAME) not found in Route53 hosted zone {self.zone_id}",
                hint="create the record the application connects through, or fix dns.record",
            )
        if any("AliasTarget" in r for r in sets):
            raise PreflightFailed(
                f"DNS record {name!r} is a Route53 alias record; the migrator switches plain A/CNAME "
                f"records only",
                hint="replace the alias by a CNAME to the RDS endpoint (with a low TTL) before migrating",
            )
        if len(sets) > 1 or any("SetIdentifier" in r for r in sets):
            raise PreflightFailed(
                f"DNS record {name!r} has a routing policy or several record sets; one simple record is "
                f"required",
                hint="use one simple A or CNAME record for the application's database name",
            )
        record = sets[0]
        values = [str(v["Value"]) for v in record.get("ResourceRecords", [])]
        if len(values) != 1:
            raise PreflightFailed(f"DNS record {name!r} holds {len(values)} values; exactly one is required")
        value = values[0]
        # Route53 may add or drop a trailing dot: compare as names, report as configured.
        if _fqdn(value) == _fqdn(self.settings.target_value):
            value = self.settings.target_value
        return DnsRecord(
            name=name, value=value, ttl=int(record.get("TTL", 0)), record_type=str(record["Type"])
        )

    def upsert(self, record: DnsRecord) -> str:
        if record.record_type not in SWITCHABLE_TYPES:
            raise PreflightFailed(
                f"record type {record.record_type!r} cannot be switched (A, AAAA, CNAME only)"
            )
        self._zone()
        batch = {
            "Comment": "migrator",
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": _fqdn(record.name),
                        "Type": record.record_type,
                        "TTL": record.ttl,
                        "ResourceRecords": [{"Value": record.value}],
                    },
                }
            ],
        }
        response = self.call(
            "route53:ChangeResourceRecordSets",
            lambda: self.client.change_resource_record_sets(HostedZoneId=self.zone_id, ChangeBatch=batch),
        )
        change_id = str(response["ChangeInfo"]["Id"]).removeprefix("/change/")
        log.info(
            "dns.route53.upserted",
            name=record.name,
            value=record.value,
            ttl=record.ttl,
            type=record.record_type,
            change_id=change_id,
        )
        return change_id

    def in_sync(self, change_id: str) -> bool:
        try:
            response = self.call("route53:GetChange", lambda: self.client.get_change(Id=change_id))
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "NoSuchChange":
                raise StepFailed(
                    f"Route53 knows no change {change_id!r}",
                    hint="Route53 forgets changes after a while; check the record by hand, then skip-step",
                ) from exc
            raise
        return str(response["ChangeInfo"]["Status"]) == "INSYNC"
