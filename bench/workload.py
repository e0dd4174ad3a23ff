"""The apply workload: single-row transactions on the source, archived as complete binlog files.

``applydb.accounts`` is created (empty) before the start coordinates, so every target needs only the
schema. A procedure runs N autocommit statements: 60% INSERT, 30% UPDATE, 10% DELETE, each its own
source transaction (its own GTID).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from migrator.mysql.session import MySQLSession
from migrator.platforms.local_server import LocalServer

SCHEMA = "applydb"

_DDL = (
    f"CREATE DATABASE {SCHEMA} CHARACTER SET utf8mb4",
    f"""CREATE TABLE {SCHEMA}.accounts (
      id BIGINT NOT NULL PRIMARY KEY,
      owner VARCHAR(64) NOT NULL,
      balance DECIMAL(14,2) NOT NULL,
      updated_at DATETIME(6) NOT NULL,
      note VARCHAR(100) NULL,
      KEY idx_owner (owner)
    ) ENGINE=InnoDB""",
    # Residues 0-5 insert row i; 6-8 update a row inserted 13 ids earlier (residue 3-5); 9 deletes row
    # i-9 (residue 0): every statement changes exactly one row, so every one is a logged transaction.
    f"""CREATE PROCEDURE {SCHEMA}.churn(IN n INT)
    BEGIN
      DECLARE i INT DEFAULT 0;
      WHILE i < n DO
        SET i = i + 1;
        IF i % 10 < 6 OR i < 20 THEN
          INSERT INTO {SCHEMA}.accounts VALUES (i, CONCAT('owner ', i % 5000), i / 100, NOW(6), REPEAT('x', i % 50));
        ELSEIF i % 10 < 9 THEN
          UPDATE {SCHEMA}.accounts SET balance = balance + 1, updated_at = NOW(6) WHERE id = i - 13;
        ELSE
          DELETE FROM {SCHEMA}.accounts WHERE id = i - 9;
        END IF;
      END WHILE;
    END""",
)


@dataclass(frozen=True)
class ApplyWorkload:
    start: tuple[str, int]
    end: tuple[str, int]  # the source's position after the workload (end of the last file)
    files: list[Path]  # archived copies of the complete binlog files from start.file on
    transactions: int


def _master_status(session: MySQLSession) -> tuple[str, int]:
    row = session.one("SHOW MASTER STATUS")
    assert row is not None
    return str(row[0]), int(row[1])


def generate(source: LocalServer, session: MySQLSession, transactions: int, archive: Path) -> ApplyWorkload:
    for sql in _DDL:
        session.execute(sql)
    session.execute("FLUSH BINARY LOGS")
    start = _master_status(session)
    gtid_before = str(session.value("SELECT @@gtid_binlog_pos"))
    # Generation speed is not measured: relax the source's flushing for it, then restore.
    session.execute("SET GLOBAL sync_binlog = 0")
    session.execute("SET GLOBAL innodb_flush_log_at_trx_commit = 2")
    try:
        session.execute(f"CALL {SCHEMA}.churn(%s)", (transactions,))
    finally:
        session.execute("SET GLOBAL sync_binlog = 1")
        session.execute("SET GLOBAL innodb_flush_log_at_trx_commit = 1")
    end = _master_status(session)
    gtid_after = str(session.value("SELECT @@gtid_binlog_pos"))
    session.execute("FLUSH BINARY LOGS")  # the last file is complete, as the streamer's archive would be
    logged = _seq(gtid_after) - _seq(gtid_before)
    archive.mkdir(parents=True, exist_ok=True)
    names = [str(r[0]) for r in session.rows("SHOW BINARY LOGS")]
    files = []
    for name in names:
        if name >= start[0] and name <= end[0]:
            shutil.copyfile(source.datadir / name, archive / name)
            files.append(archive / name)
    return ApplyWorkload(start, end, files, logged)


def _seq(gtid_pos: str) -> int:
    # "0-10-1234": this bench has one domain and one server
    return int(gtid_pos.rsplit("-", maxsplit=1)[-1]) if gtid_pos else 0
