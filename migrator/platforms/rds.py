"""The `rds` platform: the source is an RDS for MySQL/MariaDB instance; the snapshot is a read replica.

Control plane through boto3 (every call via ``migrator.aws.AwsCaller``): CreateDBInstanceReadReplica,
DescribeDBInstances, PromoteReadReplica, ModifyDBParameterGroup, DeleteDBInstance, and CloudWatch
GetMetricData for ReplicaLag, BinLogDiskUsage and FreeStorageSpace. Data-plane control through the
master user and RDS's procedures (`mysql.rds_stop_replication`, `mysql.rds_set_configuration`,
`mysql.rds_show_configuration`), since the master user has no SUPER.

``[rds] endpoint_map`` overrides the address RDS reports for an instance (an SSH tunnel; in tests the
local servers standing in for the instances). The replica is reached with the source's credentials:
an RDS replica is a copy of the source, users included.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.exceptions
import pymysql
import structlog

from migrator.aws import AwsCaller, error_code, make_client, mapped_address
from migrator.config import Config, RdsSettings
from migrator.endpoint import Endpoint
from migrator.errors import PreflightFailed, StepFailed
from migrator.mysql.flavour import Flavour, detect
from migrator.mysql.replication import replication_status
from migrator.mysql.session import MySQLSession
from migrator.ports import ReplicaHandle, ReplicaState, SnapshotCoordinates

RETENTION_SETTING = "binlog retention hours"
MAX_RETENTION_HOURS = 168  # RDS for MySQL: 7 days (AWS, mysql.rds_set_configuration); 2160 is Aurora's
SUPPORTED_ENGINES = ("mysql", "mariadb")
MIGRATION_TAG = "migrator:migration"
MIB = 1024 * 1024
# States in which an instance cannot serve as a source at all (others, like backing-up, are fine).
UNUSABLE_SOURCE_STATES = frozenset(
    {
        "stopped",
        "stopping",
        "deleting",
        "failed",
        "incompatible-restore",
        "incompatible-parameters",
        "incompatible-network",
        "inaccessible-encryption-credentials",
        "storage-full",
        "restore-error",
    }
)
NOT_FOUND_CODES = frozenset({"DBInstanceNotFound", "DBInstanceNotFoundFault"})


def _rds(config: Config) -> RdsSettings:
    if config.rds is None:
        raise PreflightFailed("migration.platform is 'rds' but the config has no [rds] section")
    return config.rds


def _replica_source_id(instance: Mapping[str, Any]) -> str | None:
    """ReadReplicaSourceDBInstanceIdentifier is an identifier, or an ARN for cross-region sources."""
    value = instance.get("ReadReplicaSourceDBInstanceIdentifier")
    if not value:
        return None
    return str(value).rsplit(":db:", 1)[-1]


def _tags(instance: Mapping[str, Any]) -> dict[str, str]:
    return {str(t["Key"]): str(t["Value"]) for t in instance.get("TagList", []) or []}


class RdsPlatform:
    name = "rds"

    def __init__(
        self,
        config: Config,
        *,
        log: Any = None,
        caller: AwsCaller | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        storage_check_interval: float = 60.0,
    ) -> None:
        self.config = config
        self.settings = _rds(config)
        self.log = log if log is not None else structlog.get_logger()
        self.call = caller or AwsCaller(sleep=sleep)
        self.sleep = sleep
        self.monotonic = monotonic
        self.storage_check_interval = storage_check_interval
        self._last_storage_check: float | None = None
        self._rds_client: Any = None
        self._cw_client: Any = None

    # --- clients ------------------------------------------------------------------------------
    @property
    def rds(self) -> Any:
        if self._rds_client is None:
            self._rds_client = make_client(
                "rds", region=self.settings.region, endpoint_url=self.settings.endpoint_url
            )
        return self._rds_client

    @property
    def cloudwatch(self) -> Any:
        if self._cw_client is None:
            url = self.settings.cloudwatch_endpoint_url or self.settings.endpoint_url
            self._cw_client = make_client("cloudwatch", region=self.settings.region, endpoint_url=url)
        return self._cw_client

    # --- instances ----------------------------------------------------------------------------
    def describe(self, identifier: str) -> dict[str, Any] | None:
        """The instance as DescribeDBInstances reports it, or None if there is none of that name."""
        try:
            response = self.call(
                "rds:DescribeDBInstances",
                lambda: self.rds.describe_db_instances(DBInstanceIdentifier=identifier),
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise
        instances = response.get("DBInstances", [])
        return dict(instances[0]) if instances else None

    def source_instance(self) -> dict[str, Any]:
        instance = self.describe(self.settings.source_instance)
        if instance is None:
            raise PreflightFailed(
                f"RDS instance {self.settings.source_instance!r} not found in {self.settings.region}",
                hint="check rds.source_instance and rds.region (and the credentials' account)",
            )
        return instance

    def _endpoint(self, identifier: str, instance: Mapping[str, Any] | None) -> Endpoint | None:
        mapped = mapped_address(self.settings.endpoint_map, identifier)
        if mapped is not None:
            return self.config.source.with_address(*mapped)
        address = (instance or {}).get("Endpoint") or {}
        if not address.get("Address"):
            return None  # RDS reports no endpoint while an instance is still being created
        return self.config.source.with_address(str(address["Address"]), int(address.get("Port", 3306)))

    def _source_session(self) -> MySQLSession:
        return MySQLSession(self.config.source)

    @staticmethod
    def _flavour(session: MySQLSession) -> Flavour:
        return detect(str(session.value("SELECT VERSION()")))

    # --- binlog retention (mysql.rds_*_configuration on the source) ---------------------------
    def binlog_retention_hours(self) -> int | None:
        """RDS's 'binlog retention hours'; None is RDS's default NULL: binlogs are not retained."""
        self.check_storage()
        with self._source_session() as s:
            rows = _call_procedure(s, "CALL mysql.rds_show_configuration")
        for row in rows:
            if str(row[0]).lower() == RETENTION_SETTING:
                return None if row[1] is None else int(row[1])
        raise StepFailed(f"mysql.rds_show_configuration on the source has no {RETENTION_SETTING!r} row")

    def set_binlog_retention_hours(self, hours: int | None) -> None:
        """``hours=None`` restores RDS's default (not retained); otherwise 1..2160."""
        if hours is not None and not 1 <= hours <= MAX_RETENTION_HOURS:
            raise PreflightFailed(
                f"binlog retention of {hours} h is outside what RDS accepts (1-{MAX_RETENTION_HOURS})",
                hint="set binlog.retention_hours within range",
            )
        with self._source_session() as s:
            _call_procedure(s, "CALL mysql.rds_set_configuration(%s, %s)", (RETENTION_SETTING, hours))
        self.log.info("rds.binlog_retention_set", hours=hours)

    # --- storage watch (CloudWatch) -----------------------------------------------------------
    def storage_metrics(self) -> dict[str, float | None]:
        """Latest BinLogDiskUsage and FreeStorageSpace of the source, in bytes (None: no datapoint)."""
        now = datetime.now(UTC)
        dims = [{"Name": "DBInstanceIdentifier", "Value": self.settings.source_instance}]
        queries = [
            {
                "Id": "binlog",
                "MetricStat": {
                    "Metric": {"Namespace": "AWS/RDS", "MetricName": "BinLogDiskUsage", "Dimensions": dims},
                    "Period": 60,
                    "Stat": "Maximum",
                },
            },
            {
                "Id": "free",
                "MetricStat": {
                    "Metric": {"Namespace": "AWS/RDS", "MetricName": "FreeStorageSpace", "Dimensions": dims},
                    "Period": 60,
                    "Stat": "Minimum",
                },
            },
        ]
        response = self.call(
            "cloudwatch:GetMetricData",
            lambda: self.cloudwatch.get_metric_data(
                MetricDataQueries=queries,
                StartTime=now - timedelta(minutes=15),
                EndTime=now + timedelta(minutes=1),
                ScanBy="TimestampDescending",
            ),
        )
        values: dict[str, float | None] = {"binlog": None, "free": None}
        for result in response.get("MetricDataResults", []):
            if result.get("Values"):
                values[str(result["Id"])] = float(result["Values"][0])
        return {"binlog_disk_bytes": values["binlog"], "free_storage_bytes": values["free"]}

    def check_storage(self, *, force: bool = False) -> dict[str, float | None]:
        """Stop (StepFailed) when the source's binlogs or free space cross the [rds] limits.

        Cheap to call from any wait: it queries CloudWatch at most once per ``storage_check_interval``
        and not at all when neither max_binlog_disk_mb nor min_free_storage_mb is set.
        """
        s = self.settings
        if s.max_binlog_disk_mb is None and s.min_free_storage_mb is None:
            return {}
        now = self.monotonic()
        if (
            not force
            and self._last_storage_check is not None
            and now - self._last_storage_check < (self.storage_check_interval)
        ):
            return {}
        self._last_storage_check = now
        metrics = self.storage_metrics()
        binlog, free = metrics["binlog_disk_bytes"], metrics["free_storage_bytes"]
        self.log.info(
            "rds.storage",
            binlog_disk_mb=None if binlog is None else round(binlog / MIB, 1),
            free_storage_mb=None if free is None else round(free / MIB, 1),
        )
        if s.max_binlog_disk_mb is not None and binlog is not None and binlog > s.max_binlog_disk_mb * MIB:
            raise StepFailed(
                f"the source's binlogs use {binlog / MIB:.0f} MiB (CloudWatch BinLogDiskUsage), above "
                f"rds.max_binlog_disk_mb = {s.max_binlog_disk_mb}",
                hint="the raised binlog retention keeps them: raise the limit or the storage and "
                "`migrator run` "
                "again, or `migrator cleanup --confirm` to give up and restore the retention",
            )
        if s.min_free_storage_mb is not None and free is not None and free < s.min_free_storage_mb * MIB:
            raise StepFailed(
                f"the source has {free / MIB:.0f} MiB free storage (CloudWatch FreeStorageSpace), below "
                f"rds.min_free_storage_mb = {s.min_free_storage_mb}",
                hint="add storage to the source (ModifyDBInstance AllocatedStorage) and `migrator run` "
                "again, "
                "or `migrator cleanup --confirm` to give up and restore the binlog retention",
            )
        return metrics

    def replica_lag_metric(self, identifier: str) -> float | None:
        """Latest CloudWatch ReplicaLag (seconds; -1 when replication is not running), None if none yet."""
        now = datetime.now(UTC)
        query = {
            "Id": "lag",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/RDS",
                    "MetricName": "ReplicaLag",
                    "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": identifier}],
                },
                "Period": 60,
                "Stat": "Maximum",
            },
        }
        response = self.call(
            "cloudwatch:GetMetricData",
            lambda: self.cloudwatch.get_metric_data(
                MetricDataQueries=[query],
                StartTime=now - timedelta(minutes=5),
                EndTime=now + timedelta(minutes=1),
                ScanBy="TimestampDescending",
            ),
        )
        for result in response.get("MetricDataResults", []):
            if result.get("Values"):
                return float(result["Values"][0])
        return None

    # --- replica ------------------------------------------------------------------------------
    def _is_ours(self, instance: Mapping[str, Any]) -> bool:
        return _replica_source_id(instance) == self.settings.source_instance or (
            _tags(instance).get(MIGRATION_TAG) == self.config.migration.name
        )

    def _replica_request(self, identifier: str) -> dict[str, Any]:
        s = self.settings
        tags = dict(s.tags)
        tags[MIGRATION_TAG] = self.config.migration.name  # how a resume recognises its own replica
        request: dict[str, Any] = {
            "DBInstanceIdentifier": identifier,
            "SourceDBInstanceIdentifier": s.source_instance,
            "MultiAZ": False,
            "AutoMinorVersionUpgrade": False,
            "PubliclyAccessible": False,
            "DeletionProtection": False,
            "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
        }
        optional = {
            "DBInstanceClass": s.replica_instance_class,
            "AvailabilityZone": s.availability_zone,
            "DBSubnetGroupName": s.db_subnet_group,
            "DBParameterGroupName": s.replica_parameter_group,
        }
        request.update({k: v for k, v in optional.items() if v})
        return request

    def _handle(self, identifier: str, instance: Mapping[str, Any] | None) -> ReplicaHandle:
        endpoint = self._endpoint(identifier, instance)
        if endpoint is None:
            # Not reachable yet: the step waits on replica_state; replica_handle works once available.
            endpoint = self.config.source.with_address("", 0)
        return ReplicaHandle(identifier=identifier, endpoint=endpoint)

    def create_replica(self, identifier: str) -> ReplicaHandle:
        if identifier == self.settings.source_instance:
            raise PreflightFailed("rds.replica_instance must differ from rds.source_instance")
        existing = self.describe(identifier)
        if existing is not None:
            self._adopt(identifier, existing)
            return self._handle(identifier, existing)
        request = self._replica_request(identifier)
        try:
            response = self.call(
                "rds:CreateDBInstanceReadReplica",
                lambda: self.rds.create_db_instance_read_replica(**request),
                idempotent=False,
                took_effect=lambda: _wrap_instance(self.describe(identifier)),
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) not in ("DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault"):
                raise
            existing = self.describe(identifier)  # another run (or a lost response) created it
            if existing is None:
                raise
            self._adopt(identifier, existing)
            return self._handle(identifier, existing)
        instance = response["DBInstance"]
        self.log.info(
            "rds.replica_created",
            replica=identifier,
            source=self.settings.source_instance,
            status=instance.get("DBInstanceStatus"),
            instance_class=instance.get("DBInstanceClass"),
        )
        return self._handle(identifier, instance)

    def _adopt(self, identifier: str, instance: Mapping[str, Any]) -> None:
        if not self._is_ours(instance):
            raise PreflightFailed(
                f"RDS instance {identifier!r} already exists and is neither a read replica of "
                f"{self.settings.source_instance!r} nor tagged {MIGRATION_TAG}={self.config.migration.name}",
                hint="choose another rds.replica_instance; the migrator never adopts an unrelated instance",
            )
        self.log.info("rds.replica_adopted", replica=identifier, status=instance.get("DBInstanceStatus"))

    def replica_handle(self, identifier: str) -> ReplicaHandle:
        instance = self.describe(identifier)
        if instance is None:
            raise StepFailed(f"RDS instance {identifier!r} does not exist")
        endpoint = self._endpoint(identifier, instance)
        if endpoint is None:
            raise StepFailed(
                f"RDS instance {identifier!r} has no endpoint yet (status {instance.get('DBInstanceStatus')})"
            )
        return ReplicaHandle(identifier=identifier, endpoint=endpoint)

    def replica_state(self, identifier: str) -> ReplicaState:
        self.check_storage()
        instance = self.describe(identifier)
        if instance is None:
            return ReplicaState(
                exists=False, available=False, replicating=False, lag_seconds=None, promoted=False
            )
        if str(instance.get("DBInstanceStatus")) != "available":
            return ReplicaState(
                exists=True, available=False, replicating=False, lag_seconds=None, promoted=False
            )
        if _replica_source_id(instance) is None:
            return ReplicaState(
                exists=True, available=True, replicating=False, lag_seconds=None, promoted=True
            )
        endpoint = self._endpoint(identifier, instance)
        assert endpoint is not None  # available instances have an endpoint
        with MySQLSession(endpoint) as s:
            replication = replication_status(s, identifier)
        if replication is None:
            # RDS still lists a source but the server has no replication: only mid-promotion.
            return ReplicaState(
                exists=True, available=True, replicating=False, lag_seconds=None, promoted=False
            )
        lag = replication.lag_seconds
        metric = self.replica_lag_metric(identifier)
        if lag is not None and metric is not None and metric > 0:
            lag = max(lag, metric)  # both must say 0: CloudWatch lags, but may see what SQL hides
        return ReplicaState(
            exists=True, available=True, replicating=replication.replicating, lag_seconds=lag, promoted=False
        )

    def stop_replication(self, identifier: str) -> SnapshotCoordinates:
        handle = self.replica_handle(identifier)
        with MySQLSession(handle.endpoint) as s:
            flavour = self._flavour(s)
            _call_procedure(s, "CALL mysql.rds_stop_replication")
            rows = s.dicts(flavour.replica_status_sql)
            if not rows:
                raise StepFailed(
                    f"replica {identifier!r} is already promoted and its coordinates were not recorded",
                    hint="the snapshot cannot be used: `migrator cleanup --confirm` and start a new "
                    "migration",
                )
            io, sql = flavour.replica_threads_running(rows[0])
            if io or sql:
                raise StepFailed(
                    f"mysql.rds_stop_replication left replica {identifier!r} running (io={io}, sql={sql})"
                )
            coords = flavour.replica_coordinates(rows[0])
        self.log.info(
            "rds.replication_stopped", replica=identifier, file=coords.file, position=coords.position
        )
        return coords

    def start_replication(self, identifier: str) -> None:
        """The master user may not START SLAVE: RDS's procedure does it (as for a replica's own lag)."""
        handle = self.replica_handle(identifier)
        with MySQLSession(handle.endpoint) as s:
            _call_procedure(s, "CALL mysql.rds_start_replication")
        self.log.info("rds.replication_started", replica=identifier)

    def promote(self, identifier: str) -> None:
        instance = self.describe(identifier)
        if instance is None:
            raise StepFailed(f"RDS instance {identifier!r} does not exist; it cannot be promoted")
        if _replica_source_id(instance) is None:
            self.log.info("rds.already_promoted", replica=identifier)
            return
        status = str(instance.get("DBInstanceStatus"))
        if status != "available":
            # A promotion we asked for before a crash shows as modifying/rebooting: wait, don't ask again.
            self.log.info("rds.promotion_in_progress", replica=identifier, status=status)
            return
        self._require_stopped(identifier, instance)

        def landed() -> dict[str, Any] | None:
            now = self.describe(identifier)
            if now is None or _replica_source_id(now) is None or now.get("DBInstanceStatus") != "available":
                return {"DBInstance": now}
            return None

        try:
            # BackupRetentionPeriod=0: no backup of this throwaway snapshot before it is usable.
            self.call(
                "rds:PromoteReadReplica",
                lambda: self.rds.promote_read_replica(
                    DBInstanceIdentifier=identifier, BackupRetentionPeriod=0
                ),
                idempotent=False,
                took_effect=landed,
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "InvalidDBInstanceState" or landed() is None:
                raise
        self.log.info("rds.promote_requested", replica=identifier)

    def _require_stopped(self, identifier: str, instance: Mapping[str, Any]) -> None:
        """The recorded coordinates hold only while replication stays stopped until promotion."""
        endpoint = self._endpoint(identifier, instance)
        if endpoint is None:
            return
        with MySQLSession(endpoint) as s:
            flavour = self._flavour(s)
            rows = s.dicts(flavour.replica_status_sql)
        if rows and any(flavour.replica_threads_running(rows[0])):
            raise StepFailed(
                f"replication on {identifier!r} is running again after it was stopped at the snapshot "
                f"coordinates",
                hint="something restarted it (mysql.rds_start_replication?); the snapshot no longer "
                "matches the "
                "recorded coordinates: `migrator retry-step 3` re-stops it and records new ones",
            )

    def delete_replica(self, identifier: str, *, final_snapshot: bool) -> None:
        if identifier == self.settings.source_instance:
            raise StepFailed(f"refusing to delete {identifier!r}: it is the migration's source")
        instance = self.describe(identifier)
        if instance is None or instance.get("DBInstanceStatus") == "deleting":
            self.log.info("rds.replica_already_gone", replica=identifier)
            return
        if not self._is_ours(instance):
            raise StepFailed(
                f"refusing to delete {identifier!r}: not a replica of the source nor tagged as ours"
            )
        request: dict[str, Any] = {"DBInstanceIdentifier": identifier, "DeleteAutomatedBackups": True}
        # RDS refuses a final snapshot of an instance that is still a read replica.
        if final_snapshot and _replica_source_id(instance) is None:
            stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
            request.update(SkipFinalSnapshot=False, FinalDBSnapshotIdentifier=f"{identifier}-final-{stamp}")
        else:
            request["SkipFinalSnapshot"] = True

        def gone() -> dict[str, Any] | None:
            now = self.describe(identifier)
            return {"DBInstance": now} if now is None or now.get("DBInstanceStatus") == "deleting" else None

        self.call(
            "rds:DeleteDBInstance",
            lambda: self.rds.delete_db_instance(**request),
            idempotent=False,
            took_effect=gone,
        )
        self.log.info(
            "rds.replica_deleted", replica=identifier, final_snapshot=request.get("FinalDBSnapshotIdentifier")
        )

    # --- freezing writes on the source --------------------------------------------------------
    def source_parameter_group(self) -> str:
        """The source's DB parameter group, refusing a default one (RDS cannot modify those)."""
        group = self.settings.source_parameter_group
        if not group:
            groups = self.source_instance().get("DBParameterGroups") or []
            group = str(groups[0]["DBParameterGroupName"]) if groups else ""
        if not group or group.startswith("default."):
            raise PreflightFailed(
                f"the source {self.settings.source_instance!r} uses the default parameter group "
                f"{group!r}, which "
                "RDS does not let anyone modify, so the migrator cannot set read_only to pause writes",
                hint="set cutover.read_only = false and give a cutover.pause_hook that stops the "
                "application's "
                "writes, or attach a custom parameter group to the source (needs a reboot) before migrating",
            )
        return group

    def set_source_read_only(self, read_only: bool) -> None:
        group = self.source_parameter_group()
        if read_only:
            # The group's read_only applies to every instance using it: never freeze a shared group.
            _refuse_shared_group(self, group)
        value = "1" if read_only else "0"
        parameters = [{"ParameterName": "read_only", "ParameterValue": value, "ApplyMethod": "immediate"}]
        self.call(
            "rds:ModifyDBParameterGroup",  # idempotent: the same value twice is one state
            lambda: self.rds.modify_db_parameter_group(DBParameterGroupName=group, Parameters=parameters),
        )
        self.log.info("rds.read_only_requested", parameter_group=group, read_only=read_only)
        self._wait_read_only(read_only, f"ModifyDBParameterGroup on {group!r}")

    def read_only_parameter(self, group: str) -> dict[str, Any] | None:
        """The group's read_only entry as DescribeDBParameters gives it (None if the group does not list it)."""
        marker: str | None = None
        while True:
            kwargs: dict[str, Any] = {"DBParameterGroupName": group}
            if marker:
                kwargs["Marker"] = marker
            page = self._page("rds:DescribeDBParameters", self.rds.describe_db_parameters, kwargs)
            for parameter in page.get("Parameters", []) or []:
                if parameter.get("ParameterName") == "read_only":
                    return dict(parameter)
            marker = page.get("Marker")
            if not marker:
                return None

    def source_read_only_setting(self) -> dict[str, Any]:
        """The group's own read_only value (RDS's default is the formula ``{TrueIfReplica}``) and its effect."""
        group = self.source_parameter_group()
        parameter = self.read_only_parameter(group) or {}
        with self._source_session() as s:
            effective = str(s.variable("read_only")).upper() in ("ON", "1")
        return {
            "platform": "rds",
            "parameter_group": group,
            "value": parameter.get("ParameterValue"),
            "source": parameter.get("Source") or ("user" if parameter.get("ParameterValue") else "engine-default"),
            "effective": effective,
        }

    def restore_source_read_only(self, setting: dict[str, Any]) -> None:
        """Put back exactly what was there: the user's value, or the engine default by ResetDBParameterGroup."""
        group = str(setting["parameter_group"])
        if setting.get("source") == "user" and setting.get("value") is not None:
            parameters = [
                {"ParameterName": "read_only", "ParameterValue": str(setting["value"]), "ApplyMethod": "immediate"}
            ]
            self.call(
                "rds:ModifyDBParameterGroup",
                lambda: self.rds.modify_db_parameter_group(DBParameterGroupName=group, Parameters=parameters),
            )
        else:
            self.call(
                "rds:ResetDBParameterGroup",  # idempotent: resetting twice is one state
                lambda: self.rds.reset_db_parameter_group(
                    DBParameterGroupName=group,
                    ResetAllParameters=False,
                    Parameters=[{"ParameterName": "read_only", "ApplyMethod": "immediate"}],
                ),
            )
        self.log.info("rds.read_only_restored", parameter_group=group, value=setting.get("value"))
        self._wait_read_only(bool(setting.get("effective")), f"restoring read_only in {group!r}")

    def _wait_read_only(self, read_only: bool, after: str) -> None:
        # RDS applies a dynamic parameter within seconds, not at once: wait until the server says so.
        deadline = self.monotonic() + self.config.cutover.freeze_timeout_seconds
        while True:
            with self._source_session() as s:
                current = str(s.variable("read_only")).upper() in ("ON", "1")
            if current == read_only:
                return
            if self.monotonic() >= deadline:
                raise StepFailed(
                    f"the source still has read_only={'OFF' if read_only else 'ON'} "
                    f"{self.config.cutover.freeze_timeout_seconds} s after {after}",
                    hint="check the parameter group's ParameterApplyStatus in the RDS console",
                )
            self.sleep(0.5)

    def _page(self, name: str, method: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.call(name, lambda: method(**kwargs))
        return result

    def instances_using_group(self, group: str) -> list[str]:
        """Every DB instance (DescribeDBInstances, all pages) whose parameter groups include ``group``."""
        users: list[str] = []
        marker: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Marker": marker} if marker else {}
            page = self._page("rds:DescribeDBInstances", self.rds.describe_db_instances, kwargs)
            for instance in page.get("DBInstances", []) or []:
                names = {str(g.get("DBParameterGroupName")) for g in instance.get("DBParameterGroups") or []}
                if group in names:
                    users.append(str(instance["DBInstanceIdentifier"]))
            marker = page.get("Marker")
            if not marker:
                return users

    # --- after the cut-over: sessions and the reverse replication (rollback window) -----------
    def kill_session(self, thread_id: int) -> None:
        """End one source session: the master user has no CONNECTION_ADMIN, RDS gives mysql.rds_kill."""
        with self._source_session() as s:
            try:
                _call_procedure(s, "CALL mysql.rds_kill(%s)", (int(thread_id),))
            except pymysql.err.MySQLError as exc:
                if exc.args and exc.args[0] == 1094:  # unknown thread id: it left by itself meanwhile
                    return
                raise

    @staticmethod
    def _external_source_procedures(flavour: Flavour) -> tuple[str, str]:
        """(set, reset): RDS for MySQL 8.4 renamed the *_external_master procedures to *_external_source."""
        if not flavour.is_mariadb and (flavour.major, flavour.minor) >= (8, 4):
            return "mysql.rds_set_external_source", "mysql.rds_reset_external_source"
        return "mysql.rds_set_external_master", "mysql.rds_reset_external_master"

    def start_reverse_replication(
        self, *, host: str, port: int, user: str, password: str, log_file: str, log_pos: int, ssl: bool
    ) -> None:
        """The source instance follows the target: rds_set_external_master/_source, rds_start_replication."""
        with self._source_session() as s:
            set_proc, _reset = self._external_source_procedures(self._flavour(s))
            _call_procedure(
                s,
                f"CALL {set_proc}(%s, %s, %s, %s, %s, %s, %s)",
                (host, int(port), user, password, log_file, int(log_pos), 1 if ssl else 0),
            )
            _call_procedure(s, "CALL mysql.rds_start_replication")
        self.log.info("rds.reverse_replication_started", procedure=set_proc, file=log_file, position=log_pos)

    def ensure_reverse_replication_running(self) -> None:
        with self._source_session() as s:
            _call_procedure(s, "CALL mysql.rds_start_replication")

    def stop_reverse_replication(self) -> None:
        with self._source_session() as s:
            _reset_proc = self._external_source_procedures(self._flavour(s))[1]
            _call_procedure(s, "CALL mysql.rds_stop_replication")
            _call_procedure(s, f"CALL {_reset_proc}")
        self.log.info("rds.reverse_replication_stopped", procedure=_reset_proc)


def _refuse_shared_group(rds: RdsPlatform, group: str) -> None:
    s = rds.settings
    # Our own snapshot instance may share it (RDS gives a replica its source's group by default): it is
    # promoted and copied from by then, so a read_only there harms nothing.
    others = [i for i in rds.instances_using_group(group) if i not in (s.source_instance, s.replica_instance)]
    if others:
        raise PreflightFailed(
            f"the source's parameter group {group!r} is shared with {', '.join(sorted(others))}: setting "
            "read_only=1 in it to pause writes would freeze those instances too",
            hint="give the source a parameter group of its own (CopyDBParameterGroup, ModifyDBInstance "
            "DBParameterGroupName, reboot) before migrating, or set cutover.read_only = false with a "
            "cutover.pause_hook",
        )


def require_dedicated_parameter_group(config: Config, *, platform: RdsPlatform | None = None) -> None:
    """Preflight: with cutover.read_only, the source's parameter group must be its own (PreflightFailed if not)."""
    if not config.cutover.read_only:
        return
    rds = platform or RdsPlatform(config)
    _refuse_shared_group(rds, rds.source_parameter_group())


def _wrap_instance(instance: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if instance is None else {"DBInstance": instance}


def _call_procedure(
    session: MySQLSession, sql: str, args: tuple[Any, ...] | None = None
) -> list[tuple[Any, ...]]:
    try:
        return session.rows(sql, args)
    except pymysql.err.MySQLError as exc:
        code = exc.args[0] if exc.args else None
        procedure = sql.split("(", maxsplit=1)[0].removeprefix("CALL ")
        if code == 1305:  # PROCEDURE does not exist
            raise PreflightFailed(
                f"{session.endpoint.describe()} has no {procedure}: is it an RDS instance?",
                hint="migration.platform = 'rds' needs RDS for MySQL/MariaDB (the mysql.rds_* procedures)",
            ) from exc
        if code in (1370, 1044, 1045, 1227):
            raise PreflightFailed(
                f"{session.endpoint.describe()} may not run {sql.split('(', maxsplit=1)[0]}: {exc.args[-1]}",
                hint="connect as the RDS master user, or GRANT EXECUTE ON mysql.* to this user",
            ) from exc
        raise


# --- plan, preflight and cleanup ------------------------------------------------------------------
def describe_aws_calls(config: Config) -> list[str]:
    """What `migrator plan` shows: every AWS call and rds_* procedure this plan makes. No effects."""
    s = _rds(config)
    lines = [
        f"rds:DescribeDBInstances {s.source_instance} ({s.region}): engine, backups, parameter group "
        f"(preflight)",
        f"CALL mysql.rds_show_configuration / rds_set_configuration('binlog retention hours', "
        f"{config.binlog.retention_hours}) on the source (step 2, confirmed in step 4)",
    ]
    extras = [
        f"class {s.replica_instance_class}" if s.replica_instance_class else "the source's class",
        f"AZ {s.availability_zone}" if s.availability_zone else "",
        f"subnet group {s.db_subnet_group}" if s.db_subnet_group else "",
        f"parameter group {s.replica_parameter_group}" if s.replica_parameter_group else "",
        f"tags {', '.join(f'{k}={v}' for k, v in s.tags)}" if s.tags else "",
    ]
    lines += [
        f"rds:CreateDBInstanceReadReplica {s.replica_instance} from {s.source_instance} "
        f"({', '.join(e for e in extras if e)}); adopts it if it already exists (step 2)",
        f"rds:DescribeDBInstances + cloudwatch:GetMetricData ReplicaLag until {s.replica_instance} is "
        f"available "
        "with lag 0, confirmed by SHOW SLAVE STATUS on it (step 2)",
        f"CALL mysql.rds_stop_replication on {s.replica_instance}, then rds:PromoteReadReplica (step 3)",
        f"XA RECOVER on {s.replica_instance} after the stop: a stop point holding a prepared XA transaction "
        "is not a snapshot; CALL mysql.rds_start_replication and stop again once it is committed (step 3)",
    ]
    if s.max_binlog_disk_mb is not None or s.min_free_storage_mb is not None:
        lines.append(
            f"cloudwatch:GetMetricData BinLogDiskUsage (max {s.max_binlog_disk_mb} MiB) and FreeStorageSpace "
            f"(min {s.min_free_storage_mb} MiB) of {s.source_instance} during waits"
        )
    if config.cutover.read_only:
        group = s.source_parameter_group or "the source's parameter group (read at preflight)"
        lines.append(
            "rds:DescribeDBInstances (every instance): refuse if another instance uses the source's parameter "
            "group (preflight and step 9)"
        )
        lines.append(
            f"rds:DescribeDBParameters {group}: the group's own read_only value, journaled before step 9 freezes"
        )
        line = f"rds:ModifyDBParameterGroup {group}: read_only=1, ApplyMethod immediate (step 9)"
        if group.startswith("default."):
            line += " -- WILL FAIL PREFLIGHT: default parameter groups cannot be modified; use a pause_hook"
        lines.append(line)
        lines.append(
            f"on a failure inside the pause or `migrator abort-cutover`: rds:ModifyDBParameterGroup {group} "
            "read_only back to its journaled value, or rds:ResetDBParameterGroup read_only if it was the "
            "engine default"
        )
    if config.dns.provider == "route53":
        lines.append(
            f"route53:ListResourceRecordSets + ChangeResourceRecordSets UPSERT {config.dns.record} in "
            f"{config.dns.hosted_zone_id}, route53:GetChange until INSYNC (steps 1 and 13)"
        )
    lines.append(
        f"on `migrator cleanup --confirm`: rds:DeleteDBInstance {s.replica_instance} "
        f"({'with' if s.final_snapshot else 'without'} a final snapshot) and the old binlog retention "
        f"restored"
    )
    return lines


def rds_preflight(config: Config, *, resuming: bool = False, platform: RdsPlatform | None = None) -> None:
    """Read-only checks of the RDS side; every problem is a PreflightFailed (exit 2) naming the fix."""
    s = _rds(config)
    rds = platform or RdsPlatform(config)
    if s.replica_instance == s.source_instance:
        raise PreflightFailed("rds.replica_instance must differ from rds.source_instance")
    if config.binlog.retention_hours > MAX_RETENTION_HOURS:
        raise PreflightFailed(
            f"binlog.retention_hours = {config.binlog.retention_hours} exceeds RDS's maximum of "
            f"{MAX_RETENTION_HOURS} h",
            hint=f"use at most {MAX_RETENTION_HOURS}",
        )
    for name, _ in s.endpoint_map:
        mapped_address(s.endpoint_map, name)
    source = rds.source_instance()
    engine = str(source.get("Engine", ""))
    if engine not in SUPPORTED_ENGINES:
        raise PreflightFailed(
            f"RDS instance {s.source_instance!r} runs engine {engine!r}; the migrator supports "
            f"{' and '.join(SUPPORTED_ENGINES)} only",
            hint="Aurora and other engines need a different procedure",
        )
    status = str(source.get("DBInstanceStatus", ""))
    if status in UNUSABLE_SOURCE_STATES:
        raise PreflightFailed(
            f"RDS instance {s.source_instance!r} is {status}", hint="start or repair it first"
        )
    if int(source.get("BackupRetentionPeriod", 0) or 0) == 0:
        raise PreflightFailed(
            f"automated backups are disabled on {s.source_instance!r} (BackupRetentionPeriod 0): RDS refuses "
            "to create a read replica of it, and its binary logs are off",
            hint="enable automated backups (ModifyDBInstance BackupRetentionPeriod >= 1), then run again",
        )
    if not resuming:
        existing = rds.describe(s.replica_instance)
        if existing is not None and not rds._is_ours(existing):
            rds._adopt(s.replica_instance, existing)
    if config.cutover.read_only:
        group = rds.source_parameter_group()
        _require_parameter_group(rds, group, "the source's parameter group")
    if s.replica_parameter_group:
        _require_parameter_group(rds, s.replica_parameter_group, "rds.replica_parameter_group")
    if s.db_subnet_group:
        try:
            rds.call(
                "rds:DescribeDBSubnetGroups",
                lambda: rds.rds.describe_db_subnet_groups(DBSubnetGroupName=s.db_subnet_group),
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) not in ("DBSubnetGroupNotFoundFault", "DBSubnetGroupNotFound"):
                raise
            raise PreflightFailed(
                f"DB subnet group {s.db_subnet_group!r} not found", hint="check rds.db_subnet_group"
            ) from exc
    with rds._source_session() as session:
        _call_procedure(session, "CALL mysql.rds_show_configuration")
    try:
        rds.check_storage(force=True)
    except StepFailed as exc:
        raise PreflightFailed(exc.message, hint=exc.hint) from exc


def _require_parameter_group(rds: RdsPlatform, group: str, what: str) -> None:
    try:
        rds.call(
            "rds:DescribeDBParameterGroups",
            lambda: rds.rds.describe_db_parameter_groups(DBParameterGroupName=group),
        )
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) not in ("DBParameterGroupNotFound", "DBParameterGroupNotFoundFault"):
            raise
        raise PreflightFailed(f"{what} {group!r} not found", hint="check the name in the config") from exc


def cleanup(
    config: Config, journal_facts: Mapping[str, Any], *, confirm: bool, platform: RdsPlatform | None = None
) -> list[str]:
    """Undo what the migration left on RDS: delete the snapshot instance, restore binlog retention.

    Without ``confirm`` nothing changes: the returned lines say what would be done.
    """
    s = _rds(config)
    rds = platform or RdsPlatform(config)
    done: list[str] = []
    identifier = str(journal_facts.get("replica_id") or s.replica_instance)
    instance = rds.describe(identifier)
    if instance is None or instance.get("DBInstanceStatus") == "deleting":
        done.append(f"RDS instance {identifier}: already gone")
    else:
        snapshot = s.final_snapshot and _replica_source_id(instance) is None
        how = "with a final snapshot" if snapshot else "no final snapshot"
        action = f"delete RDS instance {identifier} ({how})"
        if confirm:
            rds.delete_replica(identifier, final_snapshot=s.final_snapshot)
        done.append(action if confirm else f"would {action}")
    previous = journal_facts.get("binlog_retention_previous")
    if previous is None:
        done.append("binlog retention: never changed by this migration")
    else:
        hours = previous.get("hours") if isinstance(previous, Mapping) else None
        current = rds.binlog_retention_hours()
        label = "NULL (not retained)" if hours is None else f"{hours} h"
        if current == hours:
            done.append(f"binlog retention: already {label}")
        elif confirm:
            rds.set_binlog_retention_hours(hours)
            done.append(f"binlog retention restored to {label} (was {current} h)")
        else:
            done.append(f"would restore binlog retention to {label} (now {current} h)")
    return done
