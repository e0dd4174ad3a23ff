"""The mariadb-binlog text parser on output captured from MariaDB 10.11 (trimmed), no servers."""

from __future__ import annotations

import pytest

from migrator.tools.binlog_text import (
    BinlogParseError,
    Incident,
    PositionMarker,
    SessionStatement,
    Statement,
    Transaction,
    Unit,
    account_statement_kind,
    parse,
    statement_tables,
)

# Real output shapes: a DDL with `use` and the client charset command, a row transaction whose
# annotated query holds a line that looks like a header, a statement-based transaction with a user
# variable, a multi-line literal and non-UTF-8 bytes, a rolled-back transaction, an incident, a rotate.
SAMPLE = b"""/*!50530 SET @@SESSION.PSEUDO_SLAVE_MODE=1*/;
/*!40019 SET @@session.max_delayed_threads=0*/;
/*!50003 SET @OLD_COMPLETION_TYPE=@@COMPLETION_TYPE,COMPLETION_TYPE=0*/;
DELIMITER /*!*/;
# at 4
#261125  7:59:36 server id 1  end_log_pos 256 CRC32 0x1366162a 	Start: binlog v 4, server v 10.11.19-MariaDB-log created 261125
# Warning: this binlog is either in use or was not closed properly.
ROLLBACK/*!*/;
BINLOG '
aJUGaw8BAAAA/AAAAAABAAABAAQAMTAuMTEuMTktTWFyaWFEQi0wK2RlYjEydTEtbG9nAAAAAAAA
AAAAAAAAAAAAAAAAAABolQZrEzgNAAgAEgAEBAQEEgAA5AAEGggAAAAICAgCAAAACgoKAAAAAAAA
'/*!*/;
# at 256
#261125  7:59:36 server id 1  end_log_pos 285 CRC32 0x3c403fc7 	Gtid list []
# at 285
#261125  7:59:36 server id 1  end_log_pos 328 CRC32 0x0af14807 	Binlog checkpoint mysql-bin.000001
# at 328
#261125  7:59:36 server id 1  end_log_pos 370 CRC32 0x6a7ba0d4 	GTID 0-1-1 ddl
/*M!100101 SET @@session.skip_parallel_replication=0*//*!*/;
/*M!100001 SET @@session.gtid_domain_id=0*//*!*/;
/*M!100001 SET @@session.server_id=1*//*!*/;
/*M!100001 SET @@session.gtid_seq_no=1*//*!*/;
# at 370
#261125  7:59:36 server id 1  end_log_pos 451 CRC32 0x8b94428a 	Query	thread_id=5	exec_time=0	error_code=0	xid=0
use `we``ird`/*!*/;
SET TIMESTAMP=1795593576/*!*/;
SET @@session.sql_mode=1411383296/*!*/;
/*!\\C utf8mb4 *//*!*/;
SET @@session.character_set_client=utf8mb4,@@session.collation_connection=45,@@session.collation_server=45/*!*/;
create table t (id int primary key, v varchar(20), b blob)
/*!*/;
# at 451
#261125  7:59:36 server id 1  end_log_pos 493 CRC32 0xf4fdfe19 	GTID 0-1-2 cid=17 trans
/*M!100001 SET @@session.gtid_seq_no=2*//*!*/;
START TRANSACTION
/*!*/;
# at 493
# at 560
#261125  7:59:36 server id 1  end_log_pos 560 CRC32 0x8c21b94e 	Annotate_rows:
#Q> insert into d.t values (1,'a
#Q> # at 5
#Q> ')
#261125  7:59:36 server id 1  end_log_pos 606 CRC32 0xa2626047 	Table_map: `d`.`t``x` mapped to number 18
# at 606
#261125  7:59:36 server id 1  end_log_pos 657 CRC32 0xba4831ee 	Write_rows: table id 18 flags: STMT_END_F

BINLOG '
aJUGaxMBAAAALgAAABMDAAAAABIAAAAAAAEAAWQAAXQAAwMP/ANQAAIGR2Biog==
aJUGaxcBAAAAMwAAAEYDAAAAABIAAAAAAAEAAwf8AQAAAAFh+AIAAAABYgIAAP/uMUi6
'/*!*/;
# Number of rows: 1
# at 657
#261125  7:59:36 server id 1  end_log_pos 688 CRC32 0xbb99b920 	Xid = 7
COMMIT/*!*/;
# at 688
#261125  8:05:13 server id 1  end_log_pos 730 CRC32 0x209f6d54 	GTID 0-1-3 trans
/*M!100001 SET @@session.gtid_seq_no=3*//*!*/;
START TRANSACTION
/*!*/;
# at 730
#261125  8:05:13 server id 1  end_log_pos 777 CRC32 0xa88a1fba 	User_var
SET @`x`:=5/*!*/;
# at 777
#261125  8:05:13 server id 1  end_log_pos 890 CRC32 0x4cd47716 	Query	thread_id=9	exec_time=0	error_code=0	xid=0
use `d`/*!*/;
SET TIMESTAMP=1795593913/*!*/;
insert into t (id,v) values (@x, 'line1
# at 12
line2;\xff\xfe')
/*!*/;
# at 890
#261125  8:05:13 server id 1  end_log_pos 921 CRC32 0x8bede8e8 	Xid = 32
COMMIT/*!*/;
# at 921
#261125  8:05:13 server id 1  end_log_pos 963 CRC32 0x209f6d55 	GTID 0-1-4
/*M!100001 SET @@session.gtid_seq_no=4*//*!*/;
START TRANSACTION
/*!*/;
# at 963
#261125  8:05:13 server id 1  end_log_pos 1050 CRC32 0x4cd47717 	Query	thread_id=9	exec_time=0	error_code=0	xid=0
SET TIMESTAMP=1795593913/*!*/;
insert into m values (1)
/*!*/;
# at 1050
#261125  8:05:13 server id 1  end_log_pos 1120 CRC32 0x4cd47718 	Query	thread_id=9	exec_time=0	error_code=0	xid=0
SET TIMESTAMP=1795593913/*!*/;
ROLLBACK
/*!*/;
# at 1120
#261125  8:05:13 server id 1  end_log_pos 1170 CRC32 0x4cd47719 	Incident: LOST_EVENTS
RELOAD DATABASE; # Shall generate syntax error
/*!*/;
# at 1170
#261125  7:59:36 server id 1  end_log_pos 1217 CRC32 0xeb4a3c7e 	Rotate to mysql-bin.000002  pos: 4
DELIMITER ;
# End of log file
ROLLBACK /* added by mysqlbinlog */;
/*!50003 SET COMPLETION_TYPE=@OLD_COMPLETION_TYPE*/;
/*!50530 SET @@SESSION.PSEUDO_SLAVE_MODE=0*/;
"""
LINES = SAMPLE.splitlines(keepends=True)


