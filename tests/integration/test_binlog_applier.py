"""The exactly-once applier against real servers: equality, filters, crash safety, DDL markers, speed."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pymysql
import pytest

from migrator.errors import ApplyConflict
from migrator.mysql.flavour import MARIADB_10_11
from migrator.mysql.session import is_transient
from migrator.platforms.local_server import LocalServer, find_binary
from migrator.ports import SnapshotCoordinates
from migrator.tools.binlog_applier import (
    ApplyProgress,
    BinlogApplier,
    FaultHook,
    is_gtid_session_statement,
    lag_bytes,
)
from migrator.tools.binlog_streamer import ArchivedFile, BinlogStreamer, list_archive
from tests.conftest import MakeServer, admin_endpoint

TARGET_ARGS = ("--gtid-strict-mode=ON", "--sync-binlog=1", "--innodb-flush-log-at-trx-commit=1")
APP_TABLES = ("t", "nopk", "counters", "ledger", "stmt", "ctas")


def rows(server: LocalServer, sql: str) -> list[tuple[Any, ...]]:
    conn = server.root()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def master_status(server: LocalServer) -> tuple[str, int]:
    row = rows(server, "SHOW MASTER STATUS")[0]
    return str(row[0]), int(row[1])


def first_coordinates(server: LocalServer) -> SnapshotCoordinates:
    """The very start of the source's binlog: the whole history is applied, account statements included."""
    return SnapshotCoordinates(str(rows(server, "SHOW BINARY LOGS")[0][0]), 4)


def copy_binlogs(server: LocalServer, archive: Path) -> None:
    archive.mkdir(parents=True, exist_ok=True)
    for (name, _size) in rows(server, "SHOW BINARY LOGS"):
        shutil.copyfile(server.datadir / str(name), archive / str(name))


def table_rows(server: LocalServer, schema: str, table: str) -> list[tuple[Any, ...]]:
    columns = [r[0] for r in rows(server, f"SHOW COLUMNS FROM `{schema}`.`{table}`")]
    order = ", ".join(f"`{c}`" for c in columns)
    return rows(server, f"SELECT * FROM `{schema}`.`{table}` ORDER BY {order}")


def assert_app_equal(source: LocalServer, target: LocalServer, tables: tuple[str, ...] = APP_TABLES) -> None:
    for table in tables:
        ours, theirs = table_rows(target, "app", table), table_rows(source, "app", table)
        assert ours == theirs, f"app.{table}: {len(ours)} rows on the target, {len(theirs)} on the source"
        create = rows(source, f"SHOW CREATE TABLE app.`{table}`")[0][1]
        assert rows(target, f"SHOW CREATE TABLE app.`{table}`")[0][1] == create


def make_applier(
    target: LocalServer, archive: Path, start: SnapshotCoordinates, tmp_path: Path, *,
    group_commit: int = 50, fault_hook: FaultHook | None = None, schemas: frozenset[str] = frozenset({"app"}),
    max_chunk_bytes: int = 8 << 20,
) -> BinlogApplier:
    applier = BinlogApplier(
        admin_endpoint(target), archive, MARIADB_10_11, schemas=schemas, start=start,
        secrets_dir=tmp_path / "secrets", group_commit=group_commit, fault_hook=fault_hook,
        max_chunk_bytes=max_chunk_bytes,
    )
    applier.ensure_position_table()
    return applier


HEARTBEAT = "INSERT INTO mysql.rds_heartbeat2 VALUES (1, %s) ON DUPLICATE KEY UPDATE value=%s"


