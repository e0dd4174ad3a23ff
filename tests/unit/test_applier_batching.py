"""The applier's batching over the MySQL 8 mysqlbinlog corpus, against a recording target (no server).

What is sent inside an open target transaction must be in the allow-list (tests/binlog_corpus.py):
never autocommit, SET TRANSACTION, GTID_NEXT, a DDL, or an autocommit-mode call of the applier's own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.mysql.flavour import MARIADB_10_11
from migrator.ports import SnapshotCoordinates
from migrator.tools.binlog_applier import BinlogApplier
from tests.binlog_corpus import corpus, is_allowed_in_group
from tests.integration.binlog_text_tool import install_text_tool
from tests.recording_target import RecordingTarget, record


def run_over(tmp_path: Path, text: bytes, *, group_commit: int, schemas: frozenset[str]) -> RecordingTarget:
    archive = tmp_path / "archive"
    archive.mkdir(exist_ok=True)
    (archive / "binlog.000007").write_bytes(text)
    applier = BinlogApplier(
        None, archive, MARIADB_10_11, schemas=schemas,  # type: ignore[arg-type]
        start=SnapshotCoordinates("binlog.000007", 4), secrets_dir=tmp_path, group_commit=group_commit,
    )
    install_text_tool(applier, tmp_path)
    target = record(applier)
    applier.apply_available()
    return target


@pytest.mark.parametrize("group_commit", [1, 3, 50])
@pytest.mark.parametrize("name", sorted(corpus()))
def test_only_allowed_statements_run_inside_a_group(tmp_path: Path, name: str, group_commit: int) -> None:
    target = run_over(tmp_path, corpus()[name], group_commit=group_commit, schemas=frozenset({"shop"}))
    inside = [s for s in target.sent if s.in_group]
    assert any(s.sql.startswith(b"BINLOG '") for s in inside), "the corpus' rows went through a group"
    for sent in inside:
        assert not sent.autocommit_call, sent.sql[:200]
        assert is_allowed_in_group(sent.sql), sent.sql[:200]
    assert not target.in_group  # every group committed
    applied_ddl = [s.sql for s in target.sent if not s.in_group and s.sql.upper().startswith((b"ALTER", b"CREATE"))]
    assert applied_ddl, "the DDL ran, outside any group"


def test_trailing_ddl_runs_with_its_database_outside_the_group(tmp_path: Path) -> None:
    target = run_over(tmp_path, corpus()["mysql80_autocommit_anonymous.txt"], group_commit=50,
                      schemas=frozenset({"shop"}))
    sql = [s.sql for s in target.sent]
    alter = sql.index(b"ALTER TABLE orders ADD COLUMN note VARCHAR(40) NULL")
    assert b"USE `shop`" in sql[:alter]
    assert not target.sent[alter].in_group


def test_mysql_ctas_xa_and_admin_shapes(tmp_path: Path) -> None:
    target = run_over(tmp_path, corpus()["mysql80_xa_ctas_admin.txt"], group_commit=50,
                      schemas=frozenset({"shop"}))
    sql = [s.sql for s in target.sent]
    # Atomic CTAS: "CREATE TABLE ... START TRANSACTION" leaves a transaction open on MySQL; it is committed
    # before the position moves past it (the marker protocol's last step).
    create = next(i for i, s in enumerate(sql) if s.startswith(b"CREATE TABLE `daily`"))
    position = next(i for i in range(create, len(sql)) if sql[i].startswith(b"UPDATE `_migrator`.`apply_position`"))
    assert sql[create + 1].startswith(b"BINLOG '") and sql[create + 2] == b"COMMIT" and create + 2 < position
    # FLUSH / ANALYZE: skipped. XA: the prepared part's rows run once, at XA COMMIT, with the bookkeeping.
    assert not any(s.startswith((b"FLUSH", b"ANALYZE", b"XA ")) for s in sql)
    record = next(i for i, s in enumerate(sql) if s.startswith(b"INSERT INTO `_migrator`.`apply_xa`"))
    forget = next(i for i, s in enumerate(sql) if s.startswith(b"DELETE FROM `_migrator`.`apply_xa`"))
    xa_rows = [i for i, s in enumerate(sql) if s.startswith(b"BINLOG '\nMlIWaRMf")]
    assert len(xa_rows) == 1 and record < xa_rows[0] < forget
    assert target.sent[record].in_group and target.sent[forget].in_group
    one_phase = [i for i, s in enumerate(sql) if s.startswith(b"BINLOG '\nNlIWaRMf")]
    assert len(one_phase) == 1 and target.sent[one_phase[0]].in_group
