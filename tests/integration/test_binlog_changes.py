"""Which tables a binlog range touched: the basis for re-checking only those during the write pause."""

from __future__ import annotations

import shutil
from pathlib import Path

from migrator.mysql.checksum import compare_keys
from migrator.mysql.flavour import MARIADB_10_11
from migrator.mysql.positions import BinlogPosition
from migrator.mysql.schema import TableInfo, base_tables
from migrator.mysql.session import MySQLSession
from migrator.tools.binlog_changes import XaPrepare, rows_changed, tables_changed
from tests.conftest import MakeServer, admin_endpoint


def head(server) -> BinlogPosition:  # type: ignore[no-untyped-def]
    conn = server.root()
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
    conn.close()
    return BinlogPosition(str(file), int(pos))


def test_rows_name_their_tables_and_ddl_means_everything(make_server: MakeServer) -> None:
    server = make_server("src", 1)
    server.execute(
        "CREATE DATABASE d", "CREATE TABLE d.a (id INT PRIMARY KEY, v INT)", "CREATE TABLE d.b (id INT PRIMARY KEY)",
        "CREATE TABLE d.c (id INT PRIMARY KEY)", "INSERT INTO d.c VALUES (1)",
    )
    p0 = head(server)
    assert tables_changed(server.datadir, MARIADB_10_11, p0, p0) == set()
    server.execute("INSERT INTO d.a VALUES (1, 1), (2, 2)", "UPDATE d.a SET v = 3 WHERE id = 1",
                   "INSERT INTO d.b VALUES (5)", "DELETE FROM d.b")
    p1 = head(server)
    assert tables_changed(server.datadir, MARIADB_10_11, p0, p1) == {("d", "a"), ("d", "b")}
    server.execute("FLUSH BINARY LOGS", "UPDATE d.c SET id = 2")  # across a file boundary
    p2 = head(server)
    assert p2.file != p1.file
    assert tables_changed(server.datadir, MARIADB_10_11, p1, p2) == {("d", "c")}
    assert tables_changed(server.datadir, MARIADB_10_11, p0, p2) == {("d", "a"), ("d", "b"), ("d", "c")}
    server.execute("ALTER TABLE d.a ADD COLUMN w INT")
    assert tables_changed(server.datadir, MARIADB_10_11, p2, head(server)) is None


# --- fail closed (review A4.3) and statements that change no row (C1) --------------------------
def _three_files(server) -> tuple[BinlogPosition, BinlogPosition]:  # type: ignore[no-untyped-def]
    server.execute("CREATE DATABASE d", "CREATE TABLE d.a (id INT PRIMARY KEY)", "CREATE TABLE d.b (id INT PRIMARY KEY)")
    p0 = head(server)
    server.execute("INSERT INTO d.a VALUES (1)", "FLUSH BINARY LOGS", "INSERT INTO d.b VALUES (1)",
                   "FLUSH BINARY LOGS", "INSERT INTO d.b VALUES (2)")
    return p0, head(server)