def write_mixed_workload(source: LocalServer) -> None:
    rnd = random.Random(7)
    conn = source.root()
    try:
        with conn.cursor() as cur:
            run = cur.execute
            run("CREATE DATABASE app")
            run("CREATE DATABASE other")
            run("CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(50) CHARACTER SET utf8mb4, "
                "l VARCHAR(20) CHARACTER SET latin1, b LONGBLOB, n INT NULL, d DATETIME(6), f DOUBLE)")
            run("CREATE TABLE app.nopk (a INT, b VARCHAR(20))")
            run("CREATE TABLE app.counters (id INT PRIMARY KEY, c INT NOT NULL DEFAULT 0)")
            run("CREATE TABLE app.ledger (id BIGINT AUTO_INCREMENT PRIMARY KEY, k INT, note TEXT)")
            run("CREATE TABLE app.stmt (id INT PRIMARY KEY, v VARCHAR(30))")
            run("CREATE TABLE other.x (id INT PRIMARY KEY, v INT)")
            run("CREATE TABLE mysql.rds_heartbeat2 (id INT PRIMARY KEY, value BIGINT)")
            run("INSERT INTO app.counters (id) VALUES " + ",".join(f"({i})" for i in range(1, 11)))
            for i in range(1, 121):
                blob = os.urandom(rnd.randint(0, 3000)) if i % 7 else None
                run("INSERT INTO app.t VALUES (%s, %s, %s, %s, %s, NOW(6), %s)",
                    (i, f"v{i} ✓ 😀" if i % 3 else None, "déjà vu", blob, i if i % 2 else None, i / 7))
                if i % 10 == 0:
                    run(HEARTBEAT, (i, i))
                    run("INSERT INTO other.x VALUES (%s, %s)", (i, i))
            conn.begin()  # a multi-row, multi-table transaction
            for i in range(1, 11):
                run("UPDATE app.counters SET c = c + 1 WHERE id = %s", (i,))
                run("INSERT INTO app.ledger (k, note) VALUES (%s, %s)", (i, "x" * i))
            run("UPDATE app.t SET v = CONCAT(COALESCE(v, ''), '!') WHERE id % 5 = 0")
            run("DELETE FROM app.t WHERE id % 11 = 0")
            conn.commit()
            for i in range(30):
                run("INSERT INTO app.nopk VALUES (%s, %s)", (i % 4, f"n{i}"))
            run("UPDATE app.nopk SET b = 'changed' WHERE a = 1")
            run("DELETE FROM app.nopk WHERE a = 2 LIMIT 3")
            run("ALTER TABLE app.t ADD COLUMN extra INT NOT NULL DEFAULT 7")
            run("UPDATE app.t SET extra = id * 2 WHERE id < 50")
            run("INSERT INTO app.t (id, v, extra) VALUES (500, 'after alter', 1)")
            # MariaDB logs CREATE ... SELECT as one transaction: the CREATE, then the rows.
            run("CREATE TABLE app.ctas (PRIMARY KEY (id)) SELECT id, v, b FROM app.t WHERE id < 40")
            # Statement-based DML on a migrated schema stops the applier (test_binlog_shapes.py): rows here.
            run("USE app")
            run("SET @who = 'stmt'")
            run("INSERT INTO stmt VALUES (1, @who), (2, 'two')")
            run("UPDATE stmt SET v = CONCAT(v, '+') WHERE id = 2")
            # Administrative statements are skipped like account statements.
            run("ANALYZE TABLE app.t")
            cur.fetchall()
            run("FLUSH PRIVILEGES")
            run("CREATE USER 'app_reader'@'%' IDENTIFIED BY 'Reader-pw-1'")
            run("GRANT SELECT ON app.* TO 'app_reader'@'%'")
            for i in range(1, 41):
                run("UPDATE app.counters SET c = c + 1 WHERE id = %s", (i % 10 + 1,))
                run(HEARTBEAT, (i, i))
    finally:
        conn.close()


