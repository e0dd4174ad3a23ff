"""Step 6 on real servers: schema copy, chunk planning and the parallel dump|load copy, with resume.

The snapshot and the target run in different default time zones (+05:30 and -08:00), so any
session that forgets to pin UTC moves TIMESTAMP keys and values and the checks below catch it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from migrator.copy import (
    SELECT_TSV,
    ChunkCopier,
    ChunkCopyFailed,
    CopyProgress,
    MemoryLedger,
    find_select_tsv,
)
from migrator.copy.load_data import LoadDataPath
from migrator.copy.planning import plan_copy
from migrator.errors import PreflightFailed
from migrator.mysql.checksum import compare_tables, row_counts
from migrator.mysql.chunking import Chunk, plan_chunks, plan_chunks_by_rows, plan_value_ranges
from migrator.mysql.flavour import MARIADB_10_11
from migrator.mysql.schema import (
    TableInfo,
    base_tables,
    copy_schema,
    non_transactional_tables,
    target_is_empty,
)
from migrator.mysql.session import MySQLSession
from migrator.platforms.local_server import LocalServer
from tests.conftest import MakeServer, admin_endpoint

SCHEMAS = ("shop", "audit-log")
SNAPSHOT_TZ = ("--default-time-zone=+05:30",)
TARGET_TZ = ("--default-time-zone=-08:00",)
ORDERS = 20_000

TAG_NAMES = [
    "it's",
    'say "hi"',
    "back\\slash",
    "emoji 🦀🎉",
    "tab\there",
    "",
    " leading space",
    "Robert'); DROP TABLE tags;--",
    "ünïcode",
    "nul\x00inside",
    "%_wild",
    "`tick`",
    "NULL",  # the word, not SQL NULL: `mariadb --batch` prints both alike
    "\\N",  # what LOAD DATA reads as SQL NULL, unless escaped
    "line\nbreak\r\n",
    "\\t not a tab",
]

DATASET = [
    "SET time_zone = '+00:00'",
    "SET sql_mode = CONCAT(@@sql_mode, ',NO_UNSIGNED_SUBTRACTION')",  # seq is unsigned; keys go negative
    "CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
    "CREATE DATABASE `audit-log` CHARACTER SET latin1 COLLATE latin1_swedish_ci",
    "USE shop",  # the seq_1_to_N tables need a current database
    """CREATE TABLE shop.orders (
        id BIGINT NOT NULL PRIMARY KEY,
        customer VARCHAR(100) NOT NULL,
        amount DECIMAL(20,6) NULL,
        created DATETIME(6) NOT NULL,
        updated TIMESTAMP(6) NULL DEFAULT NULL,
        note TEXT NULL,
        payload BLOB NULL,
        ratio DOUBLE NULL,
        weight FLOAT NULL,
        flags BIT(5) NULL,
        status ENUM('new','paid','shipped') NOT NULL DEFAULT 'new',
        KEY by_customer (customer)
    ) ENGINE=InnoDB""",
    f"""INSERT INTO shop.orders SELECT
        seq * 7 - 70000,
        CONCAT('customer ', seq % 997, IF(seq % 5 = 0, ' 🦀', ''), IF(seq % 11 = 0, ' O''Brien', '')),
        IF(seq % 13 = 0, NULL, seq * 12345.678901 - 500000000),
        TIMESTAMP('2020-01-01 00:00:00') + INTERVAL seq * 61 SECOND + INTERVAL seq % 999999 MICROSECOND,
        IF(seq % 3 = 0, NULL, FROM_UNIXTIME(1600000000 + seq * 37) + INTERVAL seq MICROSECOND),
        IF(seq % 4 = 0, NULL, REPEAT(CONCAT('note ', seq, ' ünïcode \\\\ back \\'q\\' '), 1 + seq % 3)),
        IF(seq % 6 = 0, NULL, UNHEX(CONCAT('00', MD5(seq), '00FF0A0D1A5C27'))),
        seq / 7,
        (seq % 100) / 4,
        seq % 32,
        ELT(1 + seq % 3, 'new', 'paid', 'shipped')
      FROM seq_1_to_{ORDERS}""",
    """INSERT INTO shop.orders (id, customer, created, note) VALUES
        (-9223372036854775808, 'min', '1000-01-01 00:00:00', NULL),
        (9223372036854775807, 'max', '9999-12-31 23:59:59.999999', 'last')""",
    """CREATE TABLE shop.order_items (
        order_id BIGINT NOT NULL, line SMALLINT NOT NULL, sku VARCHAR(32) NOT NULL, qty INT NULL,
        PRIMARY KEY (order_id, line)
    )""",
    """INSERT INTO shop.order_items SELECT (seq DIV 3) * 7 - 70000, seq % 3 - 1, CONCAT('SKU-', seq % 50),
        IF(seq % 9 = 0, NULL, seq % 17 - 8) FROM seq_1_to_6000""",
    "CREATE TABLE shop.tags (name VARCHAR(191) NOT NULL PRIMARY KEY, uses INT NOT NULL)",
    "INSERT INTO shop.tags SELECT CONCAT('tag-', seq), seq FROM seq_1_to_300",
    """CREATE TABLE shop.bin_keys (k VARBINARY(16) NOT NULL PRIMARY KEY, v INT NOT NULL)""",
    # Short prefixes collide, hence IGNORE; keys of 1 to 16 bytes.
    "INSERT IGNORE INTO shop.bin_keys SELECT UNHEX(LEFT(MD5(seq), 2 + 2 * (seq % 16))), seq"
    " FROM seq_1_to_2000",
    "INSERT IGNORE INTO shop.bin_keys VALUES (0x00, -1), (0x0000, -2), (0xFF, -3), (0x5C27, -4)",
    """CREATE TABLE shop.ts_keys (ts TIMESTAMP(6) NOT NULL, id INT NOT NULL, v VARCHAR(20),
        PRIMARY KEY (ts, id))""",
    """INSERT INTO shop.ts_keys SELECT TIMESTAMP('2021-03-28 00:00:00') + INTERVAL (seq DIV 2) * 97 SECOND,
        seq % 2, CONCAT('v', seq) FROM seq_1_to_3000""",
    "CREATE TABLE shop.events_log (msg VARCHAR(50) NULL, n INT NULL, at DATETIME NULL)",
    """INSERT INTO shop.events_log SELECT IF(seq % 7 = 0, NULL, CONCAT('event ', seq % 40)),
        IF(seq % 5 = 0, NULL, seq % 10), IF(seq % 3 = 0, NULL, '2022-02-02 02:02:02') FROM seq_1_to_500""",
    "CREATE TABLE shop.uniq_only (code CHAR(10) NOT NULL, val INT NULL, other INT NULL, UNIQUE KEY (other),"
    " UNIQUE KEY by_code (code))",
    "INSERT INTO shop.uniq_only SELECT CONCAT('c', LPAD(seq, 6, '0')), seq, NULL FROM seq_1_to_1000",
    "CREATE TABLE shop.enum_key (k ENUM('b','a','c') NOT NULL PRIMARY KEY, v INT)",
    "INSERT INTO shop.enum_key VALUES ('a', 1), ('b', 2), ('c', 3)",
    "CREATE TABLE `audit-log`.`entries` (id INT AUTO_INCREMENT PRIMARY KEY, txt VARCHAR(100))",
    "INSERT INTO `audit-log`.`entries` (txt) SELECT CONCAT('café n°', seq) FROM seq_1_to_200",
    "CREATE VIEW shop.v_orders AS SELECT id, customer FROM shop.orders",
    "CREATE TRIGGER shop.orders_bi BEFORE INSERT ON shop.orders FOR EACH ROW SET NEW.customer = 'trigger!'",
]


def build_rich_dataset(server: LocalServer) -> None:
    """The shared dataset: every awkward type and key shape, ~33k rows in 9 tables of 2 schemas."""
    conn = server.root()
    try:
        with conn.cursor() as cur:
            for sql in DATASET:
                cur.execute(sql)
            cur.executemany(
                "INSERT INTO shop.tags VALUES (%s, %s)", [(n, i) for i, n in enumerate(TAG_NAMES)]
            )
            cur.execute("ANALYZE TABLE shop.orders, shop.order_items, shop.tags, shop.bin_keys, shop.ts_keys")
            cur.fetchall()
    finally:
        conn.close()


def table_rows(server: LocalServer, table: TableInfo) -> list[tuple[Any, ...]]:
    """Every row, in UTC, in a deterministic order: the independent check next to the checksums."""
    conn = server.root()
    try:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
            cols = ", ".join(f"`{c.name}`" for c in table.columns)
            cur.execute(f"SELECT {cols} FROM {table.sql_name}")
            return sorted(cur.fetchall(), key=repr)
    finally:
        conn.close()


def assert_same_rows(snapshot: LocalServer, target: LocalServer, tables: Sequence[TableInfo]) -> None:
    for table in tables:
        assert table_rows(snapshot, table) == table_rows(target, table), table.qualified_name


@pytest.fixture
def pair(make_server: MakeServer) -> tuple[LocalServer, LocalServer]:
    snapshot = make_server("snapshot", 1, extra_args=SNAPSHOT_TZ)
    target = make_server("target", 2, extra_args=TARGET_TZ)
    build_rich_dataset(snapshot)
    return snapshot, target


@pytest.fixture
def sessions(pair: tuple[LocalServer, LocalServer]) -> Iterator[tuple[MySQLSession, MySQLSession]]:
    snapshot, target = pair
    with MySQLSession(admin_endpoint(snapshot)) as snap, MySQLSession(admin_endpoint(target)) as tgt:
        yield snap, tgt


def plan_all(session: MySQLSession, tables: Sequence[TableInfo], chunk_bytes: int) -> list[Chunk]:
    return [chunk for table in tables for chunk in plan_chunks(session, table, chunk_bytes)]


def copier_for(
    pair: tuple[LocalServer, LocalServer], tmp_path: Path, ledger: MemoryLedger, **kwargs: Any
) -> ChunkCopier:
    snapshot, target = pair
    return ChunkCopier(
        admin_endpoint(snapshot),
        admin_endpoint(target),
        MARIADB_10_11,
        workers=kwargs.pop("workers", 2),
        ledger=ledger,
        secrets_dir=tmp_path / "secrets",
        **kwargs,
    )


def test_catalog_reads_keys_and_engines(sessions: tuple[MySQLSession, MySQLSession]) -> None:
    snap, _ = sessions
    tables = {t.qualified_name: t for t in base_tables(snap, SCHEMAS)}
    assert "shop.v_orders" not in tables  # views are step 12's business
    assert tables["shop.orders"].key_columns == ("id",)
    assert tables["shop.order_items"].key_columns == ("order_id", "line")
    assert tables["shop.uniq_only"].key_columns == ("code",)  # the nullable unique key is passed over
    assert tables["shop.uniq_only"].key_name == "by_code"
    assert tables["shop.events_log"].key_columns == ()
    assert not tables["shop.enum_key"].key_is_range_safe
    assert tables["audit-log.entries"].column("txt").data_type == "varchar"
    assert non_transactional_tables(snap, SCHEMAS) == []
    snap.execute("CREATE TABLE shop.legacy (id INT PRIMARY KEY) ENGINE=MyISAM")
    assert non_transactional_tables(snap, SCHEMAS) == ["shop.legacy (MyISAM)"]


def test_chunks_tile_each_table(sessions: tuple[MySQLSession, MySQLSession]) -> None:
    snap, _ = sessions
    for table in base_tables(snap, SCHEMAS):
        chunks = plan_chunks_by_rows(snap, table, 777)
        counts = [
            int(snap.value(f"SELECT COUNT(*) FROM {table.sql_name} WHERE {c.where_sql()}")) for c in chunks
        ]
        assert sum(counts) == int(snap.value(f"SELECT COUNT(*) FROM {table.sql_name}")), table.qualified_name
        if table.name == "order_items":  # an integer-led key with 6000 rows: cut by interpolation
            assert min(counts[:-1]) >= 777 // 2 and max(counts) <= 2 * 777, counts
        elif table.name == "orders":
            # Interpolated too, but its extreme keys (-2^63, 2^63-1) put the other rows in one or two
            # cut ranges: those were walked, hence exact chunks between the two lone extremes.
            assert counts[0] == 1 and counts[-1] == 1 and max(counts) == 777, counts
            assert sum(n != 777 for n in counts[1:-1]) <= 2, counts
        else:
            assert all(n == 777 for n in counts[:-1]), table.qualified_name
        assert chunks[0].lower is None and chunks[-1].upper is None
        for before, after in itertools.pairwise(chunks):
            assert before.upper == after.lower
    orders = next(t for t in base_tables(snap, ["shop"]) if t.name == "orders")
    by_bytes = plan_chunks(snap, orders, 64 * 1024)
    assert 5 < len(by_bytes) < 400  # ~20k rows of a few hundred bytes each
    assert plan_chunks(snap, orders, 10**12) == [
        Chunk("shop", "orders", 0, ("id",), None, None),
        Chunk("shop", "orders", 1, (), None, None, kind="indexes"),  # by_customer, after the rows
    ]
    assert plan_chunks(snap, orders, 10**12, with_indexes=False) == [
        Chunk("shop", "orders", 0, ("id",), None, None)
    ]


def handler_reads(session: MySQLSession) -> int:
    """Index entries and rows this session's statements have read so far (walking a key reads each)."""
    names = ("Handler_read_next", "Handler_read_rnd_next", "Handler_read_first", "Handler_read_prev")
    status = dict(session.rows("SHOW SESSION STATUS LIKE 'Handler_read%'"))
    return sum(int(status[n]) for n in names)