def _archive(server, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    archive = tmp_path / "archive"
    archive.mkdir()
    for path in sorted(server.datadir.glob("*-bin.[0-9]*")):
        shutil.copy(path, archive / path.name)
    return archive


def test_a_missing_or_damaged_archive_file_means_everything_may_have_changed(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server("src", 1)
    p0, p1 = _three_files(server)
    archive = _archive(server, tmp_path)
    assert tables_changed(archive, MARIADB_10_11, p0, p1) == {("d", "a"), ("d", "b")}
    files = sorted(archive.glob("*-bin.[0-9]*"))
    first, middle = next(f for f in files if f.name == p0.file), files[-2]
    saved = first.read_bytes()
    first.unlink()  # the first file of the range: today only the later files' tables came back
    assert tables_changed(archive, MARIADB_10_11, p0, p1) is None
    first.write_bytes(saved)
    middle.rename(tmp_path / middle.name)  # a gap between files
    assert tables_changed(archive, MARIADB_10_11, p0, p1) is None
    (tmp_path / middle.name).rename(middle)
    data = bytearray(middle.read_bytes())
    data[300:340] = b"\xff" * 40  # damaged inside an event: the tool fails (CRC / read error)
    middle.write_bytes(bytes(data))
    assert tables_changed(archive, MARIADB_10_11, p0, p1) is None
    last = files[-1]
    last.write_bytes(last.read_bytes()[: p1.position - 10])  # shorter than the range
    assert tables_changed(archive, MARIADB_10_11, p0, p1) is None


def test_account_and_admin_statements_change_no_table(make_server: MakeServer) -> None:
    server = make_server("src", 1)
    server.execute("CREATE DATABASE d", "CREATE TABLE d.a (id INT PRIMARY KEY)")
    p0 = head(server)
    server.execute(
        "CREATE USER 'app'@'%' IDENTIFIED BY 'x'", "GRANT SELECT ON d.* TO 'app'@'%'",
        "ALTER USER 'app'@'%' IDENTIFIED BY 'y'", "FLUSH PRIVILEGES", "ANALYZE TABLE d.a",
        "OPTIMIZE TABLE d.a", "INSERT INTO d.a VALUES (1)", "DROP USER 'app'@'%'",
    )
    assert tables_changed(server.datadir, MARIADB_10_11, p0, head(server)) == {("d", "a")}


# --- keys of the changed rows (issue 13 item 1) --------------------------------------------------
def _tables(server, schemas: list[str]) -> list[TableInfo]:  # type: ignore[no-untyped-def]
    with MySQLSession(admin_endpoint(server)) as session:
        return base_tables(session, schemas)


def test_row_images_name_the_keys_of_every_changed_row(make_server: MakeServer) -> None:
    server = make_server("src", 1)
    server.execute(
        "CREATE DATABASE d",
        "CREATE TABLE d.u (id INT UNSIGNED PRIMARY KEY, v INT)",
        "CREATE TABLE d.s (a VARCHAR(20) CHARACTER SET latin1 NOT NULL, b BIGINT NOT NULL, c INT, PRIMARY KEY (a, b))",
        "CREATE TABLE d.bin (k BINARY(4) NOT NULL, v INT, UNIQUE KEY (k))",
        "CREATE TABLE d.heap (n INT, v VARCHAR(5))",
        "CREATE TABLE d.ts (t DATETIME PRIMARY KEY, v INT)",
        "CREATE TABLE d.quiet (id INT PRIMARY KEY)",
        "CREATE DATABASE other", "CREATE TABLE other.x (id INT PRIMARY KEY)",
        "INSERT INTO d.u VALUES (7, 0)", "INSERT INTO d.quiet VALUES (1)",
    )
    p0 = head(server)
    server.execute(
        "INSERT INTO d.u VALUES (4294967295, 1), (1, 1)",
        "UPDATE d.u SET id = 8 WHERE id = 7",  # the key moves: both ends are changed rows
        "DELETE FROM d.u WHERE id = 1",
        "INSERT INTO d.s VALUES ('a''b\\\\c\\n\\0\\té', -9223372036854775808, 1), ('plain', 5, 1)",
        "INSERT INTO d.s VALUES ('x\\\\x41', 1, 1)",  # the text \x41 prints like an escaped 'A'
        "INSERT INTO d.bin VALUES (X'61620000', 1)",
        "INSERT INTO d.heap VALUES (1, 'a')",
        "INSERT INTO d.ts VALUES ('2020-01-01 00:00:00', 1)",
        "INSERT INTO other.x VALUES (1)",
        "CREATE TABLE other.y (id INT)",  # DDL outside the migrated schemas
    )
    p1 = head(server)
    tables = _tables(server, ["d"])
    changes = rows_changed(server.datadir, MARIADB_10_11, p0, p1, tables=tables, schemas=["d"])
    assert changes is not None
    assert changes.keys[("d", "u")] == {(4294967295,), (1,), (7,), (8,)}
    # An ambiguous string gives every reading it can have (2^3 for the three \xNN of the first row):
    # the true key is always among them; a reading that is no key is found on neither side.
    s_keys = changes.keys[("d", "s")]
    assert {(b"a'b\\c\n\x00\t\xe9", -9223372036854775808), (b"plain", 5), (b"x\\x41", 1)} <= s_keys
    assert len(s_keys) == 8 + 1 + 2 and (b"xA", 1) in s_keys
    assert changes.keys[("d", "bin")] == {(b"ab\x00\x00",)}
    assert set(changes.whole) == {("d", "heap"), ("d", "ts")}
    assert ("d", "quiet") not in changes.tables()
    assert changes.covers(("d", "heap"), (1,)) and not changes.covers(("d", "u"), (2,))
    # every key read back is a real key: the rows are found by them
    with MySQLSession(admin_endpoint(server)) as session:
        s_table = next(t for t in tables if t.name == "s")
        found = session.rows("SELECT CAST(a AS BINARY), b FROM d.s")
        assert {tuple(r) for r in found} <= changes.keys[("d", "s")]
        assert s_table.key_columns == ("a", "b")
    # a DDL on a migrated table: nothing can be said
    server.execute("ALTER TABLE d.quiet ADD COLUMN w INT")
    assert rows_changed(server.datadir, MARIADB_10_11, p1, head(server), tables=tables, schemas=["d"]) is None


def test_keys_read_from_the_archive_find_their_rows_on_both_sides(make_server: MakeServer) -> None:
    """The keys the reader decodes (latin1 and utf8mb4 strings as bytes, BINARY padding, unsigned) look
    up exactly the changed rows; a corrupted one is named, the phantom readings of an ambiguous string
    are found on neither side."""
    source, target = make_server("src", 1), make_server("dst", 2)
    ddl = (
        "CREATE DATABASE d",
        "CREATE TABLE d.s (a VARCHAR(20) CHARACTER SET latin1 NOT NULL, b BIGINT UNSIGNED NOT NULL, c INT,"
        " PRIMARY KEY (a, b))",
        "CREATE TABLE d.u (k VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL PRIMARY KEY, c INT)",
        "CREATE TABLE d.bin (k BINARY(4) NOT NULL PRIMARY KEY, c INT)",
    )
    for server in (source, target):
        server.execute(*ddl)
    p0 = head(source)
    rows = (
        "INSERT INTO d.s VALUES ('é\\\\x41''', 18446744073709551615, 1), ('plain', 1, 1)",
        "INSERT INTO d.u VALUES ('Grüße 🙂', 1), ('b', 1)",
        "INSERT INTO d.bin VALUES (X'00610000', 1), (X'ff', 1)",
    )
    for server in (source, target):
        server.execute(*rows)
    target.execute(
        "UPDATE d.s SET c = 2 WHERE b = 18446744073709551615",
        "UPDATE d.u SET c = 2 WHERE k = 'Grüße 🙂'",
        "UPDATE d.bin SET c = 2 WHERE k = X'00610000'",
    )
    tables = _tables(source, ["d"])
    changes = rows_changed(source.datadir, MARIADB_10_11, p0, head(source), tables=tables, schemas=["d"])
    assert changes is not None
    with MySQLSession(admin_endpoint(source)) as src, MySQLSession(admin_endpoint(target)) as dst:
        for s in (src, dst):
            s.execute("SET SESSION time_zone = '+00:00'")
        found = {t.name: compare_keys(src, dst, t, changes.keys[(t.schema, t.name)]) for t in tables}
    assert found["s"].source_rows == found["s"].target_rows == 2 and found["s"].keys == 3  # one phantom reading
    assert found["s"].differing == {("é\\x41'".encode("latin1"), 18446744073709551615)}
    assert found["u"].differing == {("Grüße 🙂".encode(),)} and found["u"].source_rows == 2
    assert found["bin"].differing == {(b"\x00a\x00\x00",)} and found["bin"].source_rows == 2


# --- XA: the rows change at the XA COMMIT, a group with no rows of its own ------------------------
def test_an_xa_end_counts_the_rows_of_its_prepare_wherever_that_lies(make_server: MakeServer) -> None:
    """Before: (h, e] holding only the XA COMMIT of an UPDATE prepared before h reported nothing changed."""
    server = make_server("src", 1)
    server.execute("CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY, v INT)", "INSERT INTO d.t VALUES (1, 0), (2, 0)")
    tables, conn = _tables(server, ["d"]), server.root()

    def xa(name: str, key: int, end: str) -> tuple[XaPrepare, BinlogPosition, BinlogPosition]:
        """Prepare an UPDATE of ``key`` under XID ``name``; returns where the prepare is, h, and e past ``end``."""
        before = head(server)
        with conn.cursor() as cur:
            for sql in (f"XA START '{name}'", f"UPDATE d.t SET v = v + 1 WHERE id = {key}", f"XA END '{name}'",
                        f"XA PREPARE '{name}'"):
                cur.execute(sql)
            h = head(server)
            cur.execute(f"XA {end} '{name}'")
        return XaPrepare(before.file, before.position, h.position), h, head(server)

    def read(start: BinlogPosition, end: BinlogPosition, xa_open: dict[str, XaPrepare] | None = None):  # type: ignore[no-untyped-def]
        return rows_changed(server.datadir, MARIADB_10_11, start, end, tables=tables, schemas=["d"], xa_open=xa_open)

    p0 = head(server)
    prepared, h, e = xa("x", 1, "COMMIT")
    xid = "X'78',X'',1"  # as the binlog tool prints it, and the applier keeps it in _migrator.apply_xa
    committed = read(h, e, {xid: prepared})
    assert committed is not None and committed.keys == {("d", "t"): {(1,)}}
    assert read(h, e) is None  # a commit whose prepare is unknown: fail closed, never "nothing changed"
    both = read(p0, e)  # prepared and committed in the range
    assert both is not None and both.keys == {("d", "t"): {(1,)}}
    prepared, h, e = xa("y", 2, "ROLLBACK")
    rolled_back = read(h, e, {"X'79',X'',1": prepared})
    assert rolled_back is not None and rolled_back.keys == {("d", "t"): {(2,)}}
    conn.close()
