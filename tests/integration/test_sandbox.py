"""The demo's sandbox on real servers: the sample dataset's shapes, and the write workload's oracle
following a DNS switch from one server to another, surviving a killed server, and catching tampering."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pymysql
import pytest

from migrator.dns.local import LocalDns, create
from migrator.endpoint import Endpoint
from migrator.mysql.session import MySQLSession
from migrator.platforms.local_server import LocalServer, find_binary
from migrator.ports import DnsRecord
from migrator.sandbox import (
    APP_USER,
    WORKLOAD_TABLE_DDL,
    SampleDataset,
    WorkloadStats,
    WriteWorkload,
    create_sample_dataset,
)
from migrator.secrets import Secret
from migrator.tools.defaults_file import DefaultsFile
from tests.conftest import MakeServer, admin_endpoint

RECORD = "db.sandbox.internal"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def address(server: LocalServer) -> str:
    return f"127.0.0.1:{server.port}"


def app_endpoint(server: LocalServer, dataset: SampleDataset) -> Endpoint:
    return Endpoint("127.0.0.1", server.port, dataset.app_user, dataset.app_password)


def copy_table(source: Endpoint, target: Endpoint, schema: str, table: str) -> None:
    """mariadb-dump | mariadb, credentials in defaults files: what a cut-over's final copy would do."""
    with DefaultsFile(source) as source_cnf, DefaultsFile(target) as target_cnf:
        dump = subprocess.Popen(
            [find_binary("mariadb-dump", "mysqldump"), f"--defaults-extra-file={source_cnf}",
             "--single-transaction", "--hex-blob", schema, table],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert dump.stdout is not None
        load = subprocess.run(
            [find_binary("mariadb", "mysql"), f"--defaults-extra-file={target_cnf}", schema],
            stdin=dump.stdout, capture_output=True, check=False,
        )
        dump.stdout.close()
        dump_err = dump.stderr.read() if dump.stderr else b""
        assert dump.wait() == 0, dump_err
        assert load.returncode == 0, load.stderr


def counts(session: MySQLSession, sql: str) -> dict[str, int]:
    return {str(r[0]): int(r[1]) for r in session.rows(sql)}


def test_sample_dataset_has_every_shape_and_is_deterministic(make_server: MakeServer) -> None:
    source = make_server("source", server_id=1)
    dataset = create_sample_dataset(admin_endpoint(source), scale=1, seed=11)
    print(
        f"\nsample dataset scale 1: {sum(dataset.row_counts.values())} rows, "
        f"{dataset.bytes_on_disk / 1e6:.1f} MB data+index, built in {dataset.build_seconds:.2f} s"
    )
    assert 20e6 <= dataset.bytes_on_disk <= 40e6
    assert dataset.build_seconds < 10

    with MySQLSession(admin_endpoint(source)) as s:
        tables = counts(s, "SELECT table_schema, COUNT(*) FROM information_schema.tables"
                           " WHERE table_schema IN ('shop','hr') AND table_type = 'BASE TABLE' GROUP BY 1")
        assert tables == {"shop": 6, "hr": 3}
        for table, rows in dataset.row_counts.items():
            assert s.value(f"SELECT COUNT(*) FROM {table}") == rows, table
        assert dataset.row_counts["shop.customers"] == 15_000
        assert dataset.row_counts["shop.order_items"] == 60_000

        routines = s.rows("SELECT routine_type, routine_name, definer FROM information_schema.routines"
                          " WHERE routine_schema = 'shop' ORDER BY 1")
        owner = "app_owner@%"
        assert routines == [("FUNCTION", "order_total", owner), ("PROCEDURE", "place_order", owner)]
        assert s.rows("SELECT trigger_name, definer FROM information_schema.triggers"
                      " WHERE trigger_schema = 'shop'") == [("order_items_default_price", owner)]
        assert s.rows("SELECT table_name, definer FROM information_schema.views"
                      " WHERE table_schema = 'shop'") == [("customer_order_totals", owner)]
        assert s.rows("SELECT event_name, definer, status FROM information_schema.events"
                      " WHERE event_schema = 'shop'") == [("purge_old_page_views", owner, "ENABLED")]

        # Key shapes: no primary key at all on page_views, composite keys, secondary indexes.
        pk_columns = counts(s, "SELECT CONCAT(table_schema, '.', table_name), COUNT(*)"
                               " FROM information_schema.statistics"
                               " WHERE table_schema IN ('shop','hr') AND index_name = 'PRIMARY' GROUP BY 1")
        assert "shop.page_views" not in pk_columns
        assert pk_columns["shop.order_items"] == 2
        assert pk_columns["hr.salaries"] == 2
        assert s.value("SELECT COUNT(DISTINCT index_name) FROM information_schema.statistics"
                       " WHERE table_schema='shop' AND table_name='customers'") == 4

        # Awkward values: 0x00 inside blobs, emoji, NULLs, microseconds, negative decimals.
        assert s.value("SELECT COUNT(*) FROM shop.products WHERE image LIKE CONCAT(0x00, '%')") > 1000
        assert s.value("SELECT COUNT(*) FROM shop.page_views WHERE payload LIKE CONCAT(0x00, '%', 0x00)") > 0
        assert s.value("SELECT full_name FROM shop.customers WHERE id = 7").endswith(" 😀")
        assert s.value("SELECT COUNT(*) FROM shop.customers WHERE birth_date IS NULL") == 3_000
        assert s.value("SELECT COUNT(*) FROM shop.customers WHERE MICROSECOND(created_at) > 0") > 10_000
        assert s.value("SELECT MIN(balance) FROM shop.customers") < 0
        assert s.value("SELECT COUNT(*) FROM hr.salaries WHERE to_date IS NULL") == 1_000

        # The app account: DML and EXECUTE on shop/hr only, no SUPER, no READ ONLY ADMIN.
        grants = " ".join(r[0] for r in s.rows(f"SHOW GRANTS FOR `{APP_USER}`@`%`"))
        assert "SUPER" not in grants and "READ ONLY ADMIN" not in grants and "ALL PRIVILEGES" not in grants
        checksums = dict(s.rows("CHECKSUM TABLE " + ", ".join(dataset.tables)))

    with MySQLSession(app_endpoint(source, dataset)) as app:
        # The definer's procedure, function and trigger run for the app account.
        app.execute("CALL shop.place_order(1, 2, 3, @order_id)")
        order_id = app.value("SELECT @order_id")
        assert app.value("SELECT shop.order_total(%s)", (order_id,)) == 3 * app.value(
            "SELECT price FROM shop.products WHERE id = 2")
        assert app.value("SELECT orders FROM shop.customer_order_totals WHERE customer_id = 1") >= 1
        source.execute("SET GLOBAL read_only = 1")
        with pytest.raises(pymysql.err.OperationalError) as refused:
            app.execute("INSERT INTO shop.ledger (id, c) VALUES (999999, 0)")
        assert refused.value.args[0] == 1290
        source.execute("SET GLOBAL read_only = 0")

    # Same seed on another server: the same bytes in every table.
    twin = make_server("twin", server_id=2)
    twin_dataset = create_sample_dataset(admin_endpoint(twin), scale=1, seed=11)
    with MySQLSession(admin_endpoint(twin)) as s:
        twin_checksums = dict(s.rows("CHECKSUM TABLE " + ", ".join(twin_dataset.tables)))
    changed_by_place_order = {"shop.orders", "shop.order_items"}
    for table, checksum in checksums.items():
        if table not in changed_by_place_order:
            assert twin_checksums[table] == checksum, table


def test_workload_follows_the_dns_switch_and_verify_catches_tampering(
    make_server: MakeServer, tmp_path: Path
) -> None:
    source = make_server("source", server_id=1)
    target = make_server("target", server_id=2)
    dataset = create_sample_dataset(admin_endpoint(source))
    dns_path = tmp_path / "dns.json"
    create(dns_path, DnsRecord(RECORD, address(source), ttl=60))
    workload = WriteWorkload(dns_path, RECORD, dataset.app_user, dataset.app_password, rate_per_s=200, seed=7)
    workload.start()
    assert workload.first_id == dataset.ledger_max_id + 1

    started = time.monotonic()
    wait_until(lambda: workload.stats().ops_ok >= 300, "300 writes on the source")
    print(f"\n300 writes on the source in {time.monotonic() - started:.2f} s")

    # The cut-over: freeze the source, copy what it has, point the record at the target.
    source.execute("SET GLOBAL read_only = 1")
    frozen_at = time.monotonic()
    wait_until(lambda: workload.stats().ops_failed.get(1290, 0) >= 3, "read_only (1290) refusals")
    target.execute(
        "CREATE DATABASE shop",
        f"CREATE USER `{APP_USER}`@`%` IDENTIFIED BY '{dataset.app_password.reveal()}'",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON shop.* TO `{APP_USER}`@`%`",
    )
    copy_table(admin_endpoint(source), admin_endpoint(target), "shop", "ledger")
    switched_at = time.monotonic()
    change_id = LocalDns(dns_path).upsert(DnsRecord(RECORD, address(target), ttl=60))
    assert LocalDns(dns_path).in_sync(change_id)

    wait_until(
        lambda: workload.stats().ok_by_server.get(address(target), 0) >= 200, "200 writes on the target"
    )
    stats: WorkloadStats = workload.stop()
    print(
        f"workload: {stats.ops_ok} ok ({stats.ok_by_server}), failed {stats.ops_failed}, "
        f"in doubt {stats.in_doubt}, longest gap {stats.longest_gap_s:.3f} s "
        f"(freeze to switch {switched_at - frozen_at:.3f} s)"
    )
    assert stats.last_server == address(target)
    # The writer saw the cut-over as one gap from its last source write to its first target write. Not
    # necessarily its longest: on a busy machine (tests run two at a time) a write may stall for longer.
    assert stats.switch_gap_s is not None and stats.switch_gap_s >= switched_at - frozen_at
    assert stats.longest_gap_s >= stats.switch_gap_s
    assert stats.ops_failed[1290] >= 3
    assert stats.update_misses == 0

    verdict = workload.verify(admin_endpoint(target))
    assert verdict.ok, verdict.describe()
    assert verdict.checked_ids == stats.inserts_ok
    with MySQLSession(admin_endpoint(target)) as s:
        mine = (workload.first_id,)
        assert s.value("SELECT COUNT(*) FROM shop.ledger WHERE id >= %s", mine) == stats.inserts_ok
        assert s.value("SELECT SUM(c) FROM shop.ledger WHERE id >= %s", mine) == stats.updates_ok

    # The old source never saw the writes made after the switch.
    stale = workload.verify(admin_endpoint(source))
    assert not stale.ok
    assert len(stale.missing_ids) > 0

    # Tampering on the target is named precisely.
    with MySQLSession(admin_endpoint(target)) as s:
        ids = [int(r[0]) for r in s.rows(
            "SELECT id FROM shop.ledger WHERE id >= %s AND c > 0 ORDER BY id LIMIT 3", (workload.first_id,))]
        deleted, bumped, lowered = ids
        s.execute("DELETE FROM shop.ledger WHERE id = %s", (deleted,))
        s.execute("UPDATE shop.ledger SET c = c + 1 WHERE id = %s", (bumped,))
        s.execute("UPDATE shop.ledger SET c = c - 1 WHERE id = %s", (lowered,))
        stray = int(s.value("SELECT MAX(id) FROM shop.ledger")) + 10
        s.execute("INSERT INTO shop.ledger (id, c, writer) VALUES (%s, 0, 'intruder')", (stray,))
    tampered = workload.verify(admin_endpoint(target))
    assert not tampered.ok
    assert tampered.missing_ids == (deleted,)
    assert tampered.duplicated_ids == (bumped,)
    assert tampered.lost_update_ids == (lowered,)
    assert tampered.unexpected_ids == (stray,)
    assert "1 missing, 1 unexpected, 1 duplicated, 1 lost updates" in tampered.describe()


def test_workload_rides_out_killed_servers_and_tolerates_in_doubt_commits(
    make_server: MakeServer, tmp_path: Path
) -> None:
    source = make_server("source", server_id=1, extra_args=("--sync-binlog=1",))
    dataset = create_sample_dataset(admin_endpoint(source))
    dns_path = tmp_path / "dns.json"
    create(dns_path, DnsRecord(RECORD, address(source), ttl=60))
    workload = WriteWorkload(
        dns_path, RECORD, dataset.app_user, dataset.app_password, rate_per_s=1000, seed=3, retry_pause_s=0.02
    )
    workload.start()
    for _ in range(3):
        before = workload.stats().ops_ok
        wait_until(lambda before=before: workload.stats().ops_ok >= before + 100, "writes before the kill")
        source.kill()  # SIGKILL mid-stream: whatever was on the wire is in doubt
        failed = workload.stats().ops_failed_total
        wait_until(lambda failed=failed: workload.stats().ops_failed_total > failed, "the workload to notice")
        source.start()
    before = workload.stats().ops_ok
    wait_until(lambda: workload.stats().ops_ok >= before + 100, "writes after the last restart")
    stats = workload.stop()
    print(f"\nkilled 3 times: {stats.ops_ok} ok, failed {stats.ops_failed}, in doubt {stats.in_doubt}")
    assert set(stats.ops_failed) & {2003, 2013, 2006, 0}

    verdict = workload.verify(admin_endpoint(source))
    assert verdict.ok, verdict.describe()
    assert verdict.in_doubt_tolerated == stats.in_doubt


def test_workload_counts_a_missing_dns_record_and_keeps_trying(
    make_server: MakeServer, tmp_path: Path
) -> None:
    source = make_server("source", server_id=1)
    source.execute(
        "CREATE DATABASE shop",
        WORKLOAD_TABLE_DDL,
        "CREATE USER 'app'@'%' IDENTIFIED BY 'app-pass'",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON shop.* TO 'app'@'%'",
    )
    dns_path = tmp_path / "dns.json"
    workload = WriteWorkload(dns_path, RECORD, "app", Secret("app-pass"), rate_per_s=100, seed=1)
    workload.start(first_id=1)  # no record yet: the first id cannot come from the server
    wait_until(lambda: workload.stats().ops_failed.get(-1, 0) >= 2, "DNS failures")
    create(dns_path, DnsRecord(RECORD, address(source), ttl=60))
    wait_until(lambda: workload.stats().ops_ok >= 20, "writes once the record exists")
    stats = workload.stop()
    assert stats.last_server == address(source)
    assert workload.verify(admin_endpoint(source)).ok