def test_big_tables_are_cut_by_interpolating_their_integer_key_instead_of_walking_it(
    sessions: tuple[MySQLSession, MySQLSession],
) -> None:
    snap, _ = sessions
    snap.execute("USE shop")
    snap.execute("CREATE TABLE shop.dense (id INT UNSIGNED NOT NULL PRIMARY KEY, pad CHAR(32) NOT NULL)")
    snap.execute("INSERT INTO shop.dense SELECT seq, MD5(seq) FROM seq_1_to_12000")
    snap.execute("CREATE TABLE shop.pairs (a BIGINT NOT NULL, b INT NOT NULL, PRIMARY KEY (a, b))")
    snap.execute("INSERT INTO shop.pairs SELECT CAST(seq DIV 7 AS SIGNED) - 500, CAST(seq % 7 AS SIGNED) - 3 FROM seq_1_to_9000")
    # 5,000 dense keys, then 60 keys 10^15 apart: interpolation puts the dense run in one cut range.
    snap.execute("CREATE TABLE shop.bunched (id BIGINT NOT NULL PRIMARY KEY, v INT NOT NULL)")
    snap.execute("INSERT INTO shop.bunched SELECT seq, seq FROM seq_1_to_5000")
    snap.execute("INSERT INTO shop.bunched SELECT seq * 1000000000000000, seq FROM seq_1_to_60")
    snap.rows("ANALYZE TABLE shop.dense, shop.pairs, shop.bunched")
    tables = {t.name: t for t in base_tables(snap, ["shop"])}

    def plan_and_count(name: str) -> tuple[list[Chunk], list[int], int]:
        table = tables[name]
        before = handler_reads(snap)
        chunks = plan_chunks_by_rows(snap, table, 1000)
        reads = handler_reads(snap) - before
        counts = [int(snap.value(f"SELECT COUNT(*) FROM {table.sql_name} WHERE {c.where_sql()}")) for c in chunks]
        assert sum(counts) == int(snap.value(f"SELECT COUNT(*) FROM {table.sql_name}")), name
        assert chunks[0].lower is None and chunks[-1].upper is None
        assert all(a.upper == b.lower and a.upper is not None for a, b in itertools.pairwise(chunks)), name
        return chunks, counts, reads

    before = handler_reads(snap)
    plan_chunks_by_rows(snap, tables["dense"], 7000)  # under two chunks' worth: walked
    assert handler_reads(snap) - before >= 7000  # what the counter shows for a walk
    chunks, counts, reads = plan_and_count("dense")
    assert reads < 100
    assert 8 <= len(chunks) <= 16 and all(500 <= n <= 2000 for n in counts), counts
    chunks, counts, reads = plan_and_count("pairs")
    assert reads < 100
    assert all(500 <= n <= 2000 for n in counts), counts
    assert all(c.lower is None or len(c.lower) == 2 for c in chunks)  # whole keys: (a, b), never (a,)
    chunks, counts, reads = plan_and_count("bunched")
    assert max(counts) <= 1000 * 3, counts  # the dense run was walked into chunks of 1,000
    assert counts.count(1000) >= 4, counts
    assert reads < 6000  # that run only, not the whole table


