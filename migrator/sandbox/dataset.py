"""The demo's sample dataset: every shape a migration must carry, built fast and deterministically.

Two schemas. ``shop`` has an auto-increment table with secondary indexes, a table without any
primary key, a composite-key table, blobs holding 0x00 bytes, utf8mb4 text with emoji, DECIMAL,
DATETIME(6)/TIMESTAMP/DATE and NULLs, plus a procedure, a function, a trigger, a view and an
event, all with DEFINER ``app_owner@'%'`` (an account that exists on the source only, so the
migration has to map it). ``hr`` is small and has a composite key of its own. ``shop.ledger`` is
the live workload's table. The application account ``app@'%'`` has DML rights only, no SUPER and
no READ ONLY ADMIN, so ``read_only=ON`` stops its writes as it would stop a real application's.

Rows come from ``INSERT ... SELECT`` over MariaDB's sequence engine (``seq_1_to_N``) with values
computed from the row number and a seed, so two builds with the same seed are byte-identical.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

import structlog

from migrator.endpoint import Endpoint
from migrator.errors import EnvironmentProblem
from migrator.mysql.session import MySQLSession
from migrator.secrets import Secret

log = structlog.get_logger()

APP_USER = "app"
DEFINER_USER = "app_owner"
SCHEMAS = ("shop", "hr")
CHARSET = "CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"

WORKLOAD_TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS shop.ledger ("
    " id BIGINT NOT NULL PRIMARY KEY,"
    " c INT NOT NULL,"
    " writer VARCHAR(32),"
    " updated_at DATETIME(6)"
    ") ENGINE=InnoDB"
)

_DEFINER = f"`{DEFINER_USER}`@`%`"

# Rows per table at scale 1; each grows linearly with scale (hr.departments stays fixed).
_BASE_ROWS = {
    "shop.customers": 15_000,
    "shop.products": 2_000,
    "shop.orders": 30_000,
    "shop.order_items": 60_000,
    "shop.page_views": 40_000,
    "shop.ledger": 1_000,
    "hr.employees": 1_000,
    "hr.salaries": 3_000,
}
_DEPARTMENTS = ("Engineering", "Sales", "Support", "Finance", "Ops 🛠", "Legal", "Marketing 📣", "People")

_TABLES_DDL = (
    f"""CREATE TABLE shop.customers (
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
    ) ENGINE=InnoDB {CHARSET}""",
    f"""CREATE TABLE shop.products (
      id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
      sku VARCHAR(32) NOT NULL,
      title VARCHAR(200) NOT NULL,
      description MEDIUMTEXT NULL,
      price DECIMAL(10,2) NOT NULL,
      image MEDIUMBLOB NULL,
      updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
      UNIQUE KEY uk_sku (sku)
    ) ENGINE=InnoDB {CHARSET}""",
    f"""CREATE TABLE shop.orders (
      id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
      customer_id INT UNSIGNED NOT NULL,
      status ENUM('new','paid','shipped','cancelled') NOT NULL DEFAULT 'new',
      total DECIMAL(12,2) NOT NULL DEFAULT 0.00,
      ordered_at DATETIME(6) NOT NULL,
      shipped_on DATE NULL,
      KEY idx_customer (customer_id),
      KEY idx_status_ordered (status, ordered_at)
    ) ENGINE=InnoDB {CHARSET}""",
    f"""CREATE TABLE shop.order_items (
      order_id BIGINT UNSIGNED NOT NULL,
      line_no SMALLINT UNSIGNED NOT NULL,
      product_id INT UNSIGNED NOT NULL,
      qty INT NOT NULL,
      unit_price DECIMAL(10,2) NOT NULL,
      gift_note VARCHAR(255) NULL,
      PRIMARY KEY (order_id, line_no),
      KEY idx_product (product_id)
    ) ENGINE=InnoDB {CHARSET}""",
    # No primary key and no unique key: the copy and the checksums must still cope.
    f"""CREATE TABLE shop.page_views (
      viewed_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
      customer_id INT UNSIGNED NULL,
      url VARCHAR(255) NOT NULL,
      referrer VARCHAR(255) NULL,
      payload BLOB NULL,
      KEY idx_viewed (viewed_at)
    ) ENGINE=InnoDB {CHARSET}""",
    WORKLOAD_TABLE_DDL + f" {CHARSET}",
    f"""CREATE TABLE hr.departments (
      id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
      name VARCHAR(64) NOT NULL
    ) ENGINE=InnoDB {CHARSET}""",
    f"""CREATE TABLE hr.employees (
      emp_no INT UNSIGNED NOT NULL PRIMARY KEY,
      department_id TINYINT UNSIGNED NOT NULL,
      first_name VARCHAR(50) NOT NULL,
      last_name VARCHAR(50) NOT NULL,
      hired_on DATE NOT NULL,
      left_on DATE NULL,
      badge_photo BLOB NULL,
      KEY idx_department (department_id)
    ) ENGINE=InnoDB {CHARSET}""",
    f"""CREATE TABLE hr.salaries (
      emp_no INT UNSIGNED NOT NULL,
      from_date DATE NOT NULL,
      to_date DATE NULL,
      amount DECIMAL(10,2) NOT NULL,
      PRIMARY KEY (emp_no, from_date)
    ) ENGINE=InnoDB {CHARSET}""",
)

# h(k) is a deterministic pseudo-random 32-bit number for row `seq`, salted by seed and column.
def _h(salt: str, seed: int) -> str:
    return f"CAST(CRC32(CONCAT('{seed}:{salt}:', seq)) AS SIGNED)"


def _fill_statements(scale: int, seed: int) -> list[tuple[str, str]]:
    n = {table: rows * scale for table, rows in _BASE_ROWS.items()}

    def h(salt: str) -> str:  # a short name keeps the SQL below readable
        return _h(salt, seed)

    names = "ELT(1 + MOD({x}, 8), 'Ana', 'Björn', 'Chloé', 'Dmitri', 'Eun-ji', 'Fatima', 'Gustavo', 'Hiro')"
    surnames = "ELT(1 + MOD({x}, 6), 'Smith', 'Müller', 'Nguyễn', 'O''Brien', 'Zhang 张', 'Kowalski')"
    return [
        ("shop.customers", f"""INSERT INTO shop.customers
            (id, email, full_name, country, birth_date, balance, created_at, notes)
            SELECT seq,
              CONCAT('user', seq, '@example.test'),
              CONCAT({names.format(x=h('first'))}, ' ', {surnames.format(x=h('last'))},
                     IF(MOD(seq, 7) = 0, ' 😀', IF(MOD(seq, 11) = 0, ' 🚀✨', ''))),
              ELT(1 + MOD({h('country')}, 6), 'DE', 'FR', 'JP', 'US', 'BR', 'IN'),
              IF(MOD(seq, 5) = 0, NULL, DATE('1950-01-01') + INTERVAL MOD({h('birth')}, 20000) DAY),
              (MOD({h('balance')}, 2000000) - 500000) / 100,
              TIMESTAMP('2023-01-01') + INTERVAL seq * 1537 SECOND
                + INTERVAL MOD(seq * 7919, 1000000) MICROSECOND,
              IF(MOD(seq, 3) = 0, NULL, REPEAT(CONCAT('note ', seq, ' — ünïcödé 👍 '), 1 + MOD(seq, 4)))
            FROM shop.seq_1_to_{n['shop.customers']}"""),
        ("shop.products", f"""INSERT INTO shop.products
            (id, sku, title, description, price, image, updated_at)
            SELECT seq,
              CONCAT('SKU-', LPAD(seq, 8, '0')),
              CONCAT('Product ', seq, IF(MOD(seq, 4) = 0, ' 🎁', '')),
              IF(MOD(seq, 9) = 0, NULL, REPEAT('Lorem ipsum dolor sit amet ☕ ', 2 + MOD({h('desc')}, 40))),
              (100 + MOD({h('price')}, 99900)) / 100,
              IF(MOD(seq, 10) = 0, NULL,
                 CONCAT(0x00FF00, REPEAT(UNHEX(SHA2(CONCAT('{seed}:img:', seq), 256)),
                                         32 + MOD({h('imglen')}, 64)), 0x0000)),
              TIMESTAMP('2024-06-01') + INTERVAL seq MINUTE
            FROM shop.seq_1_to_{n['shop.products']}"""),
        ("shop.orders", f"""INSERT INTO shop.orders
            (id, customer_id, status, total, ordered_at, shipped_on)
            SELECT seq,
              1 + MOD({h('cust')}, {n['shop.customers']}),
              ELT(1 + MOD({h('status')}, 4), 'new', 'paid', 'shipped', 'cancelled'),
              MOD({h('total')}, 5000000) / 100,
              TIMESTAMP('2024-01-01') + INTERVAL seq * 613 SECOND
                + INTERVAL MOD(seq * 104729, 1000000) MICROSECOND,
              IF(MOD(seq, 3) = 0, NULL, DATE('2024-01-02') + INTERVAL seq DIV 50 DAY)
            FROM shop.seq_1_to_{n['shop.orders']}"""),
        ("shop.order_items", f"""INSERT INTO shop.order_items
            (order_id, line_no, product_id, qty, unit_price, gift_note)
            SELECT 1 + (seq - 1) DIV 2, 1 + MOD(seq - 1, 2),
              1 + MOD({h('prod')}, {n['shop.products']}),
              1 + MOD({h('qty')}, 5),
              (100 + MOD({h('unit')}, 20000)) / 100,
              IF(MOD(seq, 13) = 0, CONCAT('Happy birthday 🎂 #', seq), NULL)
            FROM shop.seq_1_to_{n['shop.order_items']}"""),
        ("shop.page_views", f"""INSERT INTO shop.page_views
            (viewed_at, customer_id, url, referrer, payload)
            SELECT TIMESTAMP('2024-03-01') + INTERVAL seq * 97 SECOND
                + INTERVAL MOD(seq * 31, 1000000) MICROSECOND,
              IF(MOD(seq, 4) = 0, NULL, 1 + MOD({h('pv')}, {n['shop.customers']})),
              CONCAT('/products/', 1 + MOD({h('url')}, {n['shop.products']}), '?ref=', MOD(seq, 17)),
              IF(MOD(seq, 2) = 0, NULL, 'https://search.example/?q=caf%C3%A9'),
              IF(MOD(seq, 8) = 0, UNHEX(CONCAT('00', SHA2(CONCAT('{seed}:pv:', seq), 224), '00')), NULL)
            FROM shop.seq_1_to_{n['shop.page_views']}"""),
        # Rows written before the demo's workload starts: it only checks ids above these.
        ("shop.ledger", f"""INSERT INTO shop.ledger (id, c, writer, updated_at)
            SELECT seq, MOD({h('ledger')}, 100), 'seed',
              TIMESTAMP('2024-01-01') + INTERVAL seq SECOND
            FROM shop.seq_1_to_{n['shop.ledger']}"""),
        ("hr.departments", "INSERT INTO hr.departments (id, name) VALUES "
         + ", ".join(f"({i}, '{name}')" for i, name in enumerate(_DEPARTMENTS, start=1))),
        ("hr.employees", f"""INSERT INTO hr.employees
            (emp_no, department_id, first_name, last_name, hired_on, left_on, badge_photo)
            SELECT 10000 + seq, 1 + MOD({h('dept')}, {len(_DEPARTMENTS)}),
              {names.format(x=h('efirst'))}, {surnames.format(x=h('elast'))},
              DATE('2010-01-01') + INTERVAL MOD({h('hired')}, 5000) DAY,
              IF(MOD(seq, 6) = 0, DATE('2024-01-01') + INTERVAL MOD(seq, 300) DAY, NULL),
              IF(MOD(seq, 2) = 0, NULL, UNHEX(SHA2(CONCAT('{seed}:badge:', seq), 512)))
            FROM shop.seq_1_to_{n['hr.employees']}"""),
        ("hr.salaries", f"""INSERT INTO hr.salaries (emp_no, from_date, to_date, amount)
            SELECT 10000 + 1 + (seq - 1) DIV 3,
              DATE('2015-01-01') + INTERVAL MOD(seq - 1, 3) YEAR,
              IF(MOD(seq - 1, 3) = 2, NULL, DATE('2015-12-31') + INTERVAL MOD(seq - 1, 3) YEAR),
              (3000000 + MOD({h('sal')}, 9000000)) / 100
            FROM shop.seq_1_to_{n['hr.salaries']}"""),
    ]


_ROUTINES_DDL = (
    f"""CREATE DEFINER={_DEFINER} FUNCTION shop.order_total(p_order BIGINT UNSIGNED)
      RETURNS DECIMAL(12,2) READS SQL DATA SQL SECURITY DEFINER
      RETURN (SELECT COALESCE(SUM(qty * unit_price), 0) FROM shop.order_items WHERE order_id = p_order)""",
    f"""CREATE DEFINER={_DEFINER} PROCEDURE shop.place_order(
        IN p_customer INT UNSIGNED, IN p_product INT UNSIGNED, IN p_qty INT, OUT p_order BIGINT UNSIGNED)
      MODIFIES SQL DATA SQL SECURITY DEFINER
      BEGIN
        INSERT INTO shop.orders (customer_id, status, ordered_at) VALUES (p_customer, 'new', NOW(6));
        SET p_order = LAST_INSERT_ID();
        INSERT INTO shop.order_items (order_id, line_no, product_id, qty, unit_price)
          SELECT p_order, 1, id, p_qty, price FROM shop.products WHERE id = p_product;
        UPDATE shop.orders SET total = shop.order_total(p_order) WHERE id = p_order;
      END""",
    f"""CREATE DEFINER={_DEFINER} TRIGGER shop.order_items_default_price
      BEFORE INSERT ON shop.order_items FOR EACH ROW
      BEGIN
        IF NEW.unit_price IS NULL OR NEW.unit_price = 0 THEN
          SET NEW.unit_price = (SELECT price FROM shop.products WHERE id = NEW.product_id);
        END IF;
      END""",
    f"""CREATE DEFINER={_DEFINER} SQL SECURITY DEFINER VIEW shop.customer_order_totals AS
      SELECT c.id AS customer_id, c.email, COUNT(o.id) AS orders, COALESCE(SUM(o.total), 0) AS spent
      FROM shop.customers c LEFT JOIN shop.orders o ON o.customer_id = c.id
      GROUP BY c.id, c.email""",
    # Harmless if the scheduler runs: the dataset's page views are far younger than 20 years.
    f"""CREATE DEFINER={_DEFINER} EVENT shop.purge_old_page_views
      ON SCHEDULE EVERY 1 DAY STARTS '2024-01-01 03:00:00' ON COMPLETION PRESERVE ENABLE
      DO DELETE FROM shop.page_views WHERE viewed_at < NOW() - INTERVAL 20 YEAR""",
)


@dataclass(frozen=True)
class SampleDataset:
    """What was built: enough for the demo and tests to check a copy against."""

    scale: int
    seed: int
    app_user: str
    app_password: Secret
    row_counts: dict[str, int] = field(default_factory=dict)  # "schema.table" -> rows
    routines: tuple[str, ...] = ("shop.order_total", "shop.place_order")
    triggers: tuple[str, ...] = ("shop.order_items_default_price",)
    views: tuple[str, ...] = ("shop.customer_order_totals",)
    events: tuple[str, ...] = ("shop.purge_old_page_views",)
    definer: str = f"{DEFINER_USER}@%"
    build_seconds: float = 0.0
    bytes_on_disk: int = 0  # data + index length as information_schema reports it

    @property
    def ledger_max_id(self) -> int:
        return self.row_counts["shop.ledger"]

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(self.row_counts)


def _users_sql(app_password: Secret) -> list[tuple[str, tuple[str, ...]]]:
    owner_password = secrets.token_urlsafe(24)  # nobody logs in as the definer: the account is locked
    grants: list[tuple[str, tuple[str, ...]]] = [
        (f"CREATE USER `{DEFINER_USER}`@`%%` IDENTIFIED BY %s ACCOUNT LOCK", (owner_password,)),
        (f"CREATE USER `{APP_USER}`@`%%` IDENTIFIED BY %s", (app_password.reveal(),)),
    ]
    for schema in SCHEMAS:
        grants.append((f"GRANT ALL PRIVILEGES ON `{schema}`.* TO `{DEFINER_USER}`@`%`", ()))
        grants.append(
            (f"GRANT SELECT, INSERT, UPDATE, DELETE, EXECUTE ON `{schema}`.* TO `{APP_USER}`@`%`", ())
        )
    return grants


def create_sample_dataset(
    session_or_endpoint: MySQLSession | Endpoint,
    *,
    scale: int = 1,
    seed: int = 20240601,
    app_password: Secret | None = None,
) -> SampleDataset:
    """Build ``shop`` and ``hr`` on an empty source; refuses to run where either schema exists."""
    if scale < 1:
        raise ValueError("scale must be >= 1")
    if app_password is None:
        app_password = Secret(secrets.token_urlsafe(18))
    if isinstance(session_or_endpoint, Endpoint):
        session, own_session = MySQLSession(session_or_endpoint), True
    else:
        session, own_session = session_or_endpoint, False
    started = time.monotonic()
    try:
        version = str(session.value("SELECT VERSION()"))
        if "mariadb" not in version.lower():
            raise EnvironmentProblem(
                f"the sample dataset needs MariaDB's sequence engine; this server is {version}",
                hint="build the sandbox source on MariaDB 10.x",
            )
        existing = session.rows(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name IN ('shop', 'hr')"
        )
        if existing:
            raise EnvironmentProblem(
                f"schemas {', '.join(r[0] for r in existing)} already exist on {session.endpoint.describe()}",
                hint="the sample dataset is built once, on an empty source",
            )
        for schema in SCHEMAS:
            session.execute(f"CREATE DATABASE `{schema}` {CHARSET}")
        for ddl in _TABLES_DDL:
            session.execute(ddl)
        row_counts: dict[str, int] = {}
        for table, sql in _fill_statements(scale, seed):
            row_counts[table] = session.execute(sql)
        for sql, args in _users_sql(app_password):
            session.execute(sql, args or None)
        for ddl in _ROUTINES_DDL:
            session.execute(ddl)
        # Fresh statistics, so the size below (and any copy planner's estimates) are not stale.
        session.rows("ANALYZE TABLE " + ", ".join(row_counts))
        size = session.value(
            "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables"
            " WHERE table_schema IN ('shop', 'hr')"
        )
    finally:
        if own_session:
            session.close()
    elapsed = time.monotonic() - started
    dataset = SampleDataset(
        scale=scale,
        seed=seed,
        app_user=APP_USER,
        app_password=app_password,
        row_counts=row_counts,
        build_seconds=elapsed,
        bytes_on_disk=int(size),
    )
    log.info(
        "sandbox.dataset_built",
        scale=scale,
        rows=sum(row_counts.values()),
        bytes=dataset.bytes_on_disk,
        seconds=round(elapsed, 2),
    )
    return dataset