def units(lines: list[bytes]) -> list[Unit]:
    return list(parse(lines))


def transactions(found: list[Unit]) -> list[Transaction]:
    return [u for u in found if isinstance(u, Transaction)]


def test_sample_parses_into_session_statements_transactions_and_markers() -> None:
    found = units(LINES)
    session = [u.sql for u in found if isinstance(u, SessionStatement)]
    assert session[:3] == [
        b"/*!50530 SET @@SESSION.PSEUDO_SLAVE_MODE=1*/",
        b"/*!40019 SET @@session.max_delayed_threads=0*/",
        b"/*!50003 SET @OLD_COMPLETION_TYPE=@@COMPLETION_TYPE,COMPLETION_TYPE=0*/",
    ]
    fd = [u for u in found if isinstance(u, SessionStatement) and u.is_format_description]
    assert len(fd) == 1 and fd[0].sql.startswith(b"BINLOG '\naJUGaw8B") and fd[0].sql.endswith(b"AAAA\n'")
    assert b"SET NAMES utf8mb4" in session  # the client's \C command, translated
    assert not any(s.upper().startswith((b"ROLLBACK", b"USE", b"DELIMITER", b"START TRANSACTION")) for s in session)
    assert session[-2:] == [
        b"/*!50003 SET COMPLETION_TYPE=@OLD_COMPLETION_TYPE*/",
        b"/*!50530 SET @@SESSION.PSEUDO_SLAVE_MODE=0*/",
    ]
    markers = [(u.end_pos, u.event) for u in found if isinstance(u, PositionMarker)]
    assert markers == [(256, "Format_desc"), (285, "Gtid list"), (328, "Binlog checkpoint"), (1217, "Rotate")]
    assert [u for u in found if isinstance(u, Incident)] == [Incident(1170, "Incident: LOST_EVENTS")]

    ddl, rows, stmt, rolled = transactions(found)
    assert ddl == Transaction(
        start_pos=328, end_pos=451, gtid="0-1-1", is_ddl=True,
        statements=(Statement(b"create table t (id int primary key, v varchar(20), b blob)", "we`ird", True),),
    )
    assert (rows.start_pos, rows.end_pos, rows.gtid, rows.is_ddl) == (451, 688, "0-1-2", False)
    assert rows.tables == frozenset({("d", "t`x")})
    assert len(rows.statements) == 1 and rows.statements[0].sql.endswith(b"MUi6\n'")
    assert rows.queries == ()
    assert (stmt.start_pos, stmt.end_pos, stmt.gtid) == (688, 921, "0-1-3")
    assert stmt.statements == (
        Statement(b"SET @`x`:=5"),
        Statement(b"SET TIMESTAMP=1795593913"),
        Statement(b"insert into t (id,v) values (@x, 'line1\n# at 12\nline2;\xff\xfe')", "d", True),
    )
    assert rolled.rolled_back and rolled.end_pos == 1120 and rolled.gtid == "0-1-4"


