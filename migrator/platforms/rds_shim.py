"""RDS's `mysql.rds_*` procedures and its master-user privileges, on a local MariaDB server.

RDS gives its master user no SUPER: replication control and binlog retention go through
procedures in the `mysql` schema that run as their definer. This module installs procedures of the
same names and documented behaviour, so the `rds` platform's SQL runs unchanged against a local
test server, called by a master user that is refused `STOP SLAVE` and `SET GLOBAL` as on RDS.

Documented behaviour mirrored here (AWS "MySQL on Amazon RDS SQL reference"):
- ``rds_set_configuration(name, value)``: 'binlog retention hours' 1..2160 or NULL (= not retained,
  the RDS default); 'source delay' / 'target delay' 0..86400 seconds.
- ``rds_show_configuration()``: one row per setting: name, value, description.
- ``rds_stop_replication()`` / ``rds_start_replication()``: stop/start both replication threads.
- ``rds_kill(thread_id)``: end a connection (not one of the definer's own system threads); an id that is
  gone fails as KILL does (1094 Unknown thread id).
- ``rds_set_external_master(host, port, user, password, log_file, log_pos, ssl_encryption)`` (MariaDB,
  MySQL <= 8.0) and ``rds_set_external_source`` (same arguments, MySQL 8.4): make the instance a replica of
  an external server from that file/position; ``rds_reset_external_master`` / ``_source``: forget it.
  RDS runs these for a master user that may not CHANGE MASTER itself; so do these, as their definer.
- ``mysql.rds_heartbeat2``: the table RDS's own heartbeat writes to; ``install(heartbeat_event=True)``
  adds an event writing it every second, so a source's binlog moves on its own as on RDS.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MAX_RETENTION_HOURS = 2160  # 90 days: the RDS for MySQL/MariaDB maximum

# RDS for MariaDB 10.6+ master user: everything but SUPER, SHUTDOWN, FILE and the admin privileges
# that replace SUPER (READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, BINLOG ADMIN, ...).
MASTER_USER_PRIVILEGES = (
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "RELOAD",
    "PROCESS",
    "REFERENCES",
    "INDEX",
    "ALTER",
    "SHOW DATABASES",
    "CREATE TEMPORARY TABLES",
    "LOCK TABLES",
    "EXECUTE",
    "REPLICATION SLAVE",
    "BINLOG MONITOR",
    "SLAVE MONITOR",
    "CREATE VIEW",
    "SHOW VIEW",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
    "CREATE USER",
    "EVENT",
    "TRIGGER",
)

_TABLES = (
    """CREATE TABLE IF NOT EXISTS mysql.rds_configuration (
         name VARCHAR(100) NOT NULL PRIMARY KEY,
         value VARCHAR(100) NULL,
         description VARCHAR(300) NOT NULL
       ) ENGINE=InnoDB""",
    """INSERT IGNORE INTO mysql.rds_configuration (name, value, description) VALUES
       ('binlog retention hours', NULL,
        'binlog retention hours specifies the duration in hours before binary logs are deleted.'),
       ('source delay', '0',
        'source delay specifies replication delay in seconds between current instance and its master.'),
       ('target delay', '0',
        'target delay specifies replication delay in seconds for its future read-replica.')""",
    """CREATE TABLE IF NOT EXISTS mysql.rds_heartbeat2 (
         id INT NOT NULL PRIMARY KEY,
         value BIGINT NULL
       ) ENGINE=InnoDB""",
)

_PROCEDURES = {
    "rds_set_configuration": """
CREATE DEFINER='root'@'localhost' PROCEDURE mysql.rds_set_configuration(IN p_name VARCHAR(30), IN p_value INT)
SQL SECURITY DEFINER
BEGIN
  IF p_name NOT IN ('binlog retention hours', 'source delay', 'target delay') THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'Invalid configuration name';
  END IF;
  IF p_name = 'binlog retention hours' AND p_value IS NOT NULL AND (p_value < 1 OR p_value > 2160) THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'binlog retention hours must be 1-2160';
  END IF;
  IF p_name IN ('source delay', 'target delay') AND (p_value IS NULL OR p_value < 0 OR p_value > 86400) THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'The delay must be between 0 and 86400 seconds';
  END IF;
  UPDATE mysql.rds_configuration SET value = p_value WHERE name = p_name;
END""",
    "rds_show_configuration": """
CREATE DEFINER='root'@'localhost' PROCEDURE mysql.rds_show_configuration()
SQL SECURITY DEFINER
BEGIN
  SELECT name, value, description FROM mysql.rds_configuration ORDER BY name;
END""",
    "rds_stop_replication": """
CREATE DEFINER='root'@'localhost' PROCEDURE mysql.rds_stop_replication()
SQL SECURITY DEFINER
BEGIN
  STOP SLAVE;
  SELECT 'Slave is down or disabled' AS Message;