def test_mixed_workload_applies_equal_and_position_matches_the_source(
    make_server: MakeServer, tmp_path: Path
) -> None:
    source = make_server("source", 1)
    target = make_server("target", 2, extra_args=TARGET_ARGS)
    start = first_coordinates(source)
    write_mixed_workload(source)
    source.execute("FLUSH BINARY LOGS")  # the apply crosses a file boundary
    source.execute("INSERT INTO app.counters VALUES (99, 1)")
    archive = tmp_path / "archive"
    copy_binlogs(source, archive)

    applier = make_applier(target, archive, start, tmp_path, group_commit=8)
    progress = applier.apply_available()
    assert_app_equal(source, target)
    assert applier.applied_position() == master_status(source) == progress.position
    assert progress.ddl >= 7  # CREATE DATABASE app, five CREATE TABLE, ALTER, CREATE ... SELECT
    assert progress.skipped > 40  # other.*, mysql.rds_*, accounts
    assert rows(target, "SHOW DATABASES LIKE 'other'") == []
    assert rows(target, "SELECT COUNT(*) FROM mysql.user WHERE user = 'app_reader'") == [(0,)]

    again = applier.apply_available()
    assert (again.transactions, again.skipped, again.position) == (0, 0, progress.position)
    assert lag_bytes(list_archive(archive), applier.applied_position(), master_status(source)) == 0


def counter_workload(source: LocalServer, transactions: int, first_id: int = 1) -> None:
    conn = source.root()
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE IF NOT EXISTS app")
            cur.execute("CREATE TABLE IF NOT EXISTS app.counters (id INT PRIMARY KEY, c INT NOT NULL)")
            cur.execute("CREATE TABLE IF NOT EXISTS app.ledger (id BIGINT PRIMARY KEY, k INT, note TEXT)")
            ids = ",".join(f"({i}, 0)" for i in range(1, 21))
            cur.execute(f"INSERT IGNORE INTO app.counters (id, c) VALUES {ids}")
            for n in range(first_id, first_id + transactions):
                conn.begin()
                cur.execute("UPDATE app.counters SET c = c + 1 WHERE id = %s", (n % 20 + 1,))
                cur.execute("INSERT INTO app.ledger (id, k, note) VALUES (%s, %s, %s)",
                            (n, n % 20 + 1, os.urandom(50).hex()))
                conn.commit()
    finally:
        conn.close()


class KillAt:
    """A fault hook: KILL the applier's own connection from another session at the n-th named point."""

    def __init__(self, target: LocalServer, point: str, nth: int) -> None:
        self.target, self.point, self.nth = target, point, nth
        self.seen = 0
        self.applier: BinlogApplier | None = None

    def __call__(self, name: str) -> None:
        if name != self.point:
            return
        self.seen += 1
        if self.seen == self.nth and self.applier is not None:
            self.target.execute(f"KILL {self.applier.connection_id}")


@pytest.mark.parametrize("point", ["apply.before_commit", "apply.after_commit"])
def test_killed_connection_mid_group_applies_exactly_once(
    make_server: MakeServer, tmp_path: Path, point: str
) -> None:
    source = make_server("source", 1)
    target = make_server("target", 2, extra_args=TARGET_ARGS)
    start = first_coordinates(source)
    counter_workload(source, 400)
    archive = tmp_path / "archive"
    copy_binlogs(source, archive)

    hook = KillAt(target, point, nth=6)
    crashing = make_applier(target, archive, start, tmp_path, group_commit=13, fault_hook=hook,
                            max_chunk_bytes=64 << 10)
    hook.applier = crashing
    with pytest.raises(pymysql.err.MySQLError) as killed:
        crashing.apply_available()
    assert is_transient(killed.value), killed.value  # what run() retries
    crashing.close()
    half = rows(target, "SELECT COUNT(*) FROM app.ledger")[0][0]
    assert 0 < half < 400

    resumed = make_applier(target, archive, start, tmp_path, group_commit=13)  # a new process, in effect
    resumed.apply_available()
    assert_app_equal(source, target, ("counters", "ledger"))
    assert rows(target, "SELECT SUM(c) FROM app.counters") == [(400,)]
    assert resumed.applied_position() == master_status(source)