def test_a_truncated_stream_never_yields_an_incomplete_unit() -> None:
    complete = {t.end_pos: t for t in transactions(units(LINES))}
    footer = next(i for i, line in enumerate(LINES) if line.startswith(b"# End of log file"))
    for cut in range(footer):  # the tool stopped (or the file ended) after `cut` lines
        for tx in transactions(units(LINES[:cut])):
            assert complete[tx.end_pos] == tx, f"cut at line {cut} yielded a partial transaction"


def test_a_file_cut_mid_transaction_as_the_tool_prints_it() -> None:
    """The tool stops at the last whole event and still prints its footer (exit status 0)."""
    cut = next(i for i, line in enumerate(LINES) if line.startswith(b"# at 606"))
    footer = [b"DELIMITER ;\n", b"# End of log file\n", b"ROLLBACK /* added by mysqlbinlog */;\n"]
    found = transactions(units(LINES[:cut] + footer))
    assert [t.end_pos for t in found] == [451]


def test_lines_without_newlines_and_the_plain_delimiter() -> None:
    text = [b"DELIMITER $$", b"SET @a=1$$", b"# at 4", b"#261125  7:59:36 server id 1  end_log_pos 50 \tQuery\t",
            b"SET TIMESTAMP=1$$", b"CREATE DATABASE x", b"$$", b"# End of log file"]
    found = units(text)
    assert found[0] == SessionStatement(b"SET @a=1")
    assert found[-1] == Transaction(4, 50, (Statement(b"CREATE DATABASE x", None, True),), is_ddl=True)


