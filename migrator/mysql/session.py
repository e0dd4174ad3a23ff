"""pymysql sessions: the only place that opens a MySQL connection from Python."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeAlias

import pymysql
import pymysql.cursors

from migrator.endpoint import Endpoint

# Errors worth another try: connection lost/refused, lock wait timeout, deadlock.
TRANSIENT_MYSQL_ERRORS = frozenset({2002, 2003, 2006, 2013, 2055, 1205, 1213, 1053, 1927})

Connection: TypeAlias = Any  # pymysql ships no type hints


def error_code(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return int(exc.args[0])
    return None


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, pymysql.err.InterfaceError):
        return True  # "(0, '')": the connection was already closed under us
    return error_code(exc) in TRANSIENT_MYSQL_ERRORS


def _ssl_context(endpoint: Endpoint) -> ssl.SSLContext | None:
    if endpoint.tls is None:
        return None
    ctx = ssl.create_default_context(cafile=str(endpoint.tls.ca_file) if endpoint.tls.ca_file else None)
    ctx.check_hostname = endpoint.tls.verify_identity
    return ctx


@dataclass(frozen=True)
class Timeouts:
    """How long one read or write on a session may block (review B12).

    Without them a black-holed connection (the peer gone without a reset) blocks its thread until
    TCP gives up, or forever while waiting for a result. The read timeout bounds the wait for one
    statement's result, so statements that legitimately run long (CHECKSUM TABLE of a big table,
    an index build) take a scaled one: MySQLSession.long_statement and scaled_read_timeout.
    TCP keepalive (KEEPALIVE_*) finds a dead peer within minutes however long the statement.
    """

    read: float = 3600.0
    write: float = 600.0


_configured = [Timeouts()]  # one slot: set once per run by set_default_timeouts
_UNSET: Any = object()
# A peer that stops answering keepalive probes is dead after IDLE + INTERVAL * COUNT seconds (2 min).
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 60, 10, 6
# The speed a long statement is assumed to at least reach, for scaled timeouts (bytes of table read).
SLOWEST_BYTES_PER_SECOND = 2_000_000


def set_default_timeouts(timeouts: Timeouts) -> None:
    """Every session opened afterwards without explicit timeouts uses these (from sync.*_timeout_seconds)."""
    _configured[0] = timeouts


def default_timeouts() -> Timeouts:
    return _configured[0]


def scaled_read_timeout(nbytes: int) -> float:
    """A read timeout for a statement that reads ``nbytes`` of table: never below the default."""
    return max(default_timeouts().read, nbytes / SLOWEST_BYTES_PER_SECOND)


def _keepalive(conn: Connection) -> None:
    sock = getattr(conn, "_sock", None)
    if sock is None:
        return
    with suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_COUNT)


def connect(
    endpoint: Endpoint,
    database: str | None = None,
    *,
    autocommit: bool = True,
    connect_timeout: float = 10,
    read_timeout: float | None = _UNSET,
    write_timeout: float | None = _UNSET,
    multi_statements: bool = False,
    opportunistic_tls: bool = False,
    local_infile: bool = False,
) -> Connection:
    """TLS is what the endpoint says: verified when configured, off when not.

    PyMySQL >= 1.2 would otherwise try TLS *unverified* (the "preferred" mode that silently
    falls back) and load the CA store on every connect (~17 ms here). Read and write timeouts are
    the defaults (set_default_timeouts) unless given; None means none (never used by the product).
    """
    from pymysql.constants import CLIENT

    read = default_timeouts().read if read_timeout is _UNSET else read_timeout
    write = default_timeouts().write if write_timeout is _UNSET else write_timeout
    conn = pymysql.connect(
        host=endpoint.host,
        port=endpoint.port,
        user=endpoint.user,
        password=endpoint.password.reveal(),
        database=database,
        autocommit=autocommit,
        charset="utf8mb4",
        connect_timeout=int(connect_timeout),
        read_timeout=max(1, int(read)) if read else None,
        write_timeout=max(1, int(write)) if write else None,
        ssl=_ssl_context(endpoint),
        client_flag=CLIENT.MULTI_STATEMENTS if multi_statements else 0,
        ssl_disabled=endpoint.tls is None and not opportunistic_tls,
        local_infile=local_infile,  # the copy's LOAD DATA LOCAL sessions only
    )
    _keepalive(conn)
    return conn


class MySQLSession:
    """A thin, typed wrapper over one connection: rows as tuples or dicts, parameters always bound."""

    def __init__(self, endpoint: Endpoint, database: str | None = None, **kwargs: Any) -> None:
        self.endpoint = endpoint
        self.conn: Connection = connect(endpoint, database, **kwargs)

    def close(self) -> None:
        with suppress(pymysql.err.Error):
            self.conn.close()

    def __enter__(self) -> MySQLSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, sql: str, args: Sequence[Any] | None = None) -> int:
        with self.conn.cursor() as cur:
            return int(cur.execute(sql, args))

    def rows(self, sql: str, args: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def dicts(self, sql: str, args: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        with self.conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def one(self, sql: str, args: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
        rows = self.rows(sql, args)
        return rows[0] if rows else None

    def value(self, sql: str, args: Sequence[Any] | None = None) -> Any:
        row = self.one(sql, args)
        return row[0] if row else None

    def variable(self, name: str) -> Any:
        row = self.one("SHOW GLOBAL VARIABLES LIKE %s", (name,))
        return row[1] if row else None

    @contextmanager
    def long_statement(self, seconds: float) -> Iterator[MySQLSession]:
        """Statements inside may wait ``seconds`` for their result (see scaled_read_timeout)."""
        previous = self.conn._read_timeout
        self.conn._read_timeout = max(1, int(seconds))
        try:
            yield self
        finally:
            self.conn._read_timeout = previous

    @contextmanager
    def transaction(self) -> Iterator[MySQLSession]:
        self.conn.begin()
        try:
            yield self
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.commit()


def quote_identifier(name: str) -> str:
    """Backtick-quote an identifier, doubling backticks (sys.quote_identifier semantics)."""
    return "`" + name.replace("`", "``") + "`"


def qualified(schema: str, table: str) -> str:
    return f"{quote_identifier(schema)}.{quote_identifier(table)}"
