"""`migrator doctor`: source vs target settings that change the application's behaviour or stop a step.

Each row is OK, warning or blocking, with the remedy; blocking rows also fail preflight (exit 2).
Read-only: SHOW GLOBAL VARIABLES, information_schema, CONVERT_TZ, one bounded SELECT of the largest
migrated table (the copy-time sample) and, on RDS, DescribeDBInstances and CloudWatch. (Review D1, B12.)
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pymysql
import pymysql.cursors

from migrator.config import Config
from migrator.endpoint import Endpoint
from migrator.mysql.schema import base_tables
from migrator.mysql.session import MySQLSession, quote_identifier

OK, WARNING, BLOCKING = "OK", "warning", "blocking"
NA = "n/a"  # the variable does not exist on that server (e.g. MySQL-only settings on MariaDB)

# RDS for MySQL (and MariaDB) keeps binlogs at most 168 h through rds_set_configuration; 2160 h is Aurora's.
RDS_MAX_RETENTION_HOURS = 168
# The copy estimate extrapolates a short read of the largest migrated table, bounded because the source
# is production: at most this long or this many bytes, whichever comes first.
SAMPLE_SECONDS = 2.0
SAMPLE_BYTES = 32 * 1024 * 1024
SAMPLE_FETCH = 64  # rows per fetch: the bounds are checked between fetches
# Without anything to sample (no rows yet): a conservative rate per copy worker, below the LOAD DATA
# path's bench throughput (bench/README.md).
ASSUMED_MB_PER_S_PER_WORKER = 10.0
ROW_EVENT_GROWTH = 4 / 3  # a row event is replayed as BINLOG '<base64>': about 4/3 of the row

VARIABLES = (
    "sql_mode",
    "time_zone",
    "system_time_zone",
    "lower_case_table_names",
    "character_set_server",
    "collation_server",
    "explicit_defaults_for_timestamp",
    "max_allowed_packet",
    "auto_increment_increment",
    "auto_increment_offset",
    "event_scheduler",
    "sql_require_primary_key",
    "binlog_row_image",
    "binlog_transaction_compression",
    "binlog_row_value_options",
    "gtid_mode",
    "super_read_only",
    "log_bin",
    "table_definition_cache",
    "table_open_cache",
)
# The table caches the copy and the applier go through: below the number of migrated tables, every
# chunk reopens its table's definition (10,001 tables at the defaults, 400 and 2000: 167,434 opens).
TABLE_CACHES = ("table_definition_cache", "table_open_cache")
# Head room above the migrated tables: the servers' own tables and the application's other schemas.
TABLE_CACHE_SPARE = 1000


@dataclass(frozen=True)
class Finding:
    check: str
    source: str
    target: str
    status: str
    remedy: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _variables(session: MySQLSession) -> dict[str, str]:
    marks = ", ".join(["%s"] * len(VARIABLES))
    rows = session.rows(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({marks})", VARIABLES)
    return {str(name).lower(): str(value) for name, value in rows}


def _is_mariadb(session: MySQLSession) -> bool:
    return "mariadb" in str(session.value("SELECT VERSION()")).lower()


def _zone_tables_loaded(session: MySQLSession) -> bool:
    """Named zones resolve only when mysql.time_zone* is loaded (CONVERT_TZ gives NULL otherwise)."""
    return session.value("SELECT CONVERT_TZ('2020-01-01 00:00:00', 'UTC', 'Europe/Berlin')") is not None


def _used_collations(session: MySQLSession, schemas: list[str]) -> set[str]:
    if not schemas:
        return set()
    marks = ", ".join(["%s"] * len(schemas))
    found: set[str] = set()
    for sql in (
        f"SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN ({marks})",
        f"SELECT DISTINCT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({marks})",
        f"SELECT DISTINCT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN ({marks})",
    ):
        found.update(str(r[0]) for r in session.rows(sql, schemas) if r[0])
    return found


def _keyless_tables(session: MySQLSession, schemas: list[str]) -> list[str]:
    if not schemas:
        return []
    marks = ", ".join(["%s"] * len(schemas))
    rows = session.rows(
        "SELECT t.TABLE_SCHEMA, t.TABLE_NAME FROM information_schema.TABLES t "
        f"WHERE t.TABLE_SCHEMA IN ({marks}) AND t.TABLE_TYPE = 'BASE TABLE' AND NOT EXISTS ("
        "SELECT 1 FROM information_schema.TABLE_CONSTRAINTS c WHERE c.TABLE_SCHEMA = t.TABLE_SCHEMA "
        "AND c.TABLE_NAME = t.TABLE_NAME AND c.CONSTRAINT_TYPE = 'PRIMARY KEY')",
        schemas,
    )
    return [f"{s}.{t}" for s, t in rows]


def _data_bytes(session: MySQLSession, schemas: list[str]) -> int:
    if not schemas:
        return 0
    marks = ", ".join(["%s"] * len(schemas))
    value = session.value(
        "SELECT COALESCE(SUM(DATA_LENGTH), 0) FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA IN ({marks}) AND TABLE_TYPE = 'BASE TABLE'",
        schemas,
    )
    return int(value or 0)


def _table_count(session: MySQLSession, schemas: list[str]) -> int:
    if not schemas:
        return 0
    marks = ", ".join(["%s"] * len(schemas))
    value = session.value(
        f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({marks}) AND TABLE_TYPE = 'BASE TABLE'",
        schemas,
    )
    return int(value or 0)


def table_cache_finding(tables: int, source: dict[str, str], target: dict[str, str]) -> Finding:
    """A warning when either server caches fewer table definitions or open tables than the migration has tables."""

    def shown(v: dict[str, str]) -> str:
        return ", ".join(f"{name} {v.get(name, NA)}" for name in TABLE_CACHES)

    def short(v: dict[str, str]) -> bool:
        return any(v.get(name, "").isdigit() and int(v[name]) < tables for name in TABLE_CACHES)

    low = [side for side, v in (("source", source), ("target", target)) if short(v)]
    wanted = tables + TABLE_CACHE_SPARE
    return Finding(
        "table caches",
        f"{shown(source)} ({tables:,} tables)",
        shown(target),
        WARNING if low else OK,
        ""
        if not low
        else f"with more tables than the {' and '.join(low)} cache(s), every chunk of the copy and every applied "
        f"event may reopen its table's definition (slow at 10,000 tables): SET GLOBAL table_definition_cache = "
        f"{wanted}, table_open_cache = {wanted} on the {' and '.join(low)} for the migration (RDS: parameter group)",
    )


@dataclass(frozen=True)
class ReadSample:
    table: str  # schema.table
    nbytes: int
    rows: int
    seconds: float

    @property
    def bytes_per_second(self) -> float:
        return self.nbytes / self.seconds if self.seconds > 0 else 0.0


def _value_bytes(value: Any) -> int:
    if value is None:
        return 1
    if isinstance(value, bytes | bytearray | str):
        return len(value)
    return 8


def sample_read(
    endpoint: Endpoint,
    schemas: list[str],
    *,
    max_seconds: float = SAMPLE_SECONDS,
    max_bytes: int = SAMPLE_BYTES,
    monotonic: Callable[[], float] = time.monotonic,
) -> ReadSample | None:
    """Read the largest migrated table's first rows in key order, streamed and discarded, until
    ``max_seconds`` or ``max_bytes``; None when there is no table or no row to read.

    Its own session: a sample cut short is ended with KILL QUERY (a client cannot stop a result
    otherwise), so the server stops reading at once instead of sending the rest of the table.
    """
    if not schemas:
        return None
    with MySQLSession(endpoint) as session:
        marks = ", ".join(["%s"] * len(schemas))
        largest = session.one(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA IN ({marks}) AND TABLE_TYPE = 'BASE TABLE' "
            "ORDER BY DATA_LENGTH DESC, TABLE_SCHEMA, TABLE_NAME LIMIT 1",
            schemas,
        )
        if largest is None:
            return None
        found = base_tables(session, [str(largest[0])], only_table=str(largest[1]))
        if not found:
            return None
        table = found[0]
        columns = ", ".join(quote_identifier(c.name) for c in table.columns if not c.generated) or "1"
        sql = f"SELECT {columns} FROM {table.sql_name}"
        if table.key_columns and table.key_name:
            # The key's own order through its index: never a sort of the whole table before the first row.
            sql += f" FORCE INDEX ({quote_identifier(table.key_name)}) ORDER BY " + ", ".join(
                quote_identifier(c) for c in table.key_columns
            )
        nbytes = rows = 0
        cut_short = False
        started = monotonic()
        cursor = session.conn.cursor(pymysql.cursors.SSCursor)
        try:
            cursor.execute(sql)
            while batch := cursor.fetchmany(SAMPLE_FETCH):
                rows += len(batch)
                nbytes += sum(_value_bytes(v) for row in batch for v in row)
                if nbytes >= max_bytes or monotonic() - started >= max_seconds:
                    cut_short = True
                    break
            seconds = monotonic() - started
            if cut_short:
                with MySQLSession(endpoint) as killer:
                    killer.execute(f"KILL QUERY {int(session.conn.thread_id())}")
        finally:
            with contextlib.suppress(pymysql.err.Error):
                cursor.close()  # drains what is in flight; a killed query ends with error 1317
    if rows == 0:
        return None
    return ReadSample(table.qualified_name, nbytes, rows, seconds)


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "<1 s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def copy_time_finding(
    config: Config, source: MySQLSession, *, sample: ReadSample | None, unsampled_why: str = "nothing to sample"
) -> Finding:
    """Data size / (sampled read rate x copy.workers), against the binlog retention."""
    schemas = list(config.migration.schemas)
    size = _data_bytes(source, schemas)
    workers = max(1, config.copy.workers)
    if sample is not None and sample.bytes_per_second > 0:
        rate = sample.bytes_per_second
        how = (f"sampled {sample.nbytes / 1024 / 1024:.3g} MB in {sample.seconds:.3g} s from {sample.table}: "
               f"{rate / 1024 / 1024:.3g} MB/s")
    else:
        rate = ASSUMED_MB_PER_S_PER_WORKER * 1024 * 1024
        how = f"{unsampled_why}: an assumed {ASSUMED_MB_PER_S_PER_WORKER:g} MB/s"
    seconds = size / (rate * workers)
    hours = seconds / 3600
    retention = config.binlog.retention_hours
    return Finding(
        "estimated copy time",
        f"{_mb(size)} of data",
        f"~{_duration(seconds)} ({how} x {workers} workers)",
        WARNING if hours > retention else OK,
        f"the copy may outlast binlog.retention_hours = {retention}: a streamer outage late in the copy could "
        "find its binlogs purged; raise the retention (within the platform's limit)" if hours > retention else "",
    )


def _set(value: str) -> set[str]:
    return {part.strip().upper() for part in value.split(",") if part.strip()}


def _same(check: str, s: dict[str, str], t: dict[str, str], name: str, remedy: str, *,
          status: str = WARNING) -> Finding:
    sv, tv = s.get(name, NA), t.get(name, NA)
    return Finding(check, sv, tv, OK if sv.upper() == tv.upper() else status, "" if sv == tv else remedy)


def _zone(v: dict[str, str]) -> str:
    zone = v.get("time_zone", NA)
    return f"SYSTEM ({v.get('system_time_zone', '?')})" if zone.upper() == "SYSTEM" else zone


def _mb(value: float) -> str:
    return f"{value / 1024 / 1024:.0f} MB"


def compare_servers(config: Config, source: MySQLSession, target: MySQLSession) -> list[Finding]:
    schemas = list(config.migration.schemas)
    s, t = _variables(source), _variables(target)
    target_mariadb = _is_mariadb(target)
    rows: list[Finding] = []

    sm, tm = s.get("sql_mode", ""), t.get("sql_mode", "")
    rows.append(Finding("sql_mode", sm or "''", tm or "''", OK if _set(sm) == _set(tm) else WARNING,
                        "" if _set(sm) == _set(tm) else
                        f"the application's statements behave differently: set the target's sql_mode = '{sm}'"))

    sz, tz = _zone(s), _zone(t)
    zone_same = sz == tz or {sz, tz} <= {"+00:00", "UTC", "SYSTEM (UTC)"}
    rows.append(Finding("time_zone", sz, tz, OK if zone_same else WARNING,
                        "" if zone_same else f"NOW() and TIMESTAMP values render differently: set the target's "
                        f"default-time-zone to the source's ({sz})"))
    sl, tl = _zone_tables_loaded(source), _zone_tables_loaded(target)
    named = "/" in s.get("time_zone", "")
    status = OK if tl or not sl else (BLOCKING if named else WARNING)
    rows.append(Finding("time zone tables loaded", "yes" if sl else "no", "yes" if tl else "no", status,
                        "" if status == OK else "named zones resolve to NULL on the target: load them "
                        "(mariadb-tzinfo-to-sql or mysql_tzinfo_to_sql /usr/share/zoneinfo | mysql mysql)"))

    rows.append(_same("lower_case_table_names", s, t, "lower_case_table_names",
                      "table names would not match: give the target the source's lower_case_table_names "
                      "(set at initialisation)", status=BLOCKING))
    rows.append(_same("character_set_server", s, t, "character_set_server",
                      "new tables and connections get another default: set the target's character_set_server"))
    rows.append(_same("collation_server", s, t, "collation_server",
                      "new tables and comparisons get another default: set the target's collation_server"))

    used = _used_collations(source, schemas)
    available = {str(r[0]) for r in target.rows("SELECT COLLATION_NAME FROM information_schema.COLLATIONS")}
    missing = sorted(used - available)
    rows.append(Finding("collations used by the schemas", ", ".join(sorted(used)) or "-",
                        "missing: " + ", ".join(missing) if missing else "all present",
                        BLOCKING if missing else OK,
                        "" if not missing else "the target cannot create these tables (e.g. utf8mb4_0900_ai_ci does "
                        "not exist on MariaDB before 11.4.5): convert them on the source or use a target that has them"))

    rows.append(_same("explicit_defaults_for_timestamp", s, t, "explicit_defaults_for_timestamp",
                      "TIMESTAMP columns without defaults behave differently: set it on the target as on the source"))

    sp, tp = int(s.get("max_allowed_packet", "0") or 0), int(t.get("max_allowed_packet", "0") or 0)
    wanted = math.ceil(sp * ROW_EVENT_GROWTH)
    status = BLOCKING if tp < sp else WARNING if tp < wanted else OK
    rows.append(Finding("max_allowed_packet", _mb(sp), _mb(tp), status,
                        "" if status == OK else f"a row near the source's limit is replayed as a BINLOG statement of "
                        f"about 4/3 its size: SET GLOBAL max_allowed_packet = {min(wanted, 1 << 30)} on the target"))

    for name in ("auto_increment_increment", "auto_increment_offset"):
        rows.append(_same(name, s, t, name, f"generated ids follow another pattern: set the target's {name}"))
    rows.append(_same("event_scheduler", s, t, "event_scheduler",
                      "events run (or stop running) after the cut-over: set the target's event_scheduler"))

    require_pk = t.get("sql_require_primary_key", NA).upper() in ("ON", "1")
    keyless = _keyless_tables(source, schemas) if require_pk else []
    rows.append(Finding("sql_require_primary_key", s.get("sql_require_primary_key", NA),
                        t.get("sql_require_primary_key", NA), BLOCKING if keyless else OK,
                        f"CREATE TABLE fails for tables without a primary key ({', '.join(keyless[:5])}): turn it "
                        "off on the target for the migration" if keyless else ""))

    image = s.get("binlog_row_image", NA).upper()
    rows.append(Finding("binlog_row_image", image, t.get("binlog_row_image", NA),
                        OK if image == "FULL" else BLOCKING,
                        "" if image == "FULL" else "set binlog_row_image=FULL on the source (RDS: parameter group)"))
    compression = s.get("binlog_transaction_compression", NA).upper()
    on = compression in ("ON", "1")
    rows.append(Finding("binlog_transaction_compression", compression, t.get("binlog_transaction_compression", NA),
                        BLOCKING if on else OK,
                        "set binlog_transaction_compression=OFF on the source for the migration" if on else ""))
    partial = "PARTIAL_JSON" in s.get("binlog_row_value_options", "").upper()
    rows.append(Finding("binlog_row_value_options", s.get("binlog_row_value_options", NA) or "''",
                        t.get("binlog_row_value_options", NA) or "''",
                        BLOCKING if partial and target_mariadb else OK,
                        "MariaDB cannot apply PARTIAL_JSON row events: set binlog_row_value_options='' on the source"
                        if partial and target_mariadb else ""))
    rows.append(Finding("gtid_mode", s.get("gtid_mode", NA), t.get("gtid_mode", NA), OK,
                        "recorded only; Oracle's mysqldump runs with --set-gtid-purged=OFF"
                        if s.get("gtid_mode", "").upper() == "ON" else ""))
    sro = t.get("super_read_only", NA).upper() in ("ON", "1")
    rows.append(Finding("target super_read_only", s.get("super_read_only", NA), t.get("super_read_only", NA),
                        BLOCKING if sro else OK,
                        "super_read_only refuses the migrator's own writes: SET GLOBAL super_read_only = OFF on the "
                        "target (the migrator keeps it read_only itself)" if sro else ""))

    rows.append(table_cache_finding(_table_count(source, schemas), s, t))

    try:
        sample = sample_read(config.source, schemas)
    except pymysql.err.MySQLError as exc:  # the report goes on, saying why its rate is assumed
        rows.append(copy_time_finding(config, source, sample=None, unsampled_why=f"sample failed ({exc})"))
    else:
        rows.append(copy_time_finding(config, source, sample=sample))
    return rows


def rds_findings(config: Config, platform: Any) -> list[Finding]:
    """The RDS side: retention limit and the source's free storage (CloudWatch)."""
    rows: list[Finding] = []
    retention = config.binlog.retention_hours
    rows.append(Finding("RDS binlog retention limit", f"binlog.retention_hours = {retention}",
                        f"RDS maximum {RDS_MAX_RETENTION_HOURS} h", BLOCKING if retention > RDS_MAX_RETENTION_HOURS
                        else OK, f"use at most {RDS_MAX_RETENTION_HOURS} (2160 h is Aurora's limit, not RDS's)"
                        if retention > RDS_MAX_RETENTION_HOURS else ""))
    metrics = platform.storage_metrics()
    free = metrics.get("free_storage_bytes")
    binlogs = metrics.get("binlog_disk_bytes")
    floor = float((config.rds.min_free_storage_mb if config.rds else 0) or 0) * 1024 * 1024
    if free is None:
        rows.append(Finding("source free storage", "no CloudWatch datapoint", "-", WARNING,
                            "FreeStorageSpace unknown: check it in the console before a long copy"))
    else:
        rows.append(Finding("source free storage", _mb(free) + (f" (binlogs {_mb(binlogs)})" if binlogs else ""),
                            f"floor {_mb(floor)}", BLOCKING if free < floor else OK,
                            "the retained binlogs would fill the source: free or add storage first"
                            if free < floor else ""))
    return rows


def diagnose(config: Config, *, platform: Any = None) -> list[Finding]:
    from migrator.preflight import open_session

    with open_session(config.source, "source") as source, open_session(config.target, "target") as target:
        rows = compare_servers(config, source, target)
    if config.rds is not None:
        if platform is None:
            from migrator.platforms.rds import RdsPlatform

            platform = RdsPlatform(config)
        rows += rds_findings(config, platform)
    return rows


def blocking(rows: list[Finding]) -> list[Finding]:
    return [row for row in rows if row.status == BLOCKING]


def render(rows: list[Finding]) -> list[str]:
    width = max(len(r.check) for r in rows)
    out = [f"{'check':<{width}}  {'status':<8}  source -> target"]
    for row in rows:
        out.append(f"{row.check:<{width}}  {row.status:<8}  {row.source} -> {row.target}")
        if row.remedy:
            out.append(f"{'':<{width}}  {'':<8}  fix: {row.remedy}")
    return out