def test_mysql_style_begin_query_and_gtid_next() -> None:
    text = b"""DELIMITER /*!*/;
# at 100
#261125  7:59:36 server id 1  end_log_pos 179 CRC32 0x00000001 \tGTID\tlast_committed=0\tsequence_number=1
SET @@SESSION.GTID_NEXT= '3e11fa47-71ca-11e1-9e33-c80aa9429562:23'/*!*/;
# at 179
#261125  7:59:36 server id 1  end_log_pos 250 CRC32 0x00000002 \tQuery\tthread_id=5
SET TIMESTAMP=1/*!*/;
BEGIN
/*!*/;
# at 250
#261125  7:59:36 server id 1  end_log_pos 300 CRC32 0x00000003 \tTable_map: `a`.`b` mapped to number 90
# at 300
#261125  7:59:36 server id 1  end_log_pos 350 CRC32 0x00000004 \tWrite_rows: table id 90 flags: STMT_END_F
BINLOG '
AAAA
'/*!*/;
# at 350
#261125  7:59:36 server id 1  end_log_pos 381 CRC32 0x00000005 \tXid = 9
COMMIT/*!*/;
DELIMITER ;
# End of log file
"""
    (tx,) = transactions(units(text.splitlines()))
    assert (tx.start_pos, tx.end_pos, tx.gtid, tx.tables) == (
        100, 381, "3e11fa47-71ca-11e1-9e33-c80aa9429562:23", frozenset({("a", "b")})
    )
    assert tx.statements == (Statement(b"BINLOG '\nAAAA\n'"),)


def test_create_select_logged_as_a_transaction_is_ddl() -> None:
    """MariaDB: GTID flagged ddl, START TRANSACTION, the CREATE, the rows, COMMIT; it cannot join a group."""
    text = b"""DELIMITER /*!*/;
# at 385
#261125  8:14:39 server id 1  end_log_pos 427 CRC32 0x1dc68ed2 \tGTID 0-1-20025 ddl
START TRANSACTION
/*!*/;
# at 427
#261125  8:14:39 server id 1  end_log_pos 615 CRC32 0x7b0a871e \tQuery\tthread_id=22\texec_time=0\terror_code=0
SET TIMESTAMP=1795594479/*!*/;
CREATE TABLE `d`.`ctas` (
  `a` int(1) NOT NULL
)
/*!*/;
# at 728
#261125  8:14:39 server id 1  end_log_pos 728 CRC32 0xf12fbc94 \tTable_map: `d`.`ctas` mapped to number 28
# at 728
#261125  8:14:39 server id 1  end_log_pos 768 CRC32 0xe99487bc \tWrite_rows: table id 28 flags: STMT_END_F
BINLOG '
AAAA
'/*!*/;
# at 768
#261125  8:14:39 server id 1  end_log_pos 799 CRC32 0xcaa3f9ba \tXid = 20192
COMMIT/*!*/;
DELIMITER ;
# End of log file
"""
    (tx,) = transactions(units(text.splitlines()))
    assert tx.is_ddl and (tx.start_pos, tx.end_pos) == (385, 799)
    assert [s.sql[:12] for s in tx.statements] == [b"SET TIMESTAM", b"CREATE TABLE", b"BINLOG '\nAAA"]
    assert tx.tables == frozenset({("d", "ctas")})


def test_row_event_outside_a_transaction_is_refused() -> None:
    text = [b"DELIMITER /*!*/;", b"# at 4",
            b"#261125  7:59:36 server id 1  end_log_pos 50 CRC32 0x1 \tWrite_rows: table id 1 flags: STMT_END_F",
            b"BINLOG '", b"AAAA", b"'/*!*/;", b"# End of log file"]
    with pytest.raises(BinlogParseError, match="outside a transaction"):
        units(text)