END""",
    "rds_start_replication": """
CREATE DEFINER='root'@'localhost' PROCEDURE mysql.rds_start_replication()
SQL SECURITY DEFINER
BEGIN
  START SLAVE;
  SELECT 'Slave running normally.' AS Message;
END""",
    "rds_kill": """
CREATE DEFINER='root'@'localhost' PROCEDURE mysql.rds_kill(IN thread BIGINT)
SQL SECURITY DEFINER
BEGIN
  DECLARE owner VARCHAR(128);
  SELECT user INTO owner FROM information_schema.processlist WHERE id = thread;
  IF owner IN ('rdsadmin', 'system user', 'event_scheduler') THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'You are not owner of thread';
  END IF;
  KILL CONNECTION thread;
END""",
}

_EXTERNAL_SET = """
CREATE DEFINER='root'@'localhost' PROCEDURE mysql.{name}(
  IN host_name VARCHAR(255), IN host_port INT, IN replication_user_name VARCHAR(255),
  IN replication_user_password VARCHAR(255), IN mysql_binary_log_file_name VARCHAR(255),
  IN mysql_binary_log_file_location BIGINT, IN ssl_encryption TINYINT)
SQL SECURITY DEFINER
BEGIN
  IF host_name IS NULL OR host_port IS NULL OR mysql_binary_log_file_name IS NULL THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'host, port and binary log file are required';
  END IF;
  STOP SLAVE;
  SET @rds_change = CONCAT('CHANGE MASTER TO MASTER_HOST=', QUOTE(host_name), ', MASTER_PORT=', host_port,
    ', MASTER_USER=', QUOTE(replication_user_name), ', MASTER_PASSWORD=', QUOTE(replication_user_password),
    ', MASTER_LOG_FILE=', QUOTE(mysql_binary_log_file_name), ', MASTER_LOG_POS=', mysql_binary_log_file_location,
    ', MASTER_USE_GTID=no', IF(ssl_encryption = 1, ', MASTER_SSL=1', ''));
  PREPARE rds_stmt FROM @rds_change;
  EXECUTE rds_stmt;
  DEALLOCATE PREPARE rds_stmt;
  SET @rds_change = NULL;
END"""

_EXTERNAL_RESET = """
CREATE DEFINER='root'@'localhost' PROCEDURE mysql.{name}()
SQL SECURITY DEFINER
BEGIN
  STOP SLAVE;
  RESET SLAVE ALL;
  SELECT 'Replication has been reset' AS Message;
END"""

for _suffix in ("master", "source"):
    _PROCEDURES[f"rds_set_external_{_suffix}"] = _EXTERNAL_SET.format(name=f"rds_set_external_{_suffix}")
    _PROCEDURES[f"rds_reset_external_{_suffix}"] = _EXTERNAL_RESET.format(name=f"rds_reset_external_{_suffix}")

_HEARTBEAT_EVENT = """
CREATE DEFINER='root'@'localhost' EVENT IF NOT EXISTS mysql.rds_heartbeat
ON SCHEDULE EVERY 1 SECOND DO
  INSERT INTO mysql.rds_heartbeat2 (id, value) VALUES (1, UNIX_TIMESTAMP(NOW(3)) * 1000)
  ON DUPLICATE KEY UPDATE value = VALUES(value)"""


def install_statements(*, heartbeat_event: bool = False) -> list[str]:
    statements = list(_TABLES)
    for name, body in _PROCEDURES.items():
        statements += [f"DROP PROCEDURE IF EXISTS mysql.{name}", body.strip()]
    if heartbeat_event:
        statements += [_HEARTBEAT_EVENT.strip(), "SET GLOBAL event_scheduler = ON"]
    return statements


def master_user_statements(user: str, password: str, host: str = "%") -> tuple[list[str], list[Any]]:
    """CREATE USER + GRANT for an RDS-like master user (no SUPER); returns statements and their args."""
    return (
        [
            "CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s",
            f"GRANT {', '.join(MASTER_USER_PRIVILEGES)} ON *.* TO %s@%s WITH GRANT OPTION",
        ],
        [(user, host, password), (user, host)],
    )


def run_as_root(conn: Any, statements: Iterable[str], args: Iterable[Any] | None = None) -> None:
    """Execute on an administrative pymysql connection (LocalServer.root())."""
    arg_list = list(args) if args is not None else None
    with conn.cursor() as cur:
        for i, sql in enumerate(statements):
            cur.execute(sql, arg_list[i] if arg_list else None)


def install(conn: Any, *, heartbeat_event: bool = False) -> None:
    """Install the tables and procedures (idempotent). ``conn``: a root connection to the server."""
    run_as_root(conn, install_statements(heartbeat_event=heartbeat_event))


def create_master_user(conn: Any, user: str, password: str, host: str = "%") -> None:
    statements, args = master_user_statements(user, password, host)
    run_as_root(conn, statements, args)
