"""RDS and Route53 without an AWS account: moto in server mode plus local servers standing in for instances.

moto answers the API calls but does nothing behind them (no status transitions, no replication,
every Route53 change INSYNC at once). ``RdsEmulation`` patches moto's backend in-process to add
what RDS does behind the calls we make, on the local servers the endpoint map points at:
- CreateDBInstanceReadReplica: status `creating`; a thread copies the source into the local replica
  (mariadb-dump --master-data), starts real replication, then flips the status to `available`.
- PromoteReadReplica: status `modifying`; RESET SLAVE ALL on the local replica; then `available`
  with no ReadReplicaSourceDBInstanceIdentifier (moto keeps it; RDS clears it).
- ModifyDBParameterGroup read_only on the source's group: SET GLOBAL read_only on the local source,
  a little later (RDS applies dynamic parameters within seconds, not at once).
CloudWatch metrics (ReplicaLag, BinLogDiskUsage, FreeStorageSpace) are published by the tests.
"""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.core.responses import ActionResult
from moto.rds.exceptions import DBInstanceAlreadyExists, RDSClientError
from moto.rds.models import RDSBackend
from moto.rds.responses import RDSResponse
from moto.route53.responses import Route53 as Route53Response
from moto.server import ThreadedMotoServer

from migrator.config import Config, parse
from migrator.platforms import rds_shim
from migrator.platforms.local_server import LocalServer, find_binary
from tests.conftest import ADMIN_PASSWORD, ADMIN_USER, MakeServer

REGION = "us-east-1"
SOURCE_ID = "shop-db"
REPLICA_ID = "shop-db-migrator"
SOURCE_GROUP = "shop-params"
MASTER_USER = "master"
MASTER_PASSWORD = "master-Secret#1"
REPL_USER = "rdsrepladmin"
REPL_PASSWORD = "repl-Secret#1"
ZONE_NAME = "example.com"
RECORD = "db.example.com"
SYSTEM = {"mysql", "information_schema", "performance_schema", "sys"}


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class Aws:
    url: str
    env: dict[str, str]

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )

    def put_metric(
        self, instance: str, name: str, value: float, unit: str = "None", *, minutes_ago: float = 0.0
    ) -> None:
        """RDS publishes one datapoint a minute; ``minutes_ago`` places one in an earlier period."""
        self.client("cloudwatch").put_metric_data(
            Namespace="AWS/RDS",
            MetricData=[
                {
                    "MetricName": name,
                    "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": instance}],
                    "Value": value,
                    "Unit": unit,
                    "Timestamp": datetime.now(UTC) - timedelta(minutes=minutes_ago),
                }
            ],
        )


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Aws:
    """A clean moto (state reset) and fake credentials in the environment (the standard chain)."""
    req = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")  # noqa: S310 - http to loopback moto
    urllib.request.urlopen(req, timeout=10).close()  # noqa: S310 - http to the loopback moto server
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    return Aws(moto_url, env)


def root_dump_argv(server: LocalServer, schemas: list[str]) -> list[str]:
    return [
        find_binary("mariadb-dump", "mysqldump"),
        "--no-defaults",
        f"--socket={server.socket_path}",
        "--user=root",
        "--single-transaction",
        "--master-data=1",
        "--routines",
        "--triggers",
        "--events",
        "--hex-blob",
        "--databases",
        *schemas,
    ]


def make_real_replica(source: LocalServer, replica: LocalServer) -> None:
    """What RDS does behind CreateDBInstanceReadReplica: a consistent copy, then replication from it."""
    conn = source.root()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES")
            schemas = sorted(str(r[0]) for r in cur.fetchall() if str(r[0]) not in SYSTEM)
    finally:
        conn.close()
    replica.execute(
        "STOP SLAVE",
        f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={source.port}, "
        f"MASTER_USER='{REPL_USER}', MASTER_PASSWORD='{REPL_PASSWORD}', MASTER_USE_GTID=no",
    )
    if schemas:
        dump = subprocess.run(root_dump_argv(source, schemas), capture_output=True, check=True)
        subprocess.run(
            [
                find_binary("mariadb", "mysql"),
                "--no-defaults",
                f"--socket={replica.socket_path}",
                "--user=root",
            ],
            input=dump.stdout,
            capture_output=True,
            check=True,
        )
    else:
        conn = source.root()
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW MASTER STATUS")
                row = cur.fetchone()
        finally:
            conn.close()
        assert row is not None
        replica.execute(f"CHANGE MASTER TO MASTER_LOG_FILE='{row[0]}', MASTER_LOG_POS={row[1]}")
    replica.execute("START SLAVE")