@pytest.mark.parametrize(
    ("sql", "default_db", "expected"),
    [
        (b"alter table t add column c int", "d", {("d", "t")}),
        (b"create table d.`we``ird` (id int)", None, {("d", "we`ird")}),
        (b"DROP TABLE IF EXISTS `a`.`b`, c /* generated by server */", "d", {("a", "b"), ("d", "c")}),
        (b"create database if not exists zz", None, {("zz", None)}),
        (b"RENAME TABLE a TO other.b", "d", {("d", "a"), ("other", "b")}),
        (b"create index i on x.t (a)", "d", {("x", "t")}),
        (b"insert into x.y (a) values ('from z.q') on duplicate key update a=1", "d", {("x", "y")}),
        (b"update t1 join e.t2 on t1.id = t2.id set t1.a = 1", "d", {("d", "t1"), ("e", "t2")}),
        (b"INSERT INTO mysql.rds_heartbeat2(id, value) values (1,1)", None, {("mysql", "rds_heartbeat2")}),
        (b"/*!40000 ALTER TABLE `t` DISABLE KEYS */", "d", {("d", "t")}),
    ],
)
def test_statement_tables(sql: bytes, default_db: str | None, expected: set[tuple[str | None, str | None]]) -> None:
    assert statement_tables(sql, default_db) == expected


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        (b"CREATE USER 'u'@'%' IDENTIFIED BY 'x'", "CREATE USER"),
        (b"create or replace user x", "CREATE USER"),
        (b"GRANT SELECT ON d.* TO u", "GRANT"),
        (b"REVOKE ALL ON *.* FROM u", "REVOKE"),
        (b"SET PASSWORD FOR u = PASSWORD('p')", "SET PASSWORD"),
        (b"RENAME USER a TO b", "RENAME USER"),
        (b"ALTER USER u ACCOUNT LOCK", "ALTER USER"),
        (b"DROP ROLE r", "DROP ROLE"),
        (b"ALTER TABLE user ADD c INT", None),
        (b"INSERT INTO grants VALUES ('GRANT')", None),
    ],
)
def test_account_statement_kind(sql: bytes, kind: str | None) -> None:
    assert account_statement_kind(sql) == kind


# --- session state: interpreted, never replayed blindly (review A1, B1) ------------------------------
from migrator.tools.binlog_text import session_sql  # noqa: E402
from tests.binlog_corpus import corpus, is_allowed_in_group  # noqa: E402


@pytest.mark.parametrize(
    ("sql", "kept"),
    [
        (b"/*!50718 SET TRANSACTION ISOLATION LEVEL READ COMMITTED*/", None),
        (b"SET SESSION TRANSACTION READ ONLY", None),
        (b"SET @@SESSION.GTID_NEXT= 'ANONYMOUS'", None),
        (b"SET @@SESSION.GTID_NEXT= '5a1b2c3d-0000-4000-8000-00000000c0de:41'", None),
        (b"SET @@SESSION.GTID_NEXT= 'AUTOMATIC' /* added by mysqlbinlog */ ", None),
        (b"/*!80001 SET @@session.original_commit_timestamp=1795165201000001*/", None),
        (b"/*!80014 SET @@session.original_server_version=80035*/", None),
        (b"/*!80014 SET @@session.immediate_server_version=80035*/", None),
        (b"SET @@session.autocommit=0", None),
        (b"SET @@session.foreign_key_checks=1, @@session.sql_auto_is_null=0, @@session.unique_checks=1, "
         b"@@session.autocommit=1",
         b"SET @@session.foreign_key_checks=1, @@session.sql_auto_is_null=0, @@session.unique_checks=1"),
        (b"SET @@session.foreign_key_checks=0, @@session.autocommit=0, @@session.check_constraint_checks=1, "
         b"@@session.sql_if_exists=0",
         b"SET @@session.foreign_key_checks=0, @@session.check_constraint_checks=1, @@session.sql_if_exists=0"),
        (b"/*!80011 SET @@session.autocommit=1, @@session.default_collation_for_utf8mb4=255*/",
         b"/*!80011 SET @@session.default_collation_for_utf8mb4=255*/"),
        (b"SET @@session.sql_mode=1168113696", b"SET @@session.sql_mode=1168113696"),
        (b"SET @@session.character_set_client=255,@@session.collation_connection=255,"
         b"@@session.collation_server=224",
         b"SET @@session.character_set_client=255,@@session.collation_connection=255,"
         b"@@session.collation_server=224"),
        (b"SET @@session.time_zone='+00:00'", b"SET @@session.time_zone='+00:00'"),
        (b"SET @`a,utocommit`:='x, @@session.autocommit=1'", b"SET @`a,utocommit`:='x, @@session.autocommit=1'"),
        (b"SET NAMES utf8mb4", b"SET NAMES utf8mb4"),
        (b"SET TIMESTAMP=1795165201", b"SET TIMESTAMP=1795165201"),
        (b"/*!50003 SET @OLD_COMPLETION_TYPE=@@COMPLETION_TYPE,COMPLETION_TYPE=0*/",
         b"/*!50003 SET @OLD_COMPLETION_TYPE=@@COMPLETION_TYPE,COMPLETION_TYPE=0*/"),
        (b"BINLOG '\nAAAA\n'", b"BINLOG '\nAAAA\n'"),
    ],
)
def test_session_sql_keeps_context_and_drops_transaction_control(sql: bytes, kept: bytes | None) -> None:
    assert session_sql(sql) == kept