def test_copy_schema_is_idempotent_and_refuses_a_different_table(
    sessions: tuple[MySQLSession, MySQLSession],
) -> None:
    snap, tgt = sessions
    tables = copy_schema(snap, tgt, SCHEMAS)
    assert {t.qualified_name for t in tables} == {t.qualified_name for t in base_tables(tgt, SCHEMAS)}
    assert tgt.value(
        "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='audit-log'"
    ) == ("latin1")
    assert tgt.value("SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'shop'") == 0
    assert tgt.value("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'shop'") == 0
    assert target_is_empty(tgt, SCHEMAS) == []
    copy_schema(snap, tgt, SCHEMAS)  # again: nothing to do
    tgt.execute("INSERT INTO shop.tags VALUES ('x', 1)")
    assert target_is_empty(tgt, SCHEMAS) == ["shop.tags"]
    tgt.execute("ALTER TABLE shop.order_items ADD COLUMN extra INT")
    with pytest.raises(PreflightFailed, match=r"shop\.order_items"):
        copy_schema(snap, tgt, SCHEMAS)


def test_copy_schema_keeps_timestamp_defaults_whatever_the_servers_time_zones(
    make_server: MakeServer,
) -> None:
    """SHOW CREATE prints a TIMESTAMP default in the session's zone and CREATE reads it in its own (A5).

    Snapshot at +01:00, target at +02:00: a default made in UTC must keep its instant, and the common
    legacy default '1970-01-01 00:00:01' must not fail with 1067 (it would be 1969 read at +02:00).
    """
    snapshot = make_server("snapshot", 1, extra_args=("--default-time-zone=+01:00",))
    target = make_server("target", 2, extra_args=("--default-time-zone=+02:00",))
    snapshot.execute(
        "SET SESSION time_zone = '+00:00'",
        "CREATE DATABASE z",
        """CREATE TABLE z.shifted (id INT PRIMARY KEY, a TIMESTAMP NOT NULL DEFAULT '2020-01-01 00:00:00',
            c TIMESTAMP(6) NULL DEFAULT '2038-01-19 03:14:07.999999',
            d TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)""",
        "CREATE TABLE z.legacy (id INT PRIMARY KEY, b TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:01')",
    )
    with MySQLSession(admin_endpoint(snapshot)) as snap, MySQLSession(admin_endpoint(target)) as tgt:
        copy_schema(snap, tgt, ["z"])
        copy_schema(snap, tgt, ["z"])  # a resume finds the tables identical
        for session in (snap, tgt):
            session.execute("INSERT INTO z.shifted (id) VALUES (1)")
            session.execute("INSERT INTO z.legacy (id) VALUES (1)")
        for session in (snap, tgt):
            # Instants, whatever the session's zone.
            assert session.rows("SELECT UNIX_TIMESTAMP(a), UNIX_TIMESTAMP(c) FROM z.shifted") == [
                (1577836800, Decimal("2147483647.999999"))
            ]
            assert session.value("SELECT UNIX_TIMESTAMP(b) FROM z.legacy") == 1
            session.execute("SET SESSION time_zone = '+00:00'")
        for table in ("shifted", "legacy"):
            assert snap.one(f"SHOW CREATE TABLE z.{table}") == tgt.one(f"SHOW CREATE TABLE z.{table}")