def test_kills_at_random_moments_never_lose_or_repeat_a_transaction(
    make_server: MakeServer, tmp_path: Path
) -> None:
    source = make_server("source", 1)
    target = make_server("target", 2, extra_args=TARGET_ARGS)
    counter_workload(source, 0)  # the tables, before the start position: no DDL in the killed range
    counter_workload(target, 0)
    target.execute("UPDATE app.counters SET c = 0")
    start = SnapshotCoordinates(*master_status(source))
    # Enough transactions to be interrupted 10+ times at any apply speed seen here: with 1,500 and kills
    # after 2-30 ms, a fast run finished after 9.
    counter_workload(source, 3000)
    archive = tmp_path / "archive"
    copy_binlogs(source, archive)
    rnd = random.Random(20261125)
    kills = 0
    for _attempt in range(200):
        applier = make_applier(target, archive, start, tmp_path, group_commit=rnd.choice([1, 4, 25]))
        delay = rnd.uniform(0.002, 0.02)

        finished = threading.Event()

        def kill_later(
            applier: BinlogApplier = applier, delay: float = delay, finished: threading.Event = finished
        ) -> None:
            # The delay counts from the session's start: on a loaded machine connecting alone can take
            # longer than the delay, and a kill before it would hit nothing (a whole pass, no interruption).
            while applier.connection_id is None and not finished.wait(0.001):
                pass
            if finished.wait(delay) or applier.connection_id is None:
                return
            with contextlib.suppress(pymysql.err.MySQLError):  # already gone
                target.execute(f"KILL {applier.connection_id}")

        killer = threading.Thread(target=kill_later)
        killer.start()
        try:
            done = applier.apply_available().position == master_status(source)
        except pymysql.err.MySQLError as exc:
            assert is_transient(exc), exc
            kills += 1
            done = False
        finally:
            finished.set()
            killer.join()
            applier.close()
        if done:
            break
    assert applier.applied_position() == master_status(source)
    assert kills >= 10, "the campaign must actually interrupt the applier"
    assert rows(target, "SELECT SUM(c) FROM app.counters") == [(3000,)]
    assert_app_equal(source, target, ("counters", "ledger"))


def test_run_loop_over_a_live_stream_reconnects_after_a_kill(make_server: MakeServer, tmp_path: Path) -> None:
    source = make_server("source", 1)
    target = make_server("target", 2, extra_args=TARGET_ARGS)
    start = first_coordinates(source)
    archive = tmp_path / "archive"
    streamer = BinlogStreamer(admin_endpoint(source), archive, MARIADB_10_11, 777, secrets_dir=tmp_path / "s")
    streamer.start(start.file)
    hook = KillAt(target, "apply.before_commit", nth=3)
    applier = make_applier(target, archive, start, tmp_path, group_commit=10, fault_hook=hook)
    hook.applier = applier
    stop = threading.Event()
    thread = threading.Thread(target=applier.run, args=(stop, 0.05), daemon=True)
    thread.start()
    try:
        counter_workload(source, 100)
        source.execute("FLUSH BINARY LOGS")
        counter_workload(source, 150, first_id=101)
        deadline = time.monotonic() + 30
        while applier.applied_position() != master_status(source):
            assert time.monotonic() < deadline, "the run loop did not catch up"
            assert applier.error is None, applier.error
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
        streamer.stop()
    assert applier.error is None
    assert hook.seen >= 3
    assert rows(target, "SELECT SUM(c) FROM app.counters") == [(250,)]
    assert_app_equal(source, target, ("counters", "ledger"))


def test_stop_at_applies_up_to_that_position_only(make_server: MakeServer, tmp_path: Path) -> None:
    source = make_server("source", 1)
    target = make_server("target", 2)
    start = first_coordinates(source)
    counter_workload(source, 60)
    middle = master_status(source)
    counter_workload(source, 40, first_id=61)
    archive = tmp_path / "archive"
    copy_binlogs(source, archive)
    applier = make_applier(target, archive, start, tmp_path, group_commit=7)
    assert applier.apply_available(stop_at=middle).position == middle
    assert rows(target, "SELECT COUNT(*) FROM app.ledger") == [(60,)]
    assert rows(target, "SELECT SUM(c) FROM app.counters") == [(60,)]
    assert lag_bytes(list_archive(archive), middle, master_status(source)) == master_status(source)[1] - middle[1]
    assert applier.apply_available().position == master_status(source)
    assert rows(target, "SELECT COUNT(*) FROM app.ledger") == [(100,)]