def _fixture_units(name: str) -> list[Unit]:
    return units(corpus()[name].splitlines())


def test_mysql80_fixture_transactions_and_the_trailing_ddl() -> None:
    found = _fixture_units("mysql80_autocommit_anonymous.txt")
    txs = transactions(found)
    assert [(t.start_pos, t.end_pos, t.is_ddl) for t in txs] == [
        (157, 467, False), (467, 797, False), (797, 1097, False), (1097, 1327, True)
    ]
    assert all(t.tables == frozenset({("shop", "orders")}) for t in txs[:3])
    # The trailer "SET @@SESSION.GTID_NEXT= 'AUTOMATIC' /* added by mysqlbinlog */" once made the newest
    # event's DDL a session statement (1046 No database selected inside the open group).
    ddl = txs[-1]
    assert ddl.queries == (Statement(b"ALTER TABLE orders ADD COLUMN note VARCHAR(40) NULL", "shop", True),)
    assert isinstance(found[-3], Transaction) and found[-3] == ddl
    session = [u.sql for u in found if isinstance(u, SessionStatement)]
    assert not any(b"ALTER TABLE" in s for s in session)
    # Session state kept, transaction control gone.
    assert b"SET @@session.foreign_key_checks=1, @@session.sql_auto_is_null=0, @@session.unique_checks=1" in session
    assert b"SET @@session.sql_mode=1168113696" in session
    assert b"/*!80011 SET @@session.default_collation_for_utf8mb4=255*/" in session
    assert b"SET NAMES utf8mb4" in session
    for text in session:
        lowered = text.lower()
        assert b"autocommit" not in lowered and b"transaction" not in lowered
        assert b"gtid_next" not in lowered and b"original_" not in lowered and b"immediate_" not in lowered


def test_mysql84_fixture_gtids_compressed_payloads_partial_json_and_gipk() -> None:
    txs = transactions(_fixture_units("mysql84_gtid_compressed.txt"))
    uuid = "5a1b2c3d-0000-4000-8000-00000000c0de"
    assert [(t.start_pos, t.end_pos, t.gtid, t.is_ddl) for t in txs] == [
        (198, 600, f"{uuid}:41", True),
        (600, 910, f"{uuid}:42", False),  # compressed: the inner events end where the payload event ends
        (910, 1190, f"{uuid}:43", False),  # Update_rows_partial (PARTIAL_JSON)
        (1190, 1480, f"{uuid}:44", False),
    ]
    assert b"INVISIBLE" in txs[0].queries[0].sql and txs[0].queries[0].db == "shop"
    for tx in txs[1:]:
        assert tx.tables == frozenset({("shop", "events")})
        assert [s.sql[:8] for s in tx.statements] == [b"BINLOG '"]


