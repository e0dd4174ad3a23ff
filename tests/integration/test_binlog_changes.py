"""Which tables a binlog range touched: the basis for re-checking only those during the write pause."""

from __future__ import annotations

from migrator.mysql.flavour import MARIADB_10_11
from migrator.mysql.positions import BinlogPosition
from migrator.tools.binlog_changes import tables_changed
from tests.conftest import MakeServer


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