@pytest.mark.parametrize("fast_select", [True, False], ids=["select-tsv", "select-client"])
def test_parallel_copy_of_the_rich_dataset(
    pair: tuple[LocalServer, LocalServer],
    sessions: tuple[MySQLSession, MySQLSession],
    tmp_path: Path,
    fast_select: bool,
) -> None:
    if fast_select:
        needs_select_tsv()
    snapshot, target = pair
    snap, tgt = sessions
    tables = copy_schema(snap, tgt, SCHEMAS)
    chunks = plan_all(snap, tables, 16 * 1024)
    assert sum(1 for c in chunks if c.table == "orders") > 20
    progress: list[CopyProgress] = []
    ledger = MemoryLedger()
    copier = copier_for(pair, tmp_path, ledger, on_progress=progress.append, fast_select=fast_select)
    argv = copier.load_data_path.select_argv(tmp_path / "x.cnf", chunks[0])
    assert any(Path(arg).name == (SELECT_TSV if fast_select else "mariadb") for arg in argv)
    report = copier.copy(chunks)
    # The target allows LOCAL INFILE: every table goes through LOAD DATA, FLOAT ones included.
    assert {copier.method_for(c) for c in chunks if not c.is_indexes} == {"load-data"}

    expected = sum(row_counts(snap, tables).values())
    assert report.rows == expected
    assert report.chunks_done == len(chunks) and report.chunks_skipped == 0
    assert report.bytes > 2_000_000  # text of ~33k rows, blobs in hex
    assert set(ledger.done) == {c.chunk_id() for c in chunks}
    assert sum(rows for rows, _ in ledger.done.values()) == expected
    assert progress[-1].chunks_done == len(chunks) and progress[-1].fraction == 1.0
    assert progress[-1].as_fields()["percent"] == 100.0
    assert list((tmp_path / "secrets").iterdir()) == []  # defaults files are gone

    verify = compare_tables(admin_endpoint(snapshot), admin_endpoint(target), tables, chunk_rows=3000)
    assert verify.ok, verify.summary()
    assert verify.rows == expected
    assert_same_rows(snapshot, target, tables)
    # The trigger was not copied, so it did not rewrite customers during the load.
    assert tgt.value("SELECT COUNT(*) FROM shop.orders WHERE customer = 'trigger!'") == 0

    again = copier_for(pair, tmp_path, ledger).copy(chunks)
    assert again.chunks_skipped == len(chunks) and again.chunks_done == 0 and again.rows == 0


class CrashingLedger(MemoryLedger):
    """Dies like the orchestrator would, right after the target committed the N+1st chunk."""

    def __init__(self, survive: int) -> None:
        super().__init__()
        self.survive = survive

    def mark_done(self, chunk: Chunk, rows: int, bytes: int) -> None:
        if len(self.done) >= self.survive:
            raise RuntimeError("orchestrator crashed before journaling the chunk")
        super().mark_done(chunk, rows, bytes)