@pytest.mark.parametrize("name", [*sorted(corpus()), "mariadb_sample"])
def test_nothing_the_parser_yields_may_commit_a_group_implicitly(name: str) -> None:
    """Every session statement, and every non-query statement of a transaction, has an allowed shape."""
    text = SAMPLE if name == "mariadb_sample" else corpus()[name]
    for unit in units(text.splitlines()):
        if isinstance(unit, SessionStatement):
            assert is_allowed_in_group(unit.sql), unit.sql[:200]
        elif isinstance(unit, Transaction):
            for statement in unit.statements:
                assert statement.is_query or is_allowed_in_group(statement.sql), statement.sql[:200]


# --- large transactions are yielded in parts as they are read (review B7) ---------------------------
import base64  # noqa: E402

from migrator.tools.binlog_text import TransactionAbandoned, TransactionPart  # noqa: E402


def _row_image(i: int, size: int = 120) -> list[bytes]:
    """One event's base64 as the tools print it: its header's size field right, wrapped at 76."""
    raw = bytearray(b"%019d" % i + bytes(size - 19))
    raw[4] = 30  # WRITE_ROWS_EVENT
    raw[9:13] = size.to_bytes(4, "little")
    text = base64.b64encode(bytes(raw))
    return [text[k:k + 76] for k in range(0, len(text), 76)]


def _big_transaction_text(rows: int, *, complete: bool = True) -> list[bytes]:
    lines = [b"DELIMITER /*!*/;", b"# at 100",
             b"#261125  7:59:36 server id 1  end_log_pos 142 CRC32 0x1 \tGTID 0-1-9 trans",
             b"START TRANSACTION", b"/*!*/;"]
    pos = 142
    for i in range(rows):
        table = b"`d`.`a`" if i < rows // 2 else b"`d`.`b`"
        lines += [b"# at %d" % pos,
                  b"#261125  7:59:36 server id 1  end_log_pos %d CRC32 0x1 \tTable_map: %s mapped to number 9"
                  % (pos + 40, table),
                  b"# at %d" % (pos + 40),
                  b"#261125  7:59:36 server id 1  end_log_pos %d CRC32 0x1 \tWrite_rows: table id 9 flags: STMT_END_F"
                  % (pos + 100),
                  b"BINLOG '", *_row_image(i), b"'/*!*/;"]
        pos += 100
    if complete:
        lines += [b"# at %d" % pos, b"#261125  7:59:36 server id 1  end_log_pos %d CRC32 0x1 \tXid = 5" % (pos + 31),
                  b"COMMIT/*!*/;"]
    return [*lines, b"DELIMITER ;", b"# End of log file"]


def test_a_large_transaction_comes_in_parts_that_add_up_to_it() -> None:
    text = _big_transaction_text(100)
    (whole,) = transactions(units(text))
    streamed = list(parse(text, stream_bytes=1000))
    parts = [u for u in streamed if isinstance(u, TransactionPart)]
    (last,) = transactions(streamed)
    assert len(parts) >= 9 and all(len(p.statements) <= 10 for p in parts)
    assert [s for p in parts for s in p.statements] + list(last.statements) == list(whole.statements)
    assert last.streamed and not whole.streamed
    assert (last.start_pos, last.end_pos, last.tables) == (whole.start_pos, whole.end_pos, whole.tables)
    assert parts[0].tables == frozenset({("d", "a")})  # the tables seen so far
    assert all(p.start_pos == 100 for p in parts)


