"""The bench dataset: deterministic, sized in MB, every shape a copy must carry.

``benchdb`` holds an auto-increment table with a unique and two secondary indexes, a composite-key
table, a table without any primary or unique key (one secondary index), a blob/text-heavy table, and
a FLOAT table (the exact row path). Rows come from ``INSERT ... SELECT`` over the sequence engine with
values computed from the row number, so every build of the same size is identical.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from migrator.mysql.session import MySQLSession

SCHEMA = "benchdb"

# Share of the requested size and the approximate stored bytes per row (data + indexes).
_SHARES = {
    "customers": (0.15, 330),
    "orders": (0.15, 150),
    "order_items": (0.20, 110),
    "page_views": (0.15, 230),
    "documents": (0.25, 5200),
    "readings": (0.10, 90),
}

_DDL = (
    """CREATE TABLE benchdb.customers (
      id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
      email VARCHAR(190) NOT NULL,
      full_name VARCHAR(100) NOT NULL,
      country CHAR(2) NOT NULL,
      birth_date DATE NULL,
      balance DECIMAL(12,2) NOT NULL DEFAULT 0.00,
      created_at DATETIME(6) NOT NULL,
      notes TEXT NULL,
      UNIQUE KEY uk_email (email),
      KEY idx_country_created (country, created_at),
      KEY idx_name (full_name)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE benchdb.orders (
      id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
      customer_id INT UNSIGNED NOT NULL,
      status ENUM('new','paid','shipped','cancelled') NOT NULL DEFAULT 'new',
      total DECIMAL(12,2) NOT NULL,
      ordered_at DATETIME(6) NOT NULL,
      updated_at TIMESTAMP NULL,
      KEY idx_customer (customer_id),
      KEY idx_status_ordered (status, ordered_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE benchdb.order_items (
      order_id BIGINT UNSIGNED NOT NULL,
      line_no SMALLINT UNSIGNED NOT NULL,
      product_id INT UNSIGNED NOT NULL,
      qty INT NOT NULL,
      unit_price DECIMAL(10,2) NOT NULL,
      gift_note VARCHAR(255) NULL,
      PRIMARY KEY (order_id, line_no),
      KEY idx_product (product_id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE benchdb.page_views (
      viewed_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
      customer_id INT UNSIGNED NULL,
      url VARCHAR(255) NOT NULL,
      referrer VARCHAR(255) NULL,
      payload BLOB NULL,
      KEY idx_viewed (viewed_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE benchdb.documents (
      id INT UNSIGNED NOT NULL PRIMARY KEY,
      title VARCHAR(200) NOT NULL,
      body MEDIUMTEXT NULL,
      attachment MEDIUMBLOB NULL,
      KEY idx_title (title)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE benchdb.readings (
      id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
      sensor_id INT UNSIGNED NOT NULL,
      reading FLOAT NOT NULL,
      calibrated DOUBLE NULL,
      taken_at DATETIME NOT NULL,
      KEY idx_sensor (sensor_id, taken_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
)


def _fill(rows: dict[str, int]) -> list[str]:
    n = rows
    return [
        f"""INSERT INTO benchdb.customers (id, email, full_name, country, birth_date, balance, created_at, notes)
        SELECT seq, CONCAT('user', seq, '@example.test'),
          CONCAT(ELT(1 + seq % 8, 'Ana', 'Björn', 'Chloé', 'Dmitri', 'Eun-ji', 'Fatima', 'Gustavo', 'Hiro'),
                 ' ', ELT(1 + (seq * 7) % 6, 'Smith', 'Müller', 'Nguyễn', 'O''Brien', 'Zhang 张', 'Kowalski'),
                 IF(seq % 7 = 0, ' 😀', '')),
          ELT(1 + CRC32(seq) % 6, 'DE', 'FR', 'JP', 'US', 'BR', 'IN'),
          IF(seq % 5 = 0, NULL, DATE('1950-01-01') + INTERVAL CRC32(CONCAT('b', seq)) % 20000 DAY),
          (CAST(CRC32(CONCAT('bal', seq)) % 2000000 AS SIGNED) - 500000) / 100,
          TIMESTAMP('2023-01-01') + INTERVAL seq * 37 SECOND + INTERVAL (seq * 7919) % 1000000 MICROSECOND,
          IF(seq % 3 = 0, NULL, REPEAT(CONCAT('note ', seq, ' — ünïcödé 👍 '), 1 + seq % 6))
        FROM seq_1_to_{n['customers']}""",
        f"""INSERT INTO benchdb.orders (id, customer_id, status, total, ordered_at, updated_at)
        SELECT seq, 1 + CRC32(CONCAT('c', seq)) % {n['customers']},
          ELT(1 + CRC32(CONCAT('s', seq)) % 4, 'new', 'paid', 'shipped', 'cancelled'),
          CRC32(CONCAT('t', seq)) % 5000000 / 100,
          TIMESTAMP('2024-01-01') + INTERVAL seq * 13 SECOND + INTERVAL (seq * 104729) % 1000000 MICROSECOND,
          IF(seq % 4 = 0, NULL, FROM_UNIXTIME(1700000000 + seq * 11))
        FROM seq_1_to_{n['orders']}""",
        f"""INSERT INTO benchdb.order_items (order_id, line_no, product_id, qty, unit_price, gift_note)
        SELECT 1 + (seq - 1) DIV 3, 1 + (seq - 1) % 3, 1 + CRC32(CONCAT('p', seq)) % 50000,
          1 + seq % 5, (100 + CRC32(CONCAT('u', seq)) % 20000) / 100,
          IF(seq % 13 = 0, CONCAT('Happy birthday 🎂 #', seq), NULL)
        FROM seq_1_to_{n['order_items']}""",
        f"""INSERT INTO benchdb.page_views (viewed_at, customer_id, url, referrer, payload)
        SELECT TIMESTAMP('2024-03-01') + INTERVAL seq * 3 SECOND + INTERVAL (seq * 31) % 1000000 MICROSECOND,
          IF(seq % 4 = 0, NULL, 1 + CRC32(CONCAT('v', seq)) % {n['customers']}),
          CONCAT('/products/', CRC32(CONCAT('url', seq)) % 50000, '?ref=', seq % 17),
          IF(seq % 2 = 0, NULL, 'https://search.example/?q=caf%C3%A9'),
          IF(seq % 8 = 0, UNHEX(CONCAT('00', SHA2(CONCAT('pv', seq), 224), '00')), NULL)
        FROM seq_1_to_{n['page_views']}""",
        f"""INSERT INTO benchdb.documents (id, title, body, attachment)
        SELECT seq, CONCAT('Document ', seq, IF(seq % 4 = 0, ' 🎁', '')),
          IF(seq % 9 = 0, NULL, REPEAT(CONCAT('Lorem ipsum dolor sit amet ☕ ', seq, ' '), 20 + CRC32(seq) % 80)),
          IF(seq % 10 = 0, NULL, CONCAT(0x00FF00, REPEAT(UNHEX(SHA2(CONCAT('img', seq), 256)),
                                                        16 + CRC32(CONCAT('l', seq)) % 96), 0x0000))
        FROM seq_1_to_{n['documents']}""",
        f"""INSERT INTO benchdb.readings (id, sensor_id, reading, calibrated, taken_at)
        SELECT seq, 1 + seq % 977, (CRC32(CONCAT('r', seq)) % 10000000) / 7777.0,
          IF(seq % 6 = 0, NULL, seq / 3.0),
          TIMESTAMP('2024-01-01') + INTERVAL seq SECOND
        FROM seq_1_to_{n['readings']}""",
    ]


@dataclass(frozen=True)
class BenchDataset:
    rows: dict[str, int]
    data_mb: float  # data + index length as information_schema reports it
    build_seconds: float

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def rows_for(size_mb: float) -> dict[str, int]:
    return {
        table: max(50, int(size_mb * 1e6 * share / row_bytes)) for table, (share, row_bytes) in _SHARES.items()
    }


def build(session: MySQLSession, size_mb: float) -> dict[str, int]:
    """Create ``benchdb`` and fill it to about ``size_mb`` MB on disk; returns rows per table."""
    rows = rows_for(size_mb)
    session.execute(f"CREATE DATABASE {SCHEMA} CHARACTER SET utf8mb4")
    session.execute(f"USE {SCHEMA}")  # the seq_1_to_N tables need a current database
    session.execute("SET SESSION time_zone = '+00:00'")
    for ddl in _DDL:
        session.execute(ddl)
    for sql in _fill(rows):
        session.execute(sql)
    session.rows("ANALYZE TABLE " + ", ".join(f"{SCHEMA}.{t}" for t in rows))
    return rows


def size_mb(session: MySQLSession, schema: str = SCHEMA) -> float:
    value = session.value(
        "SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
        (schema,),
    )
    return float(value) / 1e6


def counts(session: MySQLSession) -> dict[str, int]:
    """Rows per table of an existing ``benchdb`` (a reused source)."""
    return {t: int(session.value(f"SELECT COUNT(*) FROM {SCHEMA}.{t}")) for t in _SHARES}


def warm(session: MySQLSession) -> None:
    """Read every page of every index once: a reused source restarts with an empty buffer pool, and
    whichever tool ran first would otherwise pay the disk reads for all the others."""
    for table in _SHARES:
        session.value(f"CHECKSUM TABLE {SCHEMA}.{table}")  # the clustered index, every column
        indexes = session.rows(
            "SELECT DISTINCT index_name FROM information_schema.statistics"
            " WHERE table_schema = %s AND table_name = %s AND index_name <> 'PRIMARY'",
            (SCHEMA, table),
        )
        for (index,) in indexes:
            session.value(f"SELECT COUNT(*) FROM {SCHEMA}.{table} FORCE INDEX (`{index}`)")


def settle(session: MySQLSession, timeout: float = 300) -> None:
    """Flush a server's dirty pages (the source's, the verify target's) before anything is measured.

    A freshly built dataset (and the apply workload) leaves hundreds of MB of dirty pages that the
    page cleaner writes out in the background, on the same cores as whichever tool runs first. In
    this session's runs it made no visible difference (our copy: 14.9 s without, 15.0 s with; on a
    reused, restarted source 13.5 s, for reasons not found), but no tool should share the cores with
    a flush it did not cause.
    """
    before = session.value("SELECT @@GLOBAL.innodb_max_dirty_pages_pct")
    capacity = session.value("SELECT @@GLOBAL.innodb_io_capacity")
    session.execute("SET GLOBAL innodb_max_dirty_pages_pct = 0")
    # At the default 200 pages/s, the 13,000 dirty pages of a fresh 814 MB dataset took 2.5 minutes.
    session.execute("SET GLOBAL innodb_io_capacity = @@GLOBAL.innodb_io_capacity_max")
    try:
        deadline = time.monotonic() + timeout
        # A few pages may stay dirty on an idle server (the persistent statistics' tables).
        while int(session.one("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")[1]) > 16:  # type: ignore[index]
            if time.monotonic() > deadline:
                raise TimeoutError(f"the source still has dirty pages after {timeout} s")
            time.sleep(0.2)
    finally:
        session.execute("SET GLOBAL innodb_max_dirty_pages_pct = %s", (before,))
        session.execute("SET GLOBAL innodb_io_capacity = %s", (capacity,))
