"""The demo's application: a live writer whose acknowledged writes are an oracle for loss and duplication.

One thread, one transaction at a time, each on a FRESH connection to wherever the local DNS file
points at that moment, so after the cut-over switches the record the writes land on the target.
It alternates ``INSERT`` of the next id (strictly increasing) with ``UPDATE ... SET c = c + 1`` of
a random acknowledged id: unique inserts and blind increments, never read-modify-write, because
those are the shapes whose loss or duplication a final read can prove (Jepsen's lesson).

Only acknowledged operations (COMMIT returned OK) are expected on the server. A COMMIT whose
outcome is unknown (the connection dropped after it was sent) is "in doubt": that insert may or
may not exist, that increment may or may not be counted, and ``verify`` tolerates exactly that.
Any failure before COMMIT is sent is a definite no-op, since autocommit is off and an
uncommitted transaction dies with its connection. Errors (read_only 1290, refused, lost
connection, DNS) are counted and retried after a short pause; their span is the write pause.

With ``shapes=True`` the same operations come in the transaction shapes real applications log (the
applier must replay each exactly once): an explicit transaction with autocommit off (the default
shape), a single statement with autocommit on, and an XA transaction (XA START ... XA END; XA
PREPARE; XA COMMIT, acknowledged at XA COMMIT), chosen by the seeded generator; now and then, while
``admin_gate()`` allows it, an ``ANALYZE TABLE`` and (with ``admin`` credentials) a ``FLUSH`` too (XA only
while ``xa_gate()`` allows, if given; the migration itself waits out prepared XA transactions where it takes
coordinates: the local replica's build in step 2 and the snapshot's stop in step 3). An XA
transaction whose outcome is unknown is rolled back later from a new connection if it is still prepared
(a prepared XA outlives its connection and would hold its row locks).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
import structlog

from migrator.dns.local import resolve
from migrator.endpoint import Endpoint
from migrator.errors import MigratorError
from migrator.mysql.session import MySQLSession, connect, error_code, qualified
from migrator.secrets import Secret

log = structlog.get_logger()

DNS_FAILURE = -1  # error "code" for a record that could not be resolved
CLIENT_FAILURE = 0  # a client-side error without a MySQL code (socket timeout, closed connection)


class _InDoubt(Exception):
    """COMMIT was sent and no answer came back."""


@dataclass(frozen=True)
class WorkloadStats:
    ops_ok: int
    inserts_ok: int
    updates_ok: int
    ops_failed: dict[int, int]  # error code -> failures (see DNS_FAILURE, CLIENT_FAILURE)
    in_doubt: int
    update_misses: int  # acknowledged UPDATEs that matched no row: an acknowledged row is gone
    longest_gap_s: float  # longest time between two successful writes: the pause the app saw
    switch_gap_s: float | None  # time between the last write on one server and the first on the next
    last_server: str | None  # host:port that served the last successful write
    ok_by_server: dict[str, int]
    running: bool

    @property
    def ops_failed_total(self) -> int:
        return sum(self.ops_failed.values())


@dataclass(frozen=True)
class WorkloadVerdict:
    server: str
    checked_ids: int
    missing_ids: tuple[int, ...]  # acknowledged inserts absent from the server
    unexpected_ids: tuple[int, ...]  # ids on the server the workload never wrote (or wrote twice)
    duplicated_ids: tuple[int, ...]  # counter above every possible value: an increment applied twice
    lost_update_ids: tuple[int, ...]  # counter below the acknowledged increments
    in_doubt_tolerated: int

    @property
    def ok(self) -> bool:
        return not (self.missing_ids or self.unexpected_ids or self.duplicated_ids or self.lost_update_ids)

    def describe(self) -> str:
        if self.ok:
            return (
                f"{self.server}: all {self.checked_ids} acknowledged rows and counters present "
                f"({self.in_doubt_tolerated} in-doubt operations tolerated)"
            )
        return (
            f"{self.server}: {len(self.missing_ids)} missing, {len(self.unexpected_ids)} unexpected, "
            f"{len(self.duplicated_ids)} duplicated, {len(self.lost_update_ids)} lost updates "
            f"(first ids: missing {list(self.missing_ids[:5])}, unexpected {list(self.unexpected_ids[:5])}, "
            f"duplicated {list(self.duplicated_ids[:5])}, lost {list(self.lost_update_ids[:5])})"
        )


@dataclass
class _Oracle:
    """What the server must hold: acknowledged ids and increments, plus what is in doubt."""

    first_id: int
    next_id: int
    acked: dict[int, int] = field(default_factory=dict)  # id -> acknowledged increments
    acked_order: list[int] = field(default_factory=list)  # for a seeded random choice
    doubtful_inserts: set[int] = field(default_factory=set)
    doubtful_increments: Counter[int] = field(default_factory=Counter)
    pending: tuple[str, int] | None = None  # the operation on the wire right now

    def copy(self) -> _Oracle:
        return _Oracle(
            first_id=self.first_id,
            next_id=self.next_id,
            acked=dict(self.acked),
            acked_order=[],
            doubtful_inserts=set(self.doubtful_inserts),
            doubtful_increments=Counter(self.doubtful_increments),
            pending=self.pending,
        )


class WriteWorkload:
    """``start()`` a writer thread against ``record_name``; ``stop()``; then ``verify(endpoint)``."""

    def __init__(
        self,
        dns_path: Path,
        record_name: str,
        user: str,
        password: Secret,
        *,
        rate_per_s: float,
        seed: int,
        schema: str = "shop",
        table: str = "ledger",
        writer: str | None = None,
        retry_pause_s: float = 0.05,
        connect_timeout_s: float = 2.0,
        statement_timeout_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        shapes: bool = False,
        admin: tuple[str, Secret] | None = None,
        admin_gate: Callable[[], bool] | None = None,
        xa_gate: Callable[[], bool] | None = None,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.dns_path = dns_path
        self.record_name = record_name
        self.user = user
        self.password = password
        self.interval_s = 1.0 / rate_per_s
        self.seed = seed
        self.table = qualified(schema, table)
        self.writer = (writer or f"workload-{seed}")[:32]
        self.retry_pause_s = retry_pause_s
        self.connect_timeout_s = connect_timeout_s
        self.statement_timeout_s = statement_timeout_s
        self._sleep = sleep
        self._monotonic = monotonic
        self._random = random.Random(seed)  # noqa: S311 - reproducible choice, not security
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fatal: BaseException | None = None
        self._oracle: _Oracle | None = None
        # statistics, guarded by _lock
        self._inserts_ok = 0
        self._updates_ok = 0
        self._failed: Counter[int] = Counter()
        self._in_doubt = 0
        self._update_misses = 0
        self._ok_by_server: Counter[str] = Counter()
        self._last_ok_at: float | None = None
        self._last_server: str | None = None
        self._longest_gap = 0.0
        self._switch_gap: float | None = None
        self._failing_since: float | None = None
        self.shapes = shapes
        self.admin = admin  # (user, password) for FLUSH, which needs RELOAD
        self.admin_gate = admin_gate or (lambda: True)
        self.xa_gate = xa_gate or (lambda: True)
        self._xa_count = 0
        self._xa_orphans: list[str] = []  # XIDs that may still be prepared somewhere
        self.shape_counts: Counter[str] = Counter()

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, *, first_id: int | None = None) -> None:
        """Begin writing. ids start after the table's current maximum unless ``first_id`` is given."""
        if self._thread is not None:
            raise RuntimeError("workload already started")
        if first_id is None:
            with MySQLSession(self._endpoint()) as session:
                first_id = int(session.value(f"SELECT COALESCE(MAX(id), 0) FROM {self.table}")) + 1
        self._oracle = _Oracle(first_id=first_id, next_id=first_id)
        self._thread = threading.Thread(target=self._run, name=f"workload-{self.seed}", daemon=True)
        self._thread.start()
        log.info("workload.started", record=self.record_name, first_id=first_id, interval_s=self.interval_s)

    def stop(self, timeout: float = 30.0) -> WorkloadStats:
        """Finish the operation in flight and stop; a bug in the writer itself is raised here."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"workload thread did not stop within {timeout} s")
        if self._fatal is not None:
            raise RuntimeError("workload thread crashed") from self._fatal
        stats = self.stats()
        log.info(
            "workload.stopped",
            ops_ok=stats.ops_ok,
            failed=stats.ops_failed_total,
            in_doubt=stats.in_doubt,
            longest_gap_s=round(stats.longest_gap_s, 3),
        )
        return stats

    @property
    def first_id(self) -> int:
        if self._oracle is None:
            raise RuntimeError("workload not started")
        return self._oracle.first_id

    def stats(self) -> WorkloadStats:
        with self._lock:
            return WorkloadStats(
                ops_ok=self._inserts_ok + self._updates_ok,
                inserts_ok=self._inserts_ok,
                updates_ok=self._updates_ok,
                ops_failed=dict(self._failed),
                in_doubt=self._in_doubt,
                update_misses=self._update_misses,
                longest_gap_s=self._longest_gap,
                switch_gap_s=self._switch_gap,
                last_server=self._last_server,
                ok_by_server=dict(self._ok_by_server),
                running=self._thread is not None and self._thread.is_alive(),
            )

    # --- the writer thread -------------------------------------------------------------------
    def _endpoint(self) -> Endpoint:
        host, port = resolve(self.dns_path, self.record_name)
        return Endpoint(host=host, port=port, user=self.user, password=self.password)

    def _run(self) -> None:
        try:
            next_at = self._monotonic()
            do_insert = True
            while not self._stop.is_set():
                ok = self._one_operation(do_insert)
                if ok:
                    do_insert = not do_insert
                    next_at = max(next_at + self.interval_s, self._monotonic())  # no bursts after a pause
                    delay = next_at - self._monotonic()
                else:
                    delay = self.retry_pause_s
                if delay <= 0:
                    continue
                if self._sleep is time.sleep:
                    self._stop.wait(delay)  # the real clock: wake at once on stop()
                else:
                    self._sleep(delay)
        except BaseException as exc:  # a bug here must not vanish with the thread
            self._fatal = exc
            log.exception("workload.crashed")

    def _choose(self, do_insert: bool) -> tuple[str, int]:
        assert self._oracle is not None
        with self._lock:
            if do_insert or not self._oracle.acked_order:
                return "insert", self._oracle.next_id
            return "update", self._random.choice(self._oracle.acked_order)

    def _one_operation(self, do_insert: bool) -> bool:
        """One transaction; True when acknowledged. Never raises for server or network trouble."""
        op, row_id = self._choose(do_insert)
        server = "?"
        try:
            endpoint = self._endpoint()
            server = f"{endpoint.host}:{endpoint.port}"
            shape = self._shape()
            if shape == "xa":
                matched = self._transact_xa(endpoint, op, row_id)
            else:
                matched = self._transact(endpoint, op, row_id, autocommit=shape == "autocommit")
        except _InDoubt as exc:
            self._record_in_doubt(op, row_id, server, exc.__cause__)
            return False
        except MigratorError as exc:  # the DNS record is missing or malformed right now
            self._record_failure(DNS_FAILURE, server, exc)
            return False
        except (pymysql.err.Error, OSError) as exc:
            self._record_failure(error_code(exc) or CLIENT_FAILURE, server, exc)
            return False
        self._record_ok(op, row_id, server, matched)
        return True

    def _shape(self) -> str:
        if not self.shapes:
            return "transaction"
        with self._lock:
            roll = self._random.random()
        if self._xa_orphans:
            self._settle_xa_orphans()
        if roll < 0.08 and self.admin_gate():
            self._admin_statement(roll < 0.04)
        shape = "transaction" if roll < 0.4 else "autocommit" if roll < 0.7 else "xa"
        if shape == "xa" and not self.xa_gate():
            shape = "transaction"
        self.shape_counts[shape] += 1
        return shape

    def _connect(self, endpoint: Endpoint, *, autocommit: bool = False) -> Any:
        # Any: pymysql ships no type hints, so the connection's methods are untyped anyway.
        return connect(
            endpoint,
            autocommit=autocommit,
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.statement_timeout_s,
            opportunistic_tls=False,
        )

    def _admin_statement(self, flush: bool) -> None:
        """ANALYZE TABLE (app privileges) or FLUSH PRIVILEGES (admin): they change no row, move the binlog."""
        try:
            endpoint = self._endpoint()
            if flush and self.admin is not None:
                endpoint = Endpoint(host=endpoint.host, port=endpoint.port, user=self.admin[0],
                                    password=self.admin[1])
                sql = "FLUSH PRIVILEGES"
            else:
                sql = f"ANALYZE TABLE {self.table}"
            conn = self._connect(endpoint, autocommit=True)
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    cur.fetchall()
                self.shape_counts["flush" if sql.startswith("FLUSH") else "analyze"] += 1
            finally:
                with contextlib.suppress(pymysql.err.Error):
                    conn.close()
        except (pymysql.err.Error, OSError, MigratorError) as exc:
            log.info("workload.admin_statement_failed", error=str(exc)[:200])

    def _transact_xa(self, endpoint: Endpoint, op: str, row_id: int) -> bool:
        """The operation as an XA transaction; acknowledged when XA COMMIT returns."""
        with self._lock:
            self._xa_count += 1
            xid = f"{self.writer}-{self._xa_count}"
        conn = self._connect(endpoint, autocommit=True)
        quoted = "'" + xid.replace("'", "''") + "'"
        started = False
        try:
            with conn.cursor() as cur:
                cur.execute(f"XA START {quoted}")
                started = True
                matched = self._statement(cur, op, row_id)
                cur.execute(f"XA END {quoted}")
                assert self._oracle is not None
                with self._lock:
                    self._oracle.pending = (op, row_id)
                try:
                    cur.execute(f"XA PREPARE {quoted}")
                    cur.execute(f"XA COMMIT {quoted}")
                except pymysql.err.OperationalError as exc:
                    if error_code(exc) in (2006, 2013, 2055):
                        self._xa_orphans.append(xid)
                        raise _InDoubt() from exc
                    self._xa_orphans.append(xid)  # the server said no: roll it back if it got prepared
                    raise
                except (pymysql.err.InterfaceError, OSError) as exc:
                    self._xa_orphans.append(xid)
                    raise _InDoubt() from exc
            return matched
        except (pymysql.err.Error, OSError):
            if started and xid not in self._xa_orphans:
                self._xa_orphans.append(xid)  # failed before PREPARE: the server ends it with the session
            raise
        finally:
            with contextlib.suppress(pymysql.err.Error):
                conn.close()

    def _settle_xa_orphans(self) -> None:
        """Roll back XA transactions of ours that may still be prepared (unknown XID: already settled)."""
        try:
            conn = self._connect(self._endpoint(), autocommit=True)
        except (pymysql.err.Error, OSError, MigratorError):
            return
        try:
            with conn.cursor() as cur:
                for xid in list(self._xa_orphans):
                    try:
                        cur.execute("XA ROLLBACK '" + xid.replace("'", "''") + "'")
                    except pymysql.err.Error as exc:
                        if error_code(exc) not in (1397, 1399):  # XAER_NOTA; XAER_RMFAIL: still active
                            raise
                        if error_code(exc) == 1399:
                            continue
                    self._xa_orphans.remove(xid)
        except (pymysql.err.Error, OSError):
            pass
        finally:
            with contextlib.suppress(pymysql.err.Error):
                conn.close()

    def _statement(self, cur: Any, op: str, row_id: int) -> bool:
        if op == "insert":
            cur.execute(
                f"INSERT INTO {self.table} (id, c, writer, updated_at) VALUES (%s, 0, %s, NOW(6))",
                (row_id, self.writer),
            )
        else:
            cur.execute(
                f"UPDATE {self.table} SET c = c + 1, writer = %s, updated_at = NOW(6) WHERE id = %s",
                (self.writer, row_id),
            )
        return bool(cur.rowcount == 1)

    def _transact(self, endpoint: Endpoint, op: str, row_id: int, *, autocommit: bool = False) -> bool:
        if autocommit:  # one statement, committed by the server as it returns: acknowledged or in doubt
            conn: Any = self._connect(endpoint, autocommit=True)
            try:
                with conn.cursor() as cur:
                    assert self._oracle is not None
                    with self._lock:
                        self._oracle.pending = (op, row_id)
                    try:
                        return self._statement(cur, op, row_id)
                    except pymysql.err.OperationalError as exc:
                        if error_code(exc) in (2006, 2013, 2055):
                            raise _InDoubt() from exc
                        raise
                    except (pymysql.err.InterfaceError, OSError) as exc:
                        raise _InDoubt() from exc
            finally:
                with contextlib.suppress(pymysql.err.Error):
                    conn.close()
        # Any: pymysql ships no type hints, so the connection's methods are untyped anyway.
        conn = connect(
            endpoint,
            autocommit=False,
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.statement_timeout_s,
            # Loopback sandbox, a connect per transaction: skip PyMySQL's per-connect TLS context.
            opportunistic_tls=False,
        )
        try:
            with conn.cursor() as cur:
                if op == "insert":
                    cur.execute(
                        f"INSERT INTO {self.table} (id, c, writer, updated_at) VALUES (%s, 0, %s, NOW(6))",
                        (row_id, self.writer),
                    )
                else:
                    cur.execute(
                        f"UPDATE {self.table} SET c = c + 1, writer = %s, updated_at = NOW(6) WHERE id = %s",
                        (self.writer, row_id),
                    )
                matched = bool(cur.rowcount == 1)
            assert self._oracle is not None
            with self._lock:
                # Cleared by the _record_* call that settles the outcome, not before: until then
                # a concurrent verify() must treat this operation as possibly visible.
                self._oracle.pending = (op, row_id)
            try:
                conn.commit()
            except pymysql.err.OperationalError as exc:
                # The server answered with an error: it did not commit. No answer: in doubt.
                if error_code(exc) in (2006, 2013, 2055):
                    raise _InDoubt() from exc
                raise
            except (pymysql.err.InterfaceError, OSError) as exc:
                raise _InDoubt() from exc
            return matched
        finally:
            with contextlib.suppress(pymysql.err.Error):
                conn.close()

    def _note_ok_time(self, server: str) -> None:
        now = self._monotonic()
        if self._last_ok_at is not None:
            gap = now - self._last_ok_at
            self._longest_gap = max(self._longest_gap, gap)
            if self._last_server is not None and server != self._last_server:
                self._switch_gap = gap
        self._last_ok_at = now
        self._last_server = server

    def _record_ok(self, op: str, row_id: int, server: str, matched: bool) -> None:
        assert self._oracle is not None
        with self._lock:
            oracle = self._oracle
            oracle.pending = None
            if op == "insert":
                oracle.acked[row_id] = 0
                oracle.acked_order.append(row_id)
                oracle.next_id = row_id + 1
                self._inserts_ok += 1
            else:
                self._updates_ok += 1
                if matched:
                    oracle.acked[row_id] += 1
                else:
                    self._update_misses += 1
            self._ok_by_server[server] += 1
            self._note_ok_time(server)
            failing_since = self._failing_since
            self._failing_since = None
        if failing_since is not None:
            log.info(
                "workload.writes_resumed",
                server=server,
                after_s=round(self._monotonic() - failing_since, 3),
            )
        if op == "update" and not matched:
            log.warning("workload.update_matched_no_row", id=row_id, server=server)

    def _record_in_doubt(self, op: str, row_id: int, server: str, cause: BaseException | None) -> None:
        assert self._oracle is not None
        with self._lock:
            oracle = self._oracle
            oracle.pending = None
            if op == "insert":
                oracle.doubtful_inserts.add(row_id)
                oracle.next_id = row_id + 1  # never reuse an id that may exist
            else:
                oracle.doubtful_increments[row_id] += 1
            self._in_doubt += 1
            self._failed[(error_code(cause) if cause else None) or CLIENT_FAILURE] += 1
        log.warning("workload.commit_in_doubt", op=op, id=row_id, server=server, error=str(cause))

    def _record_failure(self, code: int, server: str, exc: BaseException) -> None:
        with self._lock:
            if self._oracle is not None:
                self._oracle.pending = None
            self._failed[code] += 1
            first_of_streak = self._failing_since is None
            if first_of_streak:
                self._failing_since = self._monotonic()
        if first_of_streak:
            log.info("workload.write_failed", code=code, server=server, error=str(exc)[:200])

    # --- the oracle check --------------------------------------------------------------------
    def verify(self, endpoint: Endpoint) -> WorkloadVerdict:
        """Compare the server's rows with what was acknowledged; safe while the workload runs."""
        if self._oracle is None:
            raise RuntimeError("workload not started")
        with self._lock:
            before = self._oracle.copy()
        with MySQLSession(endpoint) as session:
            rows = session.rows(
                f"SELECT id, COUNT(*), MIN(c), MAX(c) FROM {self.table} WHERE id >= %s GROUP BY id",
                (before.first_id,),
            )
        with self._lock:
            after = self._oracle.copy()
        # Operations acknowledged or in flight while we read may or may not be visible to the read.
        possible_inserts = set(after.acked) | after.doubtful_inserts
        upper = Counter(after.acked) + after.doubtful_increments
        if after.pending is not None:
            op, row_id = after.pending
            if op == "insert":
                possible_inserts.add(row_id)
            else:
                upper[row_id] += 1
        present = {int(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows}  # id -> copies, min, max
        missing = sorted(i for i in before.acked if i not in present)
        unexpected: list[int] = []
        duplicated: list[int] = []
        lost: list[int] = []
        for row_id, (copies, low, high) in sorted(present.items()):
            if row_id not in possible_inserts:
                unexpected.append(row_id)
                continue
            if copies > 1 or high > upper.get(row_id, 0):
                duplicated.append(row_id)
            elif row_id in before.acked and low < before.acked[row_id]:
                lost.append(row_id)
        verdict = WorkloadVerdict(
            server=f"{endpoint.host}:{endpoint.port}",
            checked_ids=len(before.acked),
            missing_ids=tuple(missing),
            unexpected_ids=tuple(unexpected),
            duplicated_ids=tuple(duplicated),
            lost_update_ids=tuple(lost),
            in_doubt_tolerated=len(after.doubtful_inserts) + sum(after.doubtful_increments.values()),
        )
        log.info("workload.verified", ok=verdict.ok, verdict=verdict.describe())
        return verdict