def test_lag_bytes_across_files() -> None:
    files = [("b.000001", 1000), ("b.000002", 500), ("b.000003", 300)]
    assert lag_bytes(files, ("b.000001", 400), ("b.000003", 120)) == 600 + 500 + 120
    assert lag_bytes(files, ("b.000003", 120), ("b.000003", 120)) == 0
    assert lag_bytes(files, ("b.000003", 200), ("b.000002", 100)) == 0  # applied ahead of a stale head
    assert lag_bytes([ArchivedFile("b.000009", 50)], ("b.000009", 4), ("b.000010", 10)) == 46 + 10


def test_gtid_session_statements_are_recognised() -> None:
    assert is_gtid_session_statement(b"/*M!100001 SET @@session.gtid_seq_no=3*/")
    assert is_gtid_session_statement(b"/*M!100001 SET @@session.server_id=1*/")
    assert is_gtid_session_statement(b"SET @@SESSION.GTID_NEXT= 'ANONYMOUS'")
    assert not is_gtid_session_statement(b"SET @@session.sql_mode=1411383296")
    assert not is_gtid_session_statement(b"SET @@session.pseudo_thread_id=5")


def test_ddl_pending_marker_stops_with_operator_instructions(make_server: MakeServer, tmp_path: Path) -> None:
    source = make_server("source", 1)
    target = make_server("target", 2, extra_args=TARGET_ARGS)
    start = first_coordinates(source)
    counter_workload(source, 20)
    source.execute("ALTER TABLE app.ledger ADD COLUMN extra INT")
    counter_workload(source, 20, first_id=21)
    archive = tmp_path / "archive"
    copy_binlogs(source, archive)

    extra_column = (
        "SELECT COUNT(*) FROM information_schema.columns "
        "WHERE table_schema = 'app' AND table_name = 'ledger' AND column_name = 'extra'"
    )

    class CrashAfterDdl:
        def __call__(self, name: str) -> None:
            if name == "apply.ddl.after_ddl" and rows(target, extra_column) == [(1,)]:
                raise RuntimeError("crash between the DDL and its position")

    crashing = make_applier(target, archive, start, tmp_path, fault_hook=CrashAfterDdl())
    with pytest.raises(RuntimeError):
        crashing.apply_available()
    crashing.close()

    resumed = make_applier(target, archive, start, tmp_path)
    with pytest.raises(ApplyConflict) as conflict:
        resumed.apply_available()
    text = str(conflict.value)
    assert "ALTER TABLE app.ledger ADD COLUMN extra INT" in text
    assert "took effect" in text and "ddl_pending=0" in text
    # The operator checks: it did take effect, so follow the hint's first UPDATE.
    file, _pos, end = rows(target, "SELECT ddl_file, ddl_pos, ddl_end_pos FROM _migrator.apply_position")[0]
    target.execute(f"UPDATE _migrator.apply_position SET file='{file}', pos={end}, ddl_pending=0 WHERE id=1")
    resumed.apply_available()
    assert_app_equal(source, target, ("counters", "ledger"))
    assert resumed.applied_position() == master_status(source)

    # A marker set by hand is refused the same way.
    target.execute("UPDATE _migrator.apply_position SET ddl_pending=1, ddl_file='x', ddl_pos=1, "
                   "ddl_end_pos=2, ddl_text='DROP TABLE app.t' WHERE id=1")
    with pytest.raises(ApplyConflict, match=r"DROP TABLE app\.t"):
        resumed.apply_available()


def test_transaction_mixing_included_and_excluded_schemas_is_a_conflict(
    make_server: MakeServer, tmp_path: Path
) -> None:
    source = make_server("source", 1)
    target = make_server("target", 2)
    start = first_coordinates(source)
    source.execute(
        "CREATE DATABASE app", "CREATE DATABASE other", "CREATE TABLE app.a (id INT PRIMARY KEY)",
        "CREATE TABLE other.b (id INT PRIMARY KEY)", "INSERT INTO app.a VALUES (1)",
        "BEGIN", "INSERT INTO app.a VALUES (2)", "INSERT INTO other.b VALUES (2)", "COMMIT",
    )
    archive = tmp_path / "archive"
    copy_binlogs(source, archive)
    applier = make_applier(target, archive, start, tmp_path)
    with pytest.raises(ApplyConflict) as conflict:
        applier.apply_available()
    assert "['app']" in str(conflict.value) and "other" in str(conflict.value)
    assert rows(target, "SELECT id FROM app.a") == [(1,)]  # everything before it applied and committed


