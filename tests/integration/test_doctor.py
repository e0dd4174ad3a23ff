"""`migrator doctor`: source vs target settings, OK / warning / blocking with the remedy (review D1, B12)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from migrator import doctor
from migrator.errors import EXIT_BAD_INPUT, EXIT_OK
from migrator.mysql.session import MySQLSession
from tests.conftest import MakeServer, admin_endpoint
from tests.harness import Sandbox, make_sandbox, stop_local_replicas
from tests.integration.test_bad_input import run_and_expect


@pytest.fixture
def box(make_server: MakeServer, tmp_path: Path) -> Iterator[Sandbox]:
    sandbox = make_sandbox(make_server, tmp_path)
    yield sandbox
    stop_local_replicas(sandbox)


def rows_of(result: Any) -> dict[str, dict[str, str]]:
    return {row["check"]: row for row in json.loads(result.stdout)["rows"]}


EVERY_CHECK = (
    "sql_mode", "time_zone", "time zone tables loaded", "lower_case_table_names", "character_set_server",
    "collation_server", "collations used by the schemas", "explicit_defaults_for_timestamp", "max_allowed_packet",
    "auto_increment_increment", "auto_increment_offset", "event_scheduler", "sql_require_primary_key",
    "binlog_row_image", "binlog_transaction_compression", "binlog_row_value_options", "gtid_mode",
    "table caches", "estimated copy time",
)
SAMPLED = re.compile(r"sampled ([0-9.e+-]+) MB in ([0-9.e+-]+) s from (\S+): ([0-9.e+-]+) MB/s x (\d+) workers")


def test_doctor_prints_the_table_for_the_sandbox(box: Sandbox) -> None:
    # Equal servers; the target gets 4/3 of the source's packet size, so nothing warns.
    box.target.execute("SET GLOBAL max_allowed_packet = 32 * 1024 * 1024")
    text = box.cli("doctor")
    assert text.returncode == EXIT_OK, text.stderr[-2000:]
    for check in EVERY_CHECK:
        assert check in text.stdout
    as_json = box.cli("doctor", "--json")
    assert as_json.returncode == EXIT_OK
    rows = rows_of(as_json)
    assert set(EVERY_CHECK) <= set(rows) and {r["status"] for r in rows.values()} == {"OK"}, rows
    assert rows["collations used by the schemas"]["target"] == "all present"
    # The copy time comes from a short read of the source's largest migrated table, not an assumed rate.
    sampled = SAMPLED.search(rows["estimated copy time"]["target"])
    assert sampled, rows["estimated copy time"]
    assert float(sampled[1]) > 0 and float(sampled[4]) > 0 and int(sampled[5]) == box.config().copy.workers
    assert sampled[3].split(".")[0] in box.config().migration.schemas
    plan = box.cli("plan")
    assert plan.returncode == EXIT_OK and "compatibility (migrator doctor):" in plan.stdout


def test_a_target_with_other_settings_warns_and_a_small_packet_blocks(box: Sandbox) -> None:
    box.target.execute("SET GLOBAL sql_mode = 'ANSI_QUOTES'", "SET GLOBAL time_zone = '+02:00'",
                       "SET GLOBAL max_allowed_packet = 1024 * 1024")
    result = box.cli("doctor", "--json")
    assert result.returncode == EXIT_BAD_INPUT
    rows = rows_of(result)
    assert rows["sql_mode"]["status"] == "warning" and "ANSI_QUOTES" in rows["sql_mode"]["target"]
    assert rows["time_zone"]["status"] == "warning" and rows["time_zone"]["target"] == "+02:00"
    assert rows["max_allowed_packet"]["status"] == "blocking"
    assert "SET GLOBAL max_allowed_packet" in rows["max_allowed_packet"]["remedy"]
    # The same blocking row stops `run` before step 1, nothing changed.
    run_and_expect(box, "max_allowed_packet: source 16 MB, target 1 MB", "SET GLOBAL max_allowed_packet")
    # Equal to the source is not enough: a row near the limit grows by 4/3 as a BINLOG statement.
    box.target.execute("SET GLOBAL max_allowed_packet = 16 * 1024 * 1024")
    rows = rows_of(box.cli("doctor", "--json"))
    assert rows["max_allowed_packet"]["status"] == "warning"


class MySQL80Source:
    """A MySQL 8.0 source as the manual documents its answers (no MySQL server runs here)."""

    VARIABLES: ClassVar[dict[str, str]] = {
        "sql_mode": "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
                    "NO_ENGINE_SUBSTITUTION",
        "time_zone": "UTC", "system_time_zone": "UTC", "lower_case_table_names": "0",
        "character_set_server": "utf8mb4", "collation_server": "utf8mb4_0900_ai_ci",
        "explicit_defaults_for_timestamp": "ON", "max_allowed_packet": str(64 * 1024 * 1024),
        "auto_increment_increment": "1", "auto_increment_offset": "1", "event_scheduler": "ON",
        "sql_require_primary_key": "OFF", "binlog_row_image": "FULL", "binlog_transaction_compression": "OFF",
        "binlog_row_value_options": "PARTIAL_JSON", "gtid_mode": "ON", "super_read_only": "OFF", "log_bin": "ON",
    }

    def rows(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        if sql.startswith("SHOW GLOBAL VARIABLES"):
            return list(self.VARIABLES.items())
        if "DEFAULT_COLLATION_NAME" in sql:
            return [("utf8mb4_0900_ai_ci",)]
        if "COLLATION" in sql:
            return [("utf8mb4_0900_ai_ci",), ("utf8mb4_bin",)]
        raise AssertionError(sql)

    def value(self, sql: str, args: Any = None) -> Any:
        if "CONVERT_TZ" in sql:
            return "2020-01-01 01:00:00"  # RDS ships the zone tables loaded
        if "DATA_LENGTH" in sql:
            return 10 * 1024**3
        if "COUNT(*)" in sql:
            return 12
        raise AssertionError(sql)


def test_mysql_80_to_mariadb_blocks_on_0900_collations_and_partial_json(box: Sandbox) -> None:
    config = box.config()
    with MySQLSession(admin_endpoint(box.target)) as target:
        rows = {r.check: r for r in doctor.compare_servers(config, MySQL80Source(), target)}  # type: ignore[arg-type]
    collations = rows["collations used by the schemas"]
    assert collations.status == "blocking" and "utf8mb4_0900_ai_ci" in collations.target
    assert rows["binlog_row_value_options"].status == "blocking"  # MariaDB cannot apply PARTIAL_JSON events
    assert rows["sql_mode"].status == "warning" and rows["collation_server"].status == "warning"
    assert rows["time zone tables loaded"].status == "warning"  # the throwaway target has none loaded
    assert rows["explicit_defaults_for_timestamp"].source == "ON"
    assert rows["max_allowed_packet"].status == "blocking"  # 64 MB source, 16 MB target


def test_doctor_for_the_embedded_sandbox_config(tmp_path: Path) -> None:
    """configs/sandbox.toml, prepared as `migrator demo` prepares it (its own servers and accounts)."""
    from migrator.config import load
    from migrator.demo import prepare_sandbox

    text = (Path(__file__).resolve().parents[2] / "configs" / "sandbox.toml").read_text()
    path = tmp_path / "sandbox.toml"
    path.write_text(text.replace('workdir = "../.migrator/demo"', f'workdir = "{tmp_path / "demo"}"'))
    config, source, target = prepare_sandbox(load(path), scale=1)
    try:
        findings = doctor.diagnose(config)
        lines = doctor.render(findings)
    finally:
        source.kill()
        target.kill()
    assert {f.check for f in findings} >= set(EVERY_CHECK)
    assert not doctor.blocking(findings), lines
    assert lines[0].startswith("check") and any(line.startswith("sql_mode") for line in lines)


def _bytes_sent(endpoint: Any) -> int:
    with MySQLSession(endpoint) as s:
        return int(s.rows("SHOW GLOBAL STATUS LIKE 'Bytes_sent'")[0][1])


def test_the_copy_sample_is_bounded_and_ends_its_query(make_server: MakeServer) -> None:
    """The source is production: the sample stops at its byte or time bound and the server stops reading."""
    server = make_server("src", 1)
    server.execute(
        "CREATE DATABASE d", "CREATE TABLE d.big (id INT PRIMARY KEY, pad VARCHAR(1000))",
        "INSERT INTO d.big SELECT seq, REPEAT('x', 1000) FROM d.seq_1_to_20000",
        "CREATE TABLE d.small (id INT PRIMARY KEY)", "INSERT INTO d.small VALUES (1)",
        "ANALYZE TABLE d.big, d.small", "CREATE DATABASE empty_one",
    )
    endpoint = admin_endpoint(server)
    sent_before = _bytes_sent(endpoint)
    sample = doctor.sample_read(endpoint, ["d"], max_bytes=1024 * 1024)
    # The server sent about the sample, not the 20 MB table (a client alone cannot stop a result: KILL QUERY).
    assert _bytes_sent(endpoint) - sent_before < 8 * 1024 * 1024
    assert sample is not None and sample.table == "d.big"
    assert 1024 * 1024 <= sample.nbytes < 1024 * 1024 + doctor.SAMPLE_FETCH * 1010
    assert sample.rows < 20000 and sample.bytes_per_second > 0
    by_time = doctor.sample_read(endpoint, ["d"], max_seconds=0)
    assert by_time is not None and by_time.rows == doctor.SAMPLE_FETCH  # one fetch, then the bound
    with MySQLSession(endpoint) as s:
        running = s.rows("SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
                         "AND INFO LIKE '%FROM `d`.`big`%'")
    assert running == []  # the cut-short SELECTs were killed, not left streaming the table
    # Nothing to read: the row falls back to the assumed rate and says so.
    assert doctor.sample_read(endpoint, ["empty_one"]) is None
    config = SimpleNamespace(migration=SimpleNamespace(schemas=("empty_one",)), copy=SimpleNamespace(workers=4),
                             binlog=SimpleNamespace(retention_hours=24))
    with MySQLSession(endpoint) as s:
        row = doctor.copy_time_finding(config, s, sample=None)  # type: ignore[arg-type]
    assert row.status == "OK" and "nothing to sample: an assumed 10 MB/s x 4 workers" in row.target
