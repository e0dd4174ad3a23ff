from __future__ import annotations

from migrator.mysql.flavour import MARIADB_10_11, MYSQL_8_0, MYSQL_8_4, detect
from migrator.mysql.positions import BinlogPosition, lag_bytes
from migrator.ports import SnapshotCoordinates


def test_detect() -> None:
    assert detect("10.11.19-MariaDB-0+deb12u1") == MARIADB_10_11
    assert detect("8.0.36") == MYSQL_8_0
    assert detect("8.4.3-log") == MYSQL_8_4


def test_statements_per_dialect() -> None:
    assert MARIADB_10_11.replica_status_sql == "SHOW SLAVE STATUS"
    assert MYSQL_8_0.replica_status_sql == "SHOW REPLICA STATUS"
    assert MARIADB_10_11.binary_log_status_sql == "SHOW MASTER STATUS"
    assert MYSQL_8_0.binary_log_status_sql == "SHOW MASTER STATUS"
    assert MYSQL_8_4.binary_log_status_sql == "SHOW BINARY LOG STATUS"  # 8.4 removed SHOW MASTER STATUS
    assert MYSQL_8_4.stop_replica_sql == "STOP REPLICA" and MARIADB_10_11.stop_replica_sql == "STOP SLAVE"
    assert MYSQL_8_4.reset_replica_all_sql == "RESET REPLICA ALL"
    sql, args = MYSQL_8_4.change_source_sql(host="h", port=1, user="u", password="p", log_file="f", log_pos=4)
    assert sql.startswith("CHANGE REPLICATION SOURCE TO SOURCE_HOST") and args == ("h", 1, "u", "p", "f", 4)
    sql, _ = MARIADB_10_11.change_source_sql(
        host="h", port=1, user="u", password="p", log_file="f", log_pos=4
    )
    assert sql.startswith("CHANGE MASTER TO") and "MASTER_USE_GTID=no" in sql


def test_tools_and_streamer_option() -> None:
    assert MARIADB_10_11.binlog_tool[0] == "mariadb-binlog" and MYSQL_8_0.binlog_tool[0] == "mysqlbinlog"
    assert MARIADB_10_11.streamer_server_id_option(9) == "--stop-never-slave-server-id=9"
    assert MYSQL_8_0.streamer_server_id_option(9) == "--connection-server-id=9"


def test_read_only_statements_never_super_read_only() -> None:
    """A MySQL target under super_read_only refuses the migrator's own writes, SUPER included (review B2)."""
    assert MARIADB_10_11.read_only_statements(True) == ["SET GLOBAL read_only = ON"]
    for flavour in (MYSQL_8_0, MYSQL_8_4):
        assert flavour.read_only_statements(True) == ["SET GLOBAL read_only = ON"]
        assert flavour.read_only_statements(False) == ["SET GLOBAL read_only = OFF"]  # also clears super_read_only
        assert not any("super_read_only" in s for on in (True, False) for s in flavour.read_only_statements(on))


def test_mysql_target_writes_through_read_only_need_connection_admin() -> None:
    """The grant table holds what lets the migrator write to its read_only MySQL target (review B2)."""
    from migrator.grants import TABLE

    writer = [n for n in TABLE if n.server == "target" and n.statements.startswith("write while read_only")]
    assert len(writer) == 1 and writer[0].when == "always"
    assert {p for a in writer[0].mysql for p in a.privileges} == {"CONNECTION_ADMIN", "SUPER"}
    setter = [n for n in TABLE if n.server == "target" and n.statements.startswith("SET GLOBAL read_only")]
    assert {p for a in setter[0].mysql for p in a.privileges} == {"SYSTEM_VARIABLES_ADMIN", "SUPER"}


def test_coordinates_pair_relay_master_file_with_exec_pos() -> None:
    mariadb_row = {
        "Master_Log_File": "mysql-bin.000009",
        "Read_Master_Log_Pos": 900,
        "Relay_Master_Log_File": "mysql-bin.000008",
        "Exec_Master_Log_Pos": 555,
        "Gtid_IO_Pos": "0-1-7",
    }
    assert MARIADB_10_11.replica_coordinates(mariadb_row) == SnapshotCoordinates(
        "mysql-bin.000008", 555, "0-1-7"
    )
    assert not MARIADB_10_11.replica_caught_up(mariadb_row)
    mysql_row = {
        "Source_Log_File": "binlog.000002",
        "Read_Source_Log_Pos": 77,
        "Relay_Source_Log_File": "binlog.000002",
        "Exec_Source_Log_Pos": 77,
        "Executed_Gtid_Set": "",
        "Replica_IO_Running": "Yes",
        "Replica_SQL_Running": "Yes",
        "Seconds_Behind_Source": 0,
    }
    assert MYSQL_8_0.replica_coordinates(mysql_row) == SnapshotCoordinates("binlog.000002", 77, None)
    assert MYSQL_8_0.replica_threads_running(mysql_row) == (True, True)
    assert MYSQL_8_0.replica_caught_up(mysql_row)
    assert MYSQL_8_0.replica_lag_seconds(mysql_row) == 0.0


def test_lag_bytes_across_files() -> None:
    files = [("b.000001", 1000), ("b.000002", 500), ("b.000003", 300)]
    assert lag_bytes(files, BinlogPosition("b.000003", 100), BinlogPosition("b.000003", 300)) == 200
    assert (
        lag_bytes(files, BinlogPosition("b.000001", 900), BinlogPosition("b.000003", 200)) == 100 + 500 + 200
    )
    assert lag_bytes(files, BinlogPosition("b.000003", 300), BinlogPosition("b.000003", 300)) == 0


def test_prepared_xa_rows_per_dialect() -> None:
    """MySQL 8 hex-encodes XA RECOVER CONVERT XID's data; MariaDB gives the bytes (step 3 names them)."""
    from migrator.mysql.xa import from_recover_row

    assert MYSQL_8_0.xa_recover_sql == "XA RECOVER CONVERT XID" and MARIADB_10_11.xa_recover_sql == "XA RECOVER"
    binary = from_recover_row(MYSQL_8_0, (7, 3, 1, "0x0102ff62"))
    assert (binary.format_id, binary.gtrid, binary.bqual) == (7, b"\x01\x02\xff", b"b")
    assert binary.readable == binary.sql == "X'0102ff',X'62',7"  # as XA COMMIT takes it
    named = from_recover_row(MARIADB_10_11, (1, 6, 0, b"app-xa"))
    assert named.readable == "X'6170702d7861',X'',1 ('app-xa')"
    assert from_recover_row(MYSQL_8_4, (1, 6, 0, b"0x6170702d7861")) == named