def test_target_ddl_error_clears_the_marker_and_names_the_statement(
    make_server: MakeServer, tmp_path: Path
) -> None:
    source = make_server("source", 1)
    target = make_server("target", 2)
    start = first_coordinates(source)
    source.execute("CREATE DATABASE app", "CREATE TABLE app.a (id INT PRIMARY KEY)")
    target.execute("CREATE DATABASE app", "CREATE TABLE app.a (id INT PRIMARY KEY)")
    archive = tmp_path / "archive"
    copy_binlogs(source, archive)
    applier = make_applier(target, archive, start, tmp_path)
    with pytest.raises(ApplyConflict, match="CREATE DATABASE app"):
        applier.apply_available()
    assert rows(target, "SELECT ddl_pending FROM _migrator.apply_position") == [(0,)]


def _bench_source(make_server: MakeServer, count: int) -> tuple[LocalServer, SnapshotCoordinates]:
    source = make_server("source", 1, extra_args=("--innodb-flush-log-at-trx-commit=0",))
    source.execute("CREATE DATABASE app", "CREATE TABLE app.b (id INT PRIMARY KEY, v VARCHAR(40))")
    start = SnapshotCoordinates(*master_status(source))
    conn = source.root()
    with conn.cursor() as cur:
        for i in range(count):
            cur.execute("INSERT INTO app.b VALUES (%s, %s)", (i, f"value {i}"))
    conn.close()
    return source, start


@pytest.mark.slow
def test_speed_against_the_mysqlbinlog_pipe(make_server: MakeServer, tmp_path: Path) -> None:
    count = 20_000
    source, start = _bench_source(make_server, count)
    archive = tmp_path / "archive"
    copy_binlogs(source, archive)
    ours = make_server("ours", 2, extra_args=TARGET_ARGS)
    pipe = make_server("pipe", 3, extra_args=TARGET_ARGS)
    for target in (ours, pipe):
        target.execute("CREATE DATABASE app", "CREATE TABLE app.b (id INT PRIMARY KEY, v VARCHAR(40))")

    results: dict[str, float] = {}
    for group in (1, 50):
        target = ours if group == 50 else make_server(f"ours{group}", 10 + group, extra_args=TARGET_ARGS)
        if group != 50:
            target.execute("CREATE DATABASE app", "CREATE TABLE app.b (id INT PRIMARY KEY, v VARCHAR(40))")
        applier = make_applier(target, archive, start, tmp_path, group_commit=group)
        began = time.perf_counter()
        progress: ApplyProgress = applier.apply_available()
        results[f"applier group_commit={group}"] = time.perf_counter() - began
        assert progress.transactions == count
        assert rows(target, "SELECT COUNT(*) FROM app.b") == [(count,)]

    file = archive / start.file
    began = time.perf_counter()
    binlog = subprocess.Popen(
        [find_binary("mariadb-binlog"), "--no-defaults", f"--start-position={start.position}", str(file)],
        stdout=subprocess.PIPE,
    )
    client = subprocess.run(
        [find_binary("mariadb"), "--no-defaults", f"--socket={pipe.socket_path}", "-uroot"],
        stdin=binlog.stdout, capture_output=True, check=False,
    )
    binlog.wait()
    results["mariadb-binlog | mariadb"] = time.perf_counter() - began
    assert client.returncode == 0, client.stderr[-500:]
    assert rows(pipe, "SELECT COUNT(*) FROM app.b") == [(count,)]
    for name, seconds in results.items():
        print(f"{name}: {count / seconds:,.0f} tx/s ({seconds:.2f} s for {count})")