def test_resume_after_a_crash_reloads_partial_chunks_without_duplicates(
    pair: tuple[LocalServer, LocalServer], sessions: tuple[MySQLSession, MySQLSession], tmp_path: Path
) -> None:
    snapshot, target = pair
    snap, tgt = sessions
    tables = copy_schema(snap, tgt, SCHEMAS)
    chunks = plan_all(snap, tables, 16 * 1024)
    ledger = CrashingLedger(survive=7)
    with pytest.raises(RuntimeError, match="crashed"):
        copier_for(pair, tmp_path, ledger).copy(chunks)
    assert len(ledger.done) == 7
    # The 8th chunk (and maybe the one running beside it) committed on the target, unrecorded.
    recorded = sum(rows for rows, _ in ledger.done.values())
    assert sum(row_counts(tgt, tables).values()) > recorded

    # A partial earlier attempt of a later chunk, and stray rows in the keyless table.
    later = next(c for c in chunks if c.table == "orders" and c.index == 30)
    part = snap.rows(f"SELECT * FROM shop.orders WHERE {later.where_sql()} ORDER BY id LIMIT 5")
    assert len(part) == 5
    tgt.execute("SET time_zone = '+00:00'")
    for row in part:
        tgt.execute(f"INSERT INTO shop.orders VALUES ({', '.join(['%s'] * len(row))})", row)
    tgt.execute("INSERT INTO shop.events_log VALUES ('stray', 1, NULL), ('stray', 1, NULL)")

    ledger.survive = 10**9
    report = copier_for(pair, tmp_path, ledger).copy(chunks)
    assert report.chunks_skipped == 7
    assert report.chunks_done == len(chunks) - 7
    verify = compare_tables(admin_endpoint(snapshot), admin_endpoint(target), tables, chunk_rows=5000)
    assert verify.ok, verify.summary()
    assert_same_rows(snapshot, target, tables)