@dataclass
class RdsEmulation:
    """Local servers behind moto's instances, and the effects RDS has that moto does not."""

    aws: Aws
    source: LocalServer
    replica: LocalServer
    tmp: Path
    transition_seconds: float = 0.3
    calls: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def endpoint_map(self) -> dict[str, str]:
        return {SOURCE_ID: f"127.0.0.1:{self.source.port}", REPLICA_ID: f"127.0.0.1:{self.replica.port}"}

    def later(self, fn: Callable[[], None]) -> None:
        def run() -> None:
            time.sleep(self.transition_seconds)
            try:
                fn()
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def settle(self) -> None:
        for thread in self.threads:
            thread.join(timeout=60)
        assert not self.errors, self.errors

    # --- moto patches ----------------------------------------------------------------------------
    def patch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        emulation = self
        original_create = RDSBackend.create_db_instance_read_replica
        original_promote = RDSBackend.promote_read_replica
        original_modify_group = RDSBackend.modify_db_parameter_group

        def create(backend: RDSBackend, db_kwargs: dict[str, Any]) -> Any:
            emulation.calls["CreateDBInstanceReadReplica"] += 1
            identifier = db_kwargs["db_instance_identifier"]
            if identifier in backend.databases:  # moto would silently replace it; RDS refuses
                raise DBInstanceAlreadyExists()
            replica = original_create(backend, db_kwargs)
            replica.status = "creating"
            replica.tags = list(db_kwargs.get("tags") or [])

            def finish() -> None:
                make_real_replica(emulation.source, emulation.replica)
                replica.status = "available"

            emulation.later(finish)
            return replica

        def promote(backend: RDSBackend, db_kwargs: dict[str, Any]) -> Any:
            emulation.calls["PromoteReadReplica"] += 1
            database = backend.databases[db_kwargs["db_instance_identifier"]]
            if not database.is_replica:
                raise RDSClientError("InvalidDBInstanceState", "Instance is not a read replica.")
            primary = backend.find_db_from_id(database.source_db_instance_identifier)
            database = original_promote(backend, db_kwargs)
            database.status = "modifying"

            def finish() -> None:
                emulation.replica.execute("STOP SLAVE", "RESET SLAVE ALL")
                primary.remove_replica(database)
                database.source_db_instance_identifier = None
                database.status = "available"

            emulation.later(finish)
            return database

        def modify_group(backend: RDSBackend, name: str, parameters: Any) -> Any:
            emulation.calls["ModifyDBParameterGroup"] += 1
            group = original_modify_group(backend, name, parameters)
            source = backend.databases.get(SOURCE_ID)
            if source is not None and source.db_parameter_group_name == name:
                for p in parameters:
                    if p["ParameterName"] == "read_only":
                        value = "ON" if p["ParameterValue"] == "1" else "OFF"
                        emulation.later(
                            lambda v=value: emulation.source.execute(f"SET GLOBAL read_only = {v}")
                        )
            return group

        monkeypatch.setattr(RDSBackend, "create_db_instance_read_replica", create)
        monkeypatch.setattr(RDSBackend, "promote_read_replica", promote)
        monkeypatch.setattr(RDSBackend, "modify_db_parameter_group", modify_group)

    def instance(self, identifier: str) -> dict[str, Any] | None:
        rds = self.aws.client("rds")
        found = [
            i for i in rds.describe_db_instances()["DBInstances"] if i["DBInstanceIdentifier"] == identifier
        ]
        return found[0] if found else None


def prepare_rds_server(server: LocalServer) -> None:
    conn = server.root()
    try:
        rds_shim.install(conn)
        rds_shim.create_master_user(conn, MASTER_USER, MASTER_PASSWORD)
        rds_shim.run_as_root(
            conn,
            [
                "CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s",
                "GRANT REPLICATION SLAVE ON *.* TO %s@'%%'",
            ],
            [(REPL_USER, REPL_PASSWORD), (REPL_USER,)],
        )
    finally:
        conn.close()


def create_source_instance(
    aws: Aws,
    *,
    identifier: str = SOURCE_ID,
    engine: str = "mariadb",
    backup_retention: int = 1,
    parameter_group: str | None = SOURCE_GROUP,
) -> None:
    rds = aws.client("rds")
    if parameter_group:
        rds.create_db_parameter_group(
            DBParameterGroupName=parameter_group, DBParameterGroupFamily="mariadb10.11", Description="source"
        )
    kwargs: dict[str, Any] = {}
    if parameter_group:
        kwargs["DBParameterGroupName"] = parameter_group
    rds.create_db_instance(
        DBInstanceIdentifier=identifier,
        Engine=engine,
        EngineVersion="10.11.8" if engine == "mariadb" else "16.3",
        DBInstanceClass="db.t3.micro",
        MasterUsername=MASTER_USER,
        MasterUserPassword=MASTER_PASSWORD,
        AllocatedStorage=20,
        BackupRetentionPeriod=backup_retention,
        **kwargs,
    )