def test_a_large_transaction_that_never_completes_is_abandoned() -> None:
    streamed = list(parse(_big_transaction_text(100, complete=False), stream_bytes=1000))
    assert any(isinstance(u, TransactionPart) for u in streamed)
    assert transactions(streamed) == []
    assert streamed[-1] == TransactionAbandoned(100)
    small = list(parse(_big_transaction_text(3, complete=False), stream_bytes=10_000))
    assert not any(isinstance(u, (TransactionPart, TransactionAbandoned)) for u in small)


def _one_statement_text(rows: int, *, fragments_at: int | None = None) -> tuple[list[bytes], list[bytes]]:
    """A transaction of ONE source statement: mysqlbinlog prints its Table_map and all its rows events
    as one BINLOG statement (or, MariaDB, as fragments cut anywhere). Returns (lines, events' base64)."""
    table_map = bytearray(bytes(40))
    table_map[4], table_map[9:13] = 19, (40).to_bytes(4, "little")
    events = [base64.b64encode(bytes(table_map))] + [b"".join(_row_image(i, 200)) for i in range(rows)]
    body = b"\n".join(line for i in range(rows + 1)
                      for line in ([events[0]] if i == 0 else _row_image(i - 1, 200)))
    head = [b"DELIMITER /*!*/;", b"# at 100",
            b"#261125  7:59:36 server id 1  end_log_pos 142 CRC32 0x1 \tGTID 0-1-9 trans",
            b"START TRANSACTION", b"/*!*/;", b"# at 142",
            b"#261125  7:59:36 server id 1  end_log_pos 182 CRC32 0x1 \tTable_map: `d`.`a` mapped to number 9",
            b"# at 182",
            b"#261125  7:59:36 server id 1  end_log_pos 9000 CRC32 0x1 \tWrite_rows: table id 9 flags: STMT_END_F"]
    if fragments_at is None:
        statement = [b"BINLOG '", *body.split(b"\n"), b"'/*!*/;"]
    else:
        first, second = body[:fragments_at], body[fragments_at:]
        statement = [b"SET @binlog_fragment_0 ='", *first.split(b"\n"), b"'/*!*/;",
                     b"SET @binlog_fragment_1 ='", *second.split(b"\n"), b"'/*!*/;",
                     b"BINLOG @binlog_fragment_0, @binlog_fragment_1/*!*/;",
                     b"SET @binlog_fragment_0=NULL,@binlog_fragment_1=NULL/*!*/;"]
    tail = [b"# at 9000", b"#261125  7:59:36 server id 1  end_log_pos 9031 CRC32 0x1 \tXid = 5", b"COMMIT/*!*/;",
            b"DELIMITER ;", b"# End of log file"]
    return head + statement + tail, events


def _events_of(statement: bytes) -> list[bytes]:
    assert statement.startswith(b"BINLOG '\n") and statement.endswith(b"\n'")
    text = statement[len(b"BINLOG '\n"):-2]
    out, current = [], b""
    for line in text.split(b"\n"):
        current += line
        if current.endswith(b"="):  # every event here encodes to a padded block
            out.append(current)
            current = b""
    return out


@pytest.mark.parametrize("fragments_at", [None, 1001, 2000, 5555])
def test_one_huge_statement_is_cut_into_self_contained_binlog_statements(fragments_at: int | None) -> None:
    lines, events = _one_statement_text(60, fragments_at=fragments_at)
    streamed = list(parse(lines, stream_bytes=3000))
    pieces = [s.sql for u in streamed if isinstance(u, (TransactionPart, Transaction))
              for s in u.statements if s.sql.startswith(b"BINLOG '")]
    assert len(pieces) >= 4
    cut = [_events_of(p) for p in pieces]
    assert all(c[0] == events[0] for c in cut)  # every cut repeats the statement's Table_map
    assert [e for c in cut for e in c[1:]] == events[1:]  # and the rows events, once each, in order
    assert sum(isinstance(u, TransactionPart) for u in streamed) >= 3
    (tx,) = transactions(streamed)
    assert tx.tables == frozenset({("d", "a")}) and tx.end_pos == 9031