def _children(name: str, with_arg: bytes | None = None) -> list[int]:
    """PIDs of our own child processes running ``name`` (and having ``with_arg`` in their argv)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        ours = ppid == os.getpid() and cmdline and os.path.basename(cmdline[0]) == name.encode()
        if ours and (with_arg is None or with_arg in cmdline):
            found.append(int(entry.name))
    return found


# victim: (process name, an argument it has, what the failure says, the copier's fast_select)
VICTIMS = {
    "loader": ("mariadb", b"--local-infile=1", "mariadb (LOAD DATA) exited -9", True),
    "select-client": ("mariadb", b"--quick", "mariadb (select) exited -9", False),
    "select-tsv": (SELECT_TSV, None, f"{SELECT_TSV} (select) exited -9", True),
}


def needs_select_tsv() -> None:
    if find_select_tsv() is None:
        pytest.skip(f"{SELECT_TSV} is not built: scripts/bootstrap.sh builds it")


@pytest.mark.parametrize("victim", sorted(VICTIMS))
def test_loader_killed_mid_chunk_rolls_back_and_the_rerun_completes(
    pair: tuple[LocalServer, LocalServer],
    sessions: tuple[MySQLSession, MySQLSession],
    tmp_path: Path,
    victim: str,
) -> None:
    """Either end of the LOAD DATA pipe dies mid-chunk: nothing of the chunk stays committed."""
    name, marker, said, fast_select = VICTIMS[victim]
    if victim == "select-tsv":
        needs_select_tsv()
    snapshot, target = pair
    snap, tgt = sessions
    snap.execute("CREATE TABLE shop.big (id INT PRIMARY KEY, body LONGBLOB)")
    snap.execute(
        "INSERT INTO shop.big SELECT seq, REPEAT(UNHEX(MD5(seq)), 4000) FROM shop.seq_1_to_500"
    )  # ~32 MB
    tables = [t for t in copy_schema(snap, tgt, ["shop"]) if t.name == "big"]
    chunks = plan_all(snap, tables, 10**12)
    assert len(chunks) == 1
    ledger = MemoryLedger()
    killed: list[int] = []

    def kill_loader() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not killed:
            # Kill the loader once it is inserting rows, so its transaction is open mid-stream.
            inserting = tgt_watch.value(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                " WHERE INFO LIKE 'INSERT INTO `big`%' OR INFO LIKE 'LOAD DATA %`big`%'"
            )
            pids = _children(name, marker)
            if pids and inserting:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.01)

    with MySQLSession(admin_endpoint(target)) as tgt_watch:
        watcher = threading.Thread(target=kill_loader)
        watcher.start()
        with pytest.raises(ChunkCopyFailed) as failure:
            copier_for(pair, tmp_path, ledger, workers=1, attempts=1, fast_select=fast_select).copy(chunks)
        watcher.join()
    assert killed, f"the {victim} was never seen running"
    message = str(failure.value)
    assert "shop.big" in message and "(id) in [-inf, +inf)" in message
    assert said in message
    assert ledger.done == {}
    deadline = time.monotonic() + 20
    while tgt.value("SELECT COUNT(*) FROM information_schema.innodb_trx") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tgt.value("SELECT COUNT(*) FROM shop.big") == 0  # one transaction per chunk: all rolled back

    copier_for(pair, tmp_path, ledger).copy(chunks)
    assert row_counts(tgt, tables) == row_counts(snap, tables)
    assert compare_tables(admin_endpoint(snapshot), admin_endpoint(target), tables).ok


def test_a_failing_load_names_the_table_range_and_tool_error(
    pair: tuple[LocalServer, LocalServer], sessions: tuple[MySQLSession, MySQLSession], tmp_path: Path
) -> None:
    snap, tgt = sessions
    tables = [t for t in copy_schema(snap, tgt, ["shop"]) if t.name == "tags"]
    tgt.execute("ALTER TABLE shop.tags DROP COLUMN uses")
    chunks = plan_chunks_by_rows(snap, tables[0], 100)
    ledger = MemoryLedger()
    with pytest.raises(ChunkCopyFailed) as failure:
        copier_for(pair, tmp_path, ledger).copy(chunks)
    message = str(failure.value)
    assert "shop.tags (name) in [" in message
    assert ("ERROR 1136" in message and "Column count" in message) or (
        "ERROR 1054" in message and "uses" in message  # the LOAD DATA path names the column
    )
    assert ledger.done == {}
    assert "admin-Secret#1" not in message


# --- throughput --------------------------------------------------------------------------------


def _single_pipe(snapshot: LocalServer, target: LocalServer, schema: str, secrets: Path) -> float:
    """The baseline: one ``mariadb-dump db | mariadb db`` with the same options, timed."""
    from migrator.tools.defaults_file import DefaultsFile

    with (
        DefaultsFile(admin_endpoint(snapshot), parent=secrets) as src,
        DefaultsFile(admin_endpoint(target), parent=secrets) as dst,
    ):
        started = time.monotonic()
        dump = subprocess.Popen(
            [
                shutil.which("mariadb-dump") or "mariadb-dump",
                f"--defaults-extra-file={src}",
                "--no-create-info",
                "--skip-triggers",
                "--no-autocommit",
                "--skip-lock-tables",
                "--skip-add-locks",
                "--skip-disable-keys",
                "--hex-blob",
                "--skip-comments",
                "--no-tablespaces",
                schema,
            ],
            stdout=subprocess.PIPE,
        )
        load = subprocess.run(
            [shutil.which("mariadb") or "mariadb", f"--defaults-extra-file={dst}", "--batch", schema],
            stdin=dump.stdout,
            check=True,
        )
        assert dump.stdout is not None
        dump.stdout.close()
        assert dump.wait() == 0 and load.returncode == 0
        return time.monotonic() - started


@pytest.mark.slow
def test_throughput_against_a_single_dump_pipe(make_server: MakeServer, tmp_path: Path) -> None:
    snapshot = make_server("snapshot", 1, extra_args=("--innodb-buffer-pool-size=256M",))
    target = make_server("target", 2, extra_args=("--innodb-buffer-pool-size=256M",))
    snapshot.execute(
        "CREATE DATABASE bench",
        """CREATE TABLE bench.facts (id BIGINT PRIMARY KEY, a VARCHAR(64), b VARCHAR(255), c INT,
            d DATETIME(6), e DECIMAL(14,2), KEY (c))""",
        """INSERT INTO bench.facts SELECT seq, MD5(seq), REPEAT(SHA2(seq, 256), 2), seq % 1000,
            TIMESTAMP('2020-01-01') + INTERVAL seq SECOND, seq / 3 FROM bench.seq_1_to_400000""",
        "ANALYZE TABLE bench.facts",
    )
    with MySQLSession(admin_endpoint(snapshot)) as snap, MySQLSession(admin_endpoint(target)) as tgt:
        tables = copy_schema(snap, tgt, ["bench"])
        data_mb = float(
            snap.value("SELECT SUM(DATA_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA='bench'")
        )
        data_mb /= 1e6
        rows = int(snap.value("SELECT COUNT(*) FROM bench.facts"))
        results = {}
        for workers in (1, 2, 4):
            tgt.execute("TRUNCATE bench.facts")
            chunks = plan_all(snap, tables, 8 * 1024 * 1024)
            pair = (snapshot, target)
            report = copier_for(pair, tmp_path, MemoryLedger(), workers=workers).copy(chunks)
            assert report.rows == rows
            results[f"chunked x{workers} ({len(chunks)} chunks)"] = (report.seconds, report.bytes)
        tgt.execute("TRUNCATE bench.facts")
        results["single mariadb-dump | mariadb"] = (
            _single_pipe(snapshot, target, "bench", tmp_path / "s"),
            0,
        )
        assert tgt.value("SELECT COUNT(*) FROM bench.facts") == rows
    print(f"\n{rows} rows, {data_mb:.1f} MB of InnoDB data")
    for name, (seconds, dump_bytes) in results.items():
        print(
            f"{name:40s} {seconds:6.2f} s  {rows / seconds:9.0f} rows/s  {data_mb / seconds:6.1f} MB/s"
            + (f"  dump text {dump_bytes / 1e6:.1f} MB" if dump_bytes else "")
        )


def test_float_columns_copy_exactly_with_equal_checksums(make_server: MakeServer, tmp_path: Path) -> None:
    """mariadb-dump prints FLOAT with 6 significant digits; tables with FLOAT take the exact row path."""
    snapshot = make_server("snapshot", 1, extra_args=SNAPSHOT_TZ)
    target = make_server("target", 2, extra_args=TARGET_TZ)
    snapshot.execute(
        "CREATE DATABASE f",
        """CREATE TABLE f.t (id INT PRIMARY KEY, lossy FLOAT, scaled FLOAT(7,3), big FLOAT, d DOUBLE,
            m DECIMAL(30,10), s VARCHAR(40), b VARBINARY(8), bits BIT(5), ts TIMESTAMP(6) NULL,
            e ENUM('x','y') NULL, j JSON NULL, g POINT NULL, gen INT AS (id * 2) VIRTUAL)""",
        """INSERT INTO f.t (id, lossy, scaled, big, d, m, s, b, bits, ts, e, j, g) VALUES
            (1, 1.2345678, 1234.567, 3.4028234e38, 1.0000000000000002, -1, 'it''s \\\\ "q" 🦀', 0x00FF,
             b'10101', '2021-03-28 01:30:00.123456', 'y', '{"a": [1, 2]}', POINT(1.5, -2.25)),
            (2, -0.1, -0.001, -1.17549435e-38, 1e-300, 0.1, '', '', b'0', NULL, NULL, NULL, NULL),
            (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)""",
        "USE f",
        "INSERT INTO f.t (id, lossy, s) SELECT 100 + seq, seq / 7, CONCAT('row ', seq) FROM seq_1_to_3000",
    )
    with MySQLSession(admin_endpoint(snapshot)) as snap, MySQLSession(admin_endpoint(target)) as tgt:
        (table,) = copy_schema(snap, tgt, ["f"])
        chunks = plan_chunks_by_rows(snap, table, 700)
        assert len(chunks) == 5
        copier = copier_for((snapshot, target), tmp_path, MemoryLedger())
        assert copier.method == "auto"
        report = copier.copy(chunks)
        assert report.rows == 3003
        assert snap.rows(
            "SELECT id, CAST(lossy AS DOUBLE), CAST(big AS DOUBLE) FROM f.t ORDER BY id"
        ) == tgt.rows("SELECT id, CAST(lossy AS DOUBLE), CAST(big AS DOUBLE) FROM f.t ORDER BY id")
        assert tgt.value("SELECT CAST(lossy AS DOUBLE) FROM f.t WHERE id = 1") == 1.2345677614212036
        assert tgt.value("SELECT ST_AsText(g) FROM f.t WHERE id = 1") == "POINT(1.5 -2.25)"
    verify = compare_tables(admin_endpoint(snapshot), admin_endpoint(target), [table], chunk_rows=1000)
    assert verify.ok, verify.summary()
    assert_same_rows(snapshot, target, [table])


def test_a_stuck_chunk_stops_with_a_diagnosis_instead_of_hanging(
    make_server: MakeServer, tmp_path: Path
) -> None:
    """A target that never finishes a load (here: a table lock; in life: a full disk) fails the chunk."""
    snapshot, target = make_server("snapshot", 1), make_server("target", 2)
    snapshot.execute(
        "CREATE DATABASE d",
        "CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(10))",
        "INSERT INTO d.t VALUES (1, 'a'), (2, 'b')",
    )
    target.execute("CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(10))")
    blocker = target.root()
    with blocker.cursor() as cur:
        cur.execute("LOCK TABLES d.t WRITE")  # held for the whole test: every load waits behind it
    try:
        with MySQLSession(admin_endpoint(snapshot)) as s:
            tables = base_tables(s, ["d"])
            chunks = plan_all(s, tables, 1 << 20)
        copier = copier_for(
            (snapshot, target),
            tmp_path,
            MemoryLedger(),
            workers=1,
            attempts=1,
            chunk_timeout=2.0,
            method="dump",
        )
        started = time.monotonic()
        with pytest.raises(ChunkCopyFailed, match=r"d\.t .*(Lock wait timeout|timed out after 2.0 s)"):
            copier.copy([c for c in chunks if not c.is_indexes])
        assert time.monotonic() - started < 60
    finally:
        blocker.close()


def test_a_keyless_table_is_split_by_value_ranges_of_an_index_and_resumes_exactly(
    pair: tuple[LocalServer, LocalServer], sessions: tuple[MySQLSession, MySQLSession], tmp_path: Path
) -> None:
    """No primary or unique key: chunks are value ranges of a NOT NULL index; duplicates stay in one chunk."""
    snapshot, target = pair
    snap, tgt = sessions
    snap.execute(
        "CREATE TABLE shop.visits (at TIMESTAMP(0) NOT NULL, who INT NULL, page VARCHAR(40) NULL,"
        " KEY by_who (who), KEY by_at (at))"
    )
    # Runs of 50 equal timestamps, one run of 1,500 (longer than a chunk), and exact duplicate rows.
    snap.execute(
        "INSERT INTO shop.visits SELECT FROM_UNIXTIME(1700000000 + IF(seq BETWEEN 2001 AND 3500, 2001, seq) DIV 50),"
        " IF(seq % 4 = 0, NULL, seq % 13), IF(seq % 10 = 0, 'same', CONCAT('/p/', seq)) FROM shop.seq_1_to_6000"
    )
    snap.execute("INSERT INTO shop.visits SELECT * FROM shop.visits WHERE page = 'same' LIMIT 40")
    visits = next(t for t in base_tables(snap, ["shop"]) if t.name == "visits")
    assert visits.key_columns == () and visits.range_index == "by_at"  # by_who is nullable: passed over
    chunks = plan_value_ranges(snap, visits, 400)
    assert len(chunks) > 5 and all(c.key_columns == ("at",) and not c.unique for c in chunks)
    counts = [int(snap.value(f"SELECT COUNT(*) FROM shop.visits WHERE {c.where_sql()}")) for c in chunks]
    assert sum(counts) == 6040
    assert max(counts) >= 1500  # the long run is one chunk, never split
    assert "(values of a non-unique index)" in chunks[1].describe_range()
    assert Chunk.from_json(chunks[1].to_json()) == chunks[1]

    tables = copy_schema(snap, tgt, ["shop"])
    all_chunks = [*chunks, Chunk("shop", "visits", len(chunks), (), None, None, kind="indexes")]
    ledger = CrashingLedger(survive=3)
    with pytest.raises(RuntimeError, match="crashed"):
        copier_for(pair, tmp_path, ledger).copy(all_chunks)
    tgt.execute("SET time_zone = '+00:00'")
    tgt.execute("INSERT INTO shop.visits VALUES ('2030-01-01 00:00:00', 1, 'stray')")  # in the last range
    ledger.survive = 10**9
    scanned = int(snap.one("SHOW GLOBAL STATUS LIKE 'Handler_read_rnd_next'")[1])  # type: ignore[index]
    report = copier_for(pair, tmp_path, ledger).copy(all_chunks)
    assert report.chunks_skipped == 3
    # Each chunk's rows come through by_at. Left to the optimizer, the chunk of the 1,500-row run was
    # read by a table scan (6,167 rows read in all; 126 with the index), and so was every chunk of
    # the bench's keyless table, each a quarter of it.
    scanned = int(snap.one("SHOW GLOBAL STATUS LIKE 'Handler_read_rnd_next'")[1]) - scanned  # type: ignore[index]
    assert scanned < 1000, scanned
    visits_on_target = next(t for t in tables if t.name == "visits")
    assert table_rows(snapshot, visits_on_target) == table_rows(target, visits_on_target)
    assert tgt.value("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_NAME = 'visits'") == 2


def test_without_local_infile_on_the_target_the_dump_pipe_and_row_path_copy_exactly(
    make_server: MakeServer, tmp_path: Path
) -> None:
    """MySQL 8 ships with local_infile=OFF: the copy falls back to mysqldump | mysql (rows for FLOAT)."""
    snapshot = make_server("snapshot", 1, extra_args=SNAPSHOT_TZ)
    target = make_server("target", 2, extra_args=(*TARGET_TZ, "--local-infile=0"))
    build_rich_dataset(snapshot)
    pair = (snapshot, target)
    with MySQLSession(admin_endpoint(snapshot)) as snap, MySQLSession(admin_endpoint(target)) as tgt:
        tables = copy_schema(snap, tgt, SCHEMAS)
        chunks = plan_all(snap, tables, 64 * 1024)
    copier = copier_for(pair, tmp_path, MemoryLedger())
    report = copier.copy(chunks)
    assert {copier.method_for(c) for c in chunks if not c.is_indexes} == {"dump", "rows"}
    assert copier.method_for(next(c for c in chunks if c.table == "orders")) == "rows"  # FLOAT column
    assert report.chunks_done == len(chunks)
    verify = compare_tables(admin_endpoint(snapshot), admin_endpoint(target), tables, chunk_rows=5000)
    assert verify.ok, verify.summary()
    assert_same_rows(snapshot, target, tables)


@pytest.mark.parametrize("workers", [1, 3])
def test_the_copy_plan_takes_the_biggest_index_builds_first_and_tables_without_last(
    pair: tuple[LocalServer, LocalServer], sessions: tuple[MySQLSession, MySQLSession], workers: int
) -> None:
    snap, _ = sessions
    # More data than shop.orders but a far smaller index: by data size it would come first.
    snap.execute("CREATE TABLE shop.wide_rows (id INT PRIMARY KEY, body VARCHAR(3000) NOT NULL, k INT, KEY (k))")
    snap.execute("INSERT INTO shop.wide_rows SELECT seq, REPEAT('w', 3000), seq FROM shop.seq_1_to_2000")
    snap.rows("ANALYZE TABLE shop.wide_rows")
    tables = base_tables(snap, SCHEMAS)
    wide, orders = (next(t for t in tables if t.name == name) for name in ("wide_rows", "orders"))
    assert wide.data_length > orders.data_length and wide.index_length < orders.index_length
    plan = plan_copy(
        snap, tables, 64 * 1024, workers=workers, connect=lambda: MySQLSession(admin_endpoint(pair[0]))
    )
    order = list(dict.fromkeys(c.qualified_name for c in plan))
    builds = {c.qualified_name for c in plan if c.is_indexes}
    by_name = {t.qualified_name: t for t in tables}
    assert builds and len(builds) < len(tables)  # both kinds are present, so the order is tested
    # Every table that ends with an index build comes before every table that does not ...
    assert [name in builds for name in order] == sorted((name in builds for name in order), reverse=True)
    # ... the builds by the most index bytes first, the others by the most data first.
    index_sizes = [by_name[name].index_length for name in order if name in builds]
    assert index_sizes == sorted(index_sizes, reverse=True) and index_sizes[0] > index_sizes[-1]
    data_sizes = [by_name[name].data_length for name in order if name not in builds]
    assert data_sizes == sorted(data_sizes, reverse=True)
    assert order[0] == "shop.orders"
    # Planned in parallel or not, the chunks are the serial planner's, table by table.
    assert sorted(plan, key=lambda c: c.chunk_id()) == sorted(
        plan_all(snap, tables, 64 * 1024), key=lambda c: c.chunk_id()
    )


class GarblingSelect(LoadDataPath):
    """Its select sends one field too many per line, as a stream broken by an unescaped tab would."""

    def select_argv(self, defaults: Path, chunk: Chunk) -> list[str]:
        argv = super().select_argv(defaults, chunk)
        argv[-1] = argv[-1].replace(" FROM ", ", 'stray' FROM ", 1)
        return argv


def test_a_load_that_warns_keeps_nothing_and_names_the_warning(
    pair: tuple[LocalServer, LocalServer], sessions: tuple[MySQLSession, MySQLSession], tmp_path: Path
) -> None:
    snap, tgt = sessions
    tables = [t for t in copy_schema(snap, tgt, SCHEMAS) if t.name == "tags"]
    chunks = [c for c in plan_all(snap, tables, 10**12) if not c.is_indexes]
    copier = copier_for(pair, tmp_path, MemoryLedger(), workers=1, attempts=1)
    copier.load_data_path = GarblingSelect(copier.context, select_tool=copier.load_data_path.select_tsv)
    with pytest.raises(ChunkCopyFailed, match=r"LOAD DATA gave \d+ warning\(s\) beyond .*, so nothing of the chunk was kept"):
        copier.copy(chunks)
    assert tgt.value("SELECT COUNT(*) FROM shop.tags") == 0