@pytest.fixture
def rds_env(
    aws: Aws, make_server: MakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RdsEmulation]:
    """Source (with schema `shop`) and replica servers prepared like RDS instances, moto's source instance."""
    source = make_server("rds-source", 1)
    replica = make_server("rds-replica", 2, log_bin=False)
    for server in (source, replica):
        prepare_rds_server(server)
    source.execute(
        "CREATE DATABASE shop",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(40)) ENGINE=InnoDB",
        "INSERT INTO shop.orders VALUES (1, 'first'), (2, 'second')",
    )
    create_source_instance(aws)
    emulation = RdsEmulation(aws=aws, source=source, replica=replica, tmp=tmp_path)
    emulation.patch(monkeypatch)
    yield emulation
    for thread in emulation.threads:
        thread.join(timeout=30)


def rds_config(
    emulation: RdsEmulation,
    *,
    target: LocalServer | None = None,
    dns: dict[str, Any] | None = None,
    rds: dict[str, Any] | None = None,
    cutover: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Config:
    """A Config for platform = 'rds' against the emulation (TOML-shaped dict through the real parser)."""
    workdir = emulation.tmp / "work"
    data: dict[str, Any] = {
        "migration": {"name": "shop-move", "workdir": str(workdir), "platform": "rds", "schemas": ["shop"]},
        "source": {
            "host": "127.0.0.1",
            "port": emulation.source.port,
            "user": MASTER_USER,
            "password": MASTER_PASSWORD,
        },
        "target": {
            "host": "127.0.0.1",
            "port": target.port if target else 1,
            "user": ADMIN_USER,
            "password": ADMIN_PASSWORD,
        },
        "rds": {
            "source_instance": SOURCE_ID,
            "replica_instance": REPLICA_ID,
            "region": REGION,
            "replica_instance_class": "db.r6g.large",
            "availability_zone": "us-east-1b",
            "tags": {"team": "data", "purpose": "migration"},
            "endpoint_url": emulation.aws.url,
            "endpoint_map": emulation.endpoint_map,
            **(rds or {}),
        },
        "cutover": {"freeze_timeout_seconds": 10, **(cutover or {})},
        "dns": dns
        or {"provider": "local", "record": RECORD, "target_value": "127.0.0.1:1", "file": "dns.json"},
        **(extra or {}),
    }
    return parse(data, emulation.tmp / "migration.toml")


def wait_for(condition: Callable[[], bool], *, timeout: float = 30.0, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def create_zone(aws: Aws, *, name: str = ZONE_NAME) -> str:
    r53 = aws.client("route53")
    zone = r53.create_hosted_zone(Name=name, CallerReference=f"ref-{time.monotonic_ns()}")["HostedZone"]
    return str(zone["Id"]).removeprefix("/hostedzone/")


def put_record(aws: Aws, zone_id: str, record_set: dict[str, Any]) -> None:
    aws.client("route53").change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record_set}]}
    )


@pytest.fixture
def route53_pending(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Make GetChange answer PENDING for each change's first N polls (moto says INSYNC at once)."""
    pending_polls: dict[str, int] = {"polls": 2}
    seen: Counter[str] = Counter()
    original = Route53Response.get_change

    def get_change(self: Route53Response) -> Any:
        result = original(self)
        change_id = self._get_param("Id")
        seen[change_id] += 1
        if seen[change_id] <= pending_polls["polls"]:
            result.result["ChangeInfo"]["Status"] = "PENDING"
        return result

    monkeypatch.setattr(Route53Response, "get_change", get_change)
    return pending_polls


def emulate_reset_parameter_group(monkeypatch: pytest.MonkeyPatch, emulation: Any) -> list[list[str]]:
    """moto lacks ResetDBParameterGroup: do what RDS does (the parameters go back to the engine default; for
    read_only that is {TrueIfReplica}, OFF on a primary). Returns the parameter names reset, call by call."""
    resets: list[list[str]] = []

    def reset_db_parameter_group(self: RDSResponse) -> ActionResult:
        name = self.params.get("DBParameterGroupName")
        names = [p.original_dict()["ParameterName"] for p in self.params.get("Parameters", [])]
        group = self.backend.db_parameter_groups[name]
        for parameter in names:
            group.parameters.pop(parameter, None)
        resets.append(names)
        if "read_only" in names:
            emulation.later(lambda: emulation.source.execute("SET GLOBAL read_only = OFF"))
        return ActionResult({"DBParameterGroupName": name})

    monkeypatch.setattr(RDSResponse, "reset_db_parameter_group", reset_db_parameter_group, raising=False)
    return resets
