"""TOML -> frozen, typed Config, validated once at the edge.

Nothing below the CLI reads environment variables, files or raw dicts: secrets are resolved here
(``password_env`` / ``password_file`` / ``password``) into Secret objects that never print.
Every error names the file, the key and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from migrator.endpoint import Endpoint, Tls
from migrator.errors import ConfigError
from migrator.secrets import Secret

T = TypeVar("T")

PLATFORMS = ("local", "rds")
DNS_PROVIDERS = ("local", "route53")
ON_FAILURE = ("resume", "hold")
SYSTEM_SCHEMAS = frozenset({"mysql", "sys", "information_schema", "performance_schema", "_migrator"})


@dataclass(frozen=True)
class MigrationSettings:
    name: str
    workdir: Path
    platform: str
    schemas: tuple[str, ...]
    allow_nonempty_target: bool = False


@dataclass(frozen=True)
class LocalReplicaSettings:
    port: int = 0  # 0: pick a free loopback port
    server_id: int = 3


@dataclass(frozen=True)
class RdsSettings:
    source_instance: str
    replica_instance: str
    region: str = "us-east-1"
    replica_instance_class: str | None = None
    availability_zone: str | None = None
    db_subnet_group: str | None = None
    replica_parameter_group: str | None = None
    source_parameter_group: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    endpoint_url: str | None = None
    cloudwatch_endpoint_url: str | None = None
    endpoint_map: tuple[tuple[str, str], ...] = ()  # instance id -> "host:port"
    max_binlog_disk_mb: int | None = None
    min_free_storage_mb: int | None = None
    final_snapshot: bool = True


@dataclass(frozen=True)
class BinlogSettings:
    retention_hours: int = 24
    wait_seconds: int = 0
    streamer_server_id: int = 4242
    # The streamer is restarted when its archive has not grown for this long while the source's head moved.
    stall_seconds: int = 60
    # The run stops cleanly (exit 1) before the work directory's free space falls below this.
    min_free_mb: int = 1024


@dataclass(frozen=True)
class CopySettings:
    workers: int = 2
    chunk_mb: int = 16


@dataclass(frozen=True)
class SyncSettings:
    max_lag_bytes: int = 1_000_000
    max_lag_seconds: float = 5.0
    timeout_seconds: int = 3600
    heartbeat_seconds: float = 1.0
    checksum_workers: int = 2
    group_commit: int = 50
    # Every MySQL session: how long one read (a statement's result) or write may block (review B12).
    read_timeout_seconds: int = 3600
    write_timeout_seconds: int = 600
    # Waits of steps 2 and 3 (review C5): a 4 TB RDS replica takes hours to create.
    replica_timeout_seconds: int = 172_800
    promote_timeout_seconds: int = 7_200
    # The longest pause between two polls of a step's wait (each poll queries the servers or AWS).
    # Tests set it short: a wait whose first poll misses then costs a fraction of a second, not 1 s.
    poll_seconds: float = 1.0


@dataclass(frozen=True)
class CutoverSettings:
    read_only: bool = True
    pause_hook: tuple[str, ...] = ()
    resume_hook: tuple[str, ...] = ()
    hook_timeout_seconds: int = 60
    freeze_timeout_seconds: int = 30
    catchup_timeout_seconds: int = 300
    require_approval: bool = False
    verify_all_in_pause: bool = False
    # Step 10 compares whole tables by CHECKSUM TABLE first (same server version on both sides);
    # only a table whose checksums differ is compared range by range. False: ranges only (64-bit).
    whole_table_checksums: bool = True
    # The pause starts only when at most this many rows are left for it to compare (rows changed since
    # the last live round, plus the rows of tables compared whole); rounds run until then.
    max_pause_rows: int = 50_000
    # A failure inside the write pause (steps 9-14, before DNS moved): "resume" gives the source its
    # writes back at once (read_only restored, resume hook); "hold" keeps it paused for the operator.
    on_failure: str = "resume"
    # Refuse to freeze while a transaction on the source has been writing longer than this (0: no check).
    long_writer_seconds: int = 10
    # Before freezing, wait this long for prepared XA transactions on the source to be committed or rolled
    # back by the application (a warning while waiting); any left refuse the cut-over. 0: refuse at once.
    xa_wait_seconds: int = 10
    # After the DNS switch, application sessions still on the source get this long to leave by
    # themselves (pools recycling, clients reconnecting through DNS); then they are ended.
    connection_grace_seconds: int = 30


@dataclass(frozen=True)
class DnsSettings:
    provider: str
    record: str
    target_value: str
    ttl: int = 0
    file: Path | None = None  # local provider
    hosted_zone_id: str | None = None  # route53
    record_type: str = "CNAME"
    endpoint_url: str | None = None
    resolvers: tuple[str, ...] = ()


@dataclass(frozen=True)
class RollbackSettings:
    """The rollback window: from step 14 until `migrator finish` the old source replicates from the target."""

    enabled: bool = True
    # The account the source uses to read the target's binlog (REPLICATION SLAVE on the target). Empty:
    # the target's migration account. Given: step 13 creates it on the target if missing.
    user: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    user_host: str = "%"
    # How the SOURCE reaches the target (on RDS: an address inside the VPC); empty/0: target.host/port.
    target_host: str = ""
    target_port: int = 0
    ssl: bool = False  # rds_set_external_master/_source's ssl_encryption argument
    catchup_timeout_seconds: int = 300
    start_timeout_seconds: int = 30  # for the source's replication threads to connect when the window opens


@dataclass(frozen=True)
class DefinerSettings:
    # A DEFINER not copied to the target (excluded, or not on the source) is mapped only as configured
    # here, and only to an account with no more privileges than it: `map` per account, `fallback` for
    # the rest. Without either, such a definer stops step 12 (before the pause) naming it.
    fallback: str | None = None
    map: tuple[tuple[str, str], ...] = ()

    def mapping_for(self, definer: str) -> str | None:
        return dict(self.map).get(definer) or self.fallback


@dataclass(frozen=True)
class AccountSettings:
    # fnmatch patterns on user@host. Default: every account with a privilege naming a migrated schema.
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    path: Path
    migration: MigrationSettings
    source: Endpoint
    target: Endpoint
    replica: LocalReplicaSettings
    rds: RdsSettings | None
    binlog: BinlogSettings
    copy: CopySettings
    sync: SyncSettings
    cutover: CutoverSettings
    dns: DnsSettings
    definers: DefinerSettings
    accounts: AccountSettings = AccountSettings()
    extra: Mapping[str, Any] = field(default_factory=dict)
    rollback: RollbackSettings = field(default_factory=RollbackSettings)

    @property
    def workdir(self) -> Path:
        return self.migration.workdir

    @property
    def journal_path(self) -> Path:
        return self.workdir / "journal.sqlite"

    @property
    def archive_dir(self) -> Path:
        return self.workdir / "binlogs"

    @property
    def secrets_dir(self) -> Path:
        return self.workdir / "run"

    def fingerprint(self) -> str:
        """What a resume must agree on: where data comes from and goes, and which schemas. No secrets."""
        ident = {
            "source": [self.source.host, self.source.port, self.source.user],
            "target": [self.target.host, self.target.port, self.target.user],
            "schemas": sorted(self.migration.schemas),
            "platform": self.migration.platform,
            "rds": [self.rds.source_instance, self.rds.replica_instance] if self.rds else None,
        }
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]

    def with_endpoints(self, *, source: Endpoint | None = None, target: Endpoint | None = None) -> Config:
        return replace(self, source=source or self.source, target=target or self.target)

    def summary(self) -> dict[str, Any]:
        """A secret-free view for logs and `plan`."""
        data = asdict(self)
        for key in ("source", "target"):
            data[key]["password"] = "***"  # noqa: S105 - the mask, not a password
        data["rollback"]["password"] = "***"  # noqa: S105 - the mask, not a password
        return data


class _Section:
    """Reads one TOML table; remembers what was read so unknown keys can be named."""

    def __init__(self, file: Path, name: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: [{name}] must be a table, got {type(data).__name__}")
        self.file, self.name, self.data = file, name, data
        self.seen: set[str] = set()

    def _where(self, key: str) -> str:
        return f"{self.file}: {self.name}.{key}"

    def get(self, key: str, kind: type[T], default: T | None = None, *, required: bool = False) -> T:
        self.seen.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(f"{self._where(key)} is required ({kind.__name__})")
            return default  # type: ignore[return-value]
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(
                f"{self._where(key)} must be {kind.__name__}, got {type(value).__name__} {value!r}"
            )
        return value  # type: ignore[no-any-return,unused-ignore]

    def positive(self, key: str, default: int, *, allow_zero: bool = False) -> int:
        value = self.get(key, int, default)
        if value < 0 or (value == 0 and not allow_zero):
            raise ConfigError(f"{self._where(key)} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
        return value

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.get(key, list, list(default))
        if not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self._where(key)} must be a list of strings")
        return tuple(value)

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.get(key, str, default, required=default is None)
        if value not in choices:
            raise ConfigError(f"{self._where(key)} must be one of {', '.join(choices)}; got {value!r}")
        return value

    def path(self, key: str, base: Path, default: str | None = None) -> Path | None:
        value = self.get(key, str, default)
        if value is None:
            return None
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else (base / p)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise ConfigError(
                f"{self.file}: unknown key(s) in [{self.name}]: {', '.join(unknown)}",
                hint="check the spelling against configs/rds-to-ec2.example.toml",
            )


def _secret(section: _Section, prefix: str = "password") -> Secret:
    sources = [k for k in (f"{prefix}_env", f"{prefix}_file", prefix) if k in section.data]
    if len(sources) > 1:
        raise ConfigError(f"{section.file}: [{section.name}] give only one of {', '.join(sources)}")
    if not sources:
        section.seen.update({f"{prefix}_env", f"{prefix}_file", prefix})
        return Secret("")
    key = sources[0]
    value = section.get(key, str)
    if key.endswith("_env"):
        if value not in os.environ:
            raise ConfigError(
                f"{section.file}: {section.name}.{key} names environment variable {value}, which is not set"
            )
        return Secret(os.environ[value])
    if key.endswith("_file"):
        p = Path(os.path.expanduser(value))
        p = p if p.is_absolute() else section.file.parent / p
        try:
            return Secret(p.read_text().rstrip("\n"))
        except OSError as exc:
            raise ConfigError(
                f"{section.file}: {section.name}.{key}: cannot read {p}: {exc.strerror}"
            ) from exc
    return Secret(value)


def _endpoint(file: Path, name: str, data: Any) -> Endpoint:
    s = _Section(file, name, data)
    host = s.get("host", str, required=True)
    port = s.get("port", int, 3306)
    if not 0 <= port <= 65535:
        raise ConfigError(f"{file}: {name}.port must be 0-65535, got {port}")
    user = s.get("user", str, required=True)
    password = _secret(s)
    tls = None
    if s.get("tls", bool, False):
        tls = Tls(
            ca_file=s.path("tls_ca_file", file.parent),
            verify_identity=s.get("tls_verify_identity", bool, True),
        )
    else:
        s.seen.update({"tls_ca_file", "tls_verify_identity"})
    s.finish()
    return Endpoint(host=host, port=port, user=user, password=password, tls=tls)


def _pairs(section: _Section, key: str) -> tuple[tuple[str, str], ...]:
    value = section.get(key, dict, {})
    if not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{section.file}: {section.name}.{key} values must be strings")
    return tuple(sorted(value.items()))


def parse(data: Mapping[str, Any], file: Path) -> Config:
    base = file.parent
    known = {
        "migration",
        "source",
        "target",
        "replica",
        "rds",
        "binlog",
        "copy",
        "sync",
        "cutover",
        "dns",
        "definers",
        "accounts",
        "rollback",
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{file}: unknown section(s): {', '.join(unknown)}", hint=f"known: {', '.join(sorted(known))}"
        )
    for required in ("migration", "source", "target", "dns"):
        if required not in data:
            raise ConfigError(f"{file}: section [{required}] is required")

    m = _Section(file, "migration", data["migration"])
    workdir = m.path("workdir", base, default=".migrator") or base / ".migrator"
    schemas = m.strings("schemas")
    if not schemas:
        raise ConfigError(f"{file}: migration.schemas must list at least one schema to migrate")
    system = sorted(set(schemas) & SYSTEM_SCHEMAS)
    if system:
        raise ConfigError(f"{file}: migration.schemas must not include system schemas: {', '.join(system)}")
    migration = MigrationSettings(
        name=m.get("name", str, "migration"),
        workdir=workdir,
        platform=m.choice("platform", PLATFORMS, "local"),
        schemas=schemas,
        allow_nonempty_target=m.get("allow_nonempty_target", bool, False),
    )
    m.finish()

    r = _Section(file, "replica", data.get("replica", {}))
    replica = LocalReplicaSettings(
        port=r.positive("port", 0, allow_zero=True), server_id=r.positive("server_id", 3)
    )
    r.finish()

    rds = None
    if "rds" in data:
        s = _Section(file, "rds", data["rds"])
        rds = RdsSettings(
            source_instance=s.get("source_instance", str, required=True),
            replica_instance=s.get("replica_instance", str, required=True),
            region=s.get("region", str, "us-east-1"),
            replica_instance_class=s.get("replica_instance_class", str),
            availability_zone=s.get("availability_zone", str),
            db_subnet_group=s.get("db_subnet_group", str),
            replica_parameter_group=s.get("replica_parameter_group", str),
            source_parameter_group=s.get("source_parameter_group", str),
            tags=_pairs(s, "tags"),
            endpoint_url=s.get("endpoint_url", str),
            cloudwatch_endpoint_url=s.get("cloudwatch_endpoint_url", str),
            endpoint_map=_pairs(s, "endpoint_map"),
            max_binlog_disk_mb=s.get("max_binlog_disk_mb", int),
            min_free_storage_mb=s.get("min_free_storage_mb", int),
            final_snapshot=s.get("final_snapshot", bool, True),
        )
        s.finish()
    if migration.platform == "rds" and rds is None:
        raise ConfigError(f"{file}: migration.platform is 'rds' but there is no [rds] section")

    b = _Section(file, "binlog", data.get("binlog", {}))
    binlog = BinlogSettings(
        retention_hours=b.positive("retention_hours", 24),
        wait_seconds=b.positive("wait_seconds", 0, allow_zero=True),
        streamer_server_id=b.positive("streamer_server_id", 4242),
        stall_seconds=b.positive("stall_seconds", 60),
        min_free_mb=b.positive("min_free_mb", 1024, allow_zero=True),
    )
    b.finish()

    c = _Section(file, "copy", data.get("copy", {}))
    copy = CopySettings(workers=c.positive("workers", 2), chunk_mb=c.positive("chunk_mb", 16))
    if copy.workers > 64:
        raise ConfigError(f"{file}: copy.workers must be at most 64, got {copy.workers}")
    c.finish()

    y = _Section(file, "sync", data.get("sync", {}))
    sync = SyncSettings(
        max_lag_bytes=y.positive("max_lag_bytes", 1_000_000, allow_zero=True),
        max_lag_seconds=y.get("max_lag_seconds", float, 5.0),
        timeout_seconds=y.positive("timeout_seconds", 3600),
        heartbeat_seconds=y.get("heartbeat_seconds", float, 1.0),
        checksum_workers=y.positive("checksum_workers", 2),
        group_commit=y.positive("group_commit", 50),
        read_timeout_seconds=y.positive("read_timeout_seconds", 3600),
        write_timeout_seconds=y.positive("write_timeout_seconds", 600),
        replica_timeout_seconds=y.positive("replica_timeout_seconds", 172_800),
        promote_timeout_seconds=y.positive("promote_timeout_seconds", 7_200),
        poll_seconds=y.get("poll_seconds", float, 1.0),
    )
    if not 0.01 <= sync.poll_seconds <= 60:
        raise ConfigError(f"{file}: sync.poll_seconds must be between 0.01 and 60, got {sync.poll_seconds}")
    y.finish()

    u = _Section(file, "cutover", data.get("cutover", {}))
    cutover = CutoverSettings(
        read_only=u.get("read_only", bool, True),
        pause_hook=u.strings("pause_hook"),
        resume_hook=u.strings("resume_hook"),
        hook_timeout_seconds=u.positive("hook_timeout_seconds", 60),
        freeze_timeout_seconds=u.positive("freeze_timeout_seconds", 30),
        catchup_timeout_seconds=u.positive("catchup_timeout_seconds", 300),
        require_approval=u.get("require_approval", bool, False),
        verify_all_in_pause=u.get("verify_all_in_pause", bool, False),
        whole_table_checksums=u.get("whole_table_checksums", bool, True),
        max_pause_rows=u.positive("max_pause_rows", 50_000),
        on_failure=u.choice("on_failure", ON_FAILURE, "resume"),
        long_writer_seconds=u.positive("long_writer_seconds", 10, allow_zero=True),
        xa_wait_seconds=u.positive("xa_wait_seconds", 10, allow_zero=True),
        connection_grace_seconds=u.positive("connection_grace_seconds", 30, allow_zero=True),
    )
    if not cutover.read_only and not cutover.pause_hook:
        raise ConfigError(
            f"{file}: cutover.read_only is false and cutover.pause_hook is empty: nothing would pause writes",
            hint="set read_only = true, or give a pause_hook command that stops the application's writes",
        )
    u.finish()

    d = _Section(file, "dns", data["dns"])
    dns = DnsSettings(
        provider=d.choice("provider", DNS_PROVIDERS, "local"),
        record=d.get("record", str, required=True),
        target_value=d.get("target_value", str, required=True),
        ttl=d.positive("ttl", 0, allow_zero=True),
        file=d.path("file", workdir, "dns.json"),
        hosted_zone_id=d.get("hosted_zone_id", str),
        record_type=d.choice("record_type", ("A", "AAAA", "CNAME"), "CNAME"),
        endpoint_url=d.get("endpoint_url", str),
        resolvers=d.strings("resolvers"),
    )
    if dns.resolvers and dns.provider != "route53":
        raise ConfigError(f"{file}: dns.resolvers confirms a Route53 change; the {dns.provider} provider has none")
    if dns.provider == "route53" and not dns.hosted_zone_id:
        raise ConfigError(f"{file}: dns.hosted_zone_id is required with provider = 'route53'")
    d.finish()

    f = _Section(file, "definers", data.get("definers", {}))
    fallback = f.get("fallback", str)
    if fallback is not None and "@" not in fallback:
        raise ConfigError(f"{file}: definers.fallback must look like user@host, got {fallback!r}")
    mapping = _pairs(f, "map")
    for old_definer, new_definer in mapping:
        if "@" not in old_definer or "@" not in new_definer:
            raise ConfigError(
                f"{file}: definers.map entries must look like \"user@host\" = \"user@host\", "
                f"got {old_definer!r} = {new_definer!r}"
            )
    definers = DefinerSettings(fallback=fallback, map=mapping)
    f.finish()

    a = _Section(file, "accounts", data.get("accounts", {}))
    accounts = AccountSettings(include=a.strings("include"), exclude=a.strings("exclude"))
    a.finish()
    w = _Section(file, "rollback", data.get("rollback", {}))
    rollback = RollbackSettings(
        enabled=w.get("enabled", bool, True),
        user=w.get("user", str, ""),
        password=_secret(w),
        user_host=w.get("user_host", str, "%"),
        target_host=w.get("target_host", str, ""),
        target_port=w.positive("target_port", 0, allow_zero=True),
        ssl=w.get("ssl", bool, False),
        catchup_timeout_seconds=w.positive("catchup_timeout_seconds", 300),
        start_timeout_seconds=w.positive("start_timeout_seconds", 30),
    )
    if rollback.target_port > 65535:
        raise ConfigError(f"{file}: rollback.target_port must be 0-65535, got {rollback.target_port}")
    if rollback.user and not rollback.password.reveal():
        raise ConfigError(
            f"{file}: rollback.user is set but no rollback.password / password_env / password_file",
            hint="give the replication account a password, or leave rollback.user empty to use the target's account",
        )
    w.finish()

    return Config(
        path=file,
        migration=migration,
        source=_endpoint(file, "source", data["source"]),
        target=_endpoint(file, "target", data["target"]),
        replica=replica,
        rds=rds,
        binlog=binlog,
        copy=copy,
        sync=sync,
        cutover=cutover,
        dns=dns,
        definers=definers,
        accounts=accounts,
        rollback=rollback,
    )


def load(path: Path | str) -> Config:
    file = Path(path).resolve()
    if not file.exists():
        raise ConfigError(
            f"config file {file} does not exist", hint="pass -c with the path to your TOML config"
        )
    try:
        data = tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from exc
    return parse(data, file)
