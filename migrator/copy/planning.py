"""The copy's plan: the order tables are copied in, planning batch by batch in the background, and
how long one chunk may take. How a table is cut into chunks is migrator.mysql.chunking's (shared
with the checksum)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from migrator.mysql.chunking import Chunk, plan_chunks
from migrator.mysql.schema import TableInfo
from migrator.mysql.session import MySQLSession

# A chunk is stuck, not slow, past this: the floor, then seconds per MB it writes and per MB it scans.
MIN_CHUNK_TIMEOUT = 300.0
SECONDS_PER_MB_WRITTEN = 30.0  # the budget step 6 gave every pipe (copy.chunk_mb * 30)
SECONDS_PER_MB_SCANNED = 2.0


def chunk_timeout(table: TableInfo, chunks: Sequence[Chunk], chunk_bytes: int) -> float:
    """Seconds one of ``table``'s chunks may take: scaled by what it writes and reads (review B8).

    A table copied whole (its key cannot be split) writes all of itself in one chunk; a hash bucket
    writes its share but scans the whole table. A fixed budget made big unsplittable tables uncopyable.
    """
    rows = [c for c in chunks if not c.is_indexes]
    size = max(0, table.data_length)
    written = max(float(chunk_bytes), size / max(1, len(rows)))
    scanned = float(size) if any(c.buckets for c in rows) else written
    mb = 1024 * 1024
    return max(MIN_CHUNK_TIMEOUT, written / mb * SECONDS_PER_MB_WRITTEN + scanned / mb * SECONDS_PER_MB_SCANNED)


def plan_copy(
    session: MySQLSession,
    tables: Sequence[TableInfo],
    chunk_bytes: int,
    *,
    workers: int = 1,
    connect: Callable[[], MySQLSession] | None = None,
) -> list[Chunk]:
    """Step 6's plan: every table's chunks; tables with deferred indexes first, largest indexes first.

    Workers take chunks in this order, and a table's index build (one server thread) starts once its
    rows are in. The builds are the jobs that cannot be split, so the longest ones (the most index
    bytes on the source) are started first and overlap the other tables' loads instead of being the
    last thing left running: the classic longest-first cure for a long tail. (Ordered by data size
    instead, the bench's orders table, 4th largest but with 2 indexes, built them alone for its
    last 1.7 s.) A table with no index to build goes last, largest first.

    With ``workers`` > 1 and ``connect`` (a new snapshot session, used as a context manager), that
    many tables are planned at once: walking a key is one server thread's work per table, and
    planning ran alone before the copy began (3.7 s of a 32 s copy in the bench, one core idle).
    """
    if workers > 1 and connect is not None and len(tables) > 1:

        def plan_one(table: TableInfo) -> list[Chunk]:
            assert connect is not None
            with connect() as own:
                return plan_chunks(own, table, chunk_bytes)

        with ThreadPoolExecutor(max_workers=min(workers, len(tables)), thread_name_prefix="plan") as pool:
            planned = list(pool.map(plan_one, tables))
    else:
        planned = [plan_chunks(session, table, chunk_bytes) for table in tables]

    def order(pair: tuple[TableInfo, list[Chunk]]) -> tuple[bool, int, int, str, str]:
        table, chunks = pair
        builds = any(c.is_indexes for c in chunks)
        return (not builds, -table.index_length if builds else 0, -table.data_length, table.schema, table.name)

    return [chunk for _, chunks in sorted(zip(tables, planned, strict=True), key=order) for chunk in chunks]


def copy_order(tables: Sequence[TableInfo]) -> list[TableInfo]:
    """plan_copy's order known before planning: secondary-index bytes first (largest builds start
    first), then data size. Tables without secondary indexes have no index bytes on InnoDB."""
    return sorted(tables, key=lambda t: (-t.index_length, -t.data_length, t.schema, t.name))


# A planned batch holds about this many chunks (by the size estimate) or this many tables, whichever
# comes first: the copy's memory and the journal's plan grow batch by batch, not with the database.
BATCH_CHUNKS = 512
BATCH_TABLES = 256


def batches(tables: Sequence[TableInfo], chunk_bytes: int) -> list[list[TableInfo]]:
    """``tables`` (in copy order) cut into planning batches (see BATCH_CHUNKS)."""
    out: list[list[TableInfo]] = []
    current: list[TableInfo] = []
    estimate = 0
    for table in tables:
        current.append(table)
        estimate += max(1, -(-table.data_length // chunk_bytes))
        if estimate >= BATCH_CHUNKS or len(current) >= BATCH_TABLES:
            out.append(current)
            current, estimate = [], 0
    if current:
        out.append(current)
    return out


class LazyPlanner:
    """Plans a copy batch by batch, the next batch in the background while the current one is copied.

    Each table is planned by one of ``workers`` threads, each with its own snapshot session kept for
    the whole copy (``connect`` opens one). Tables in ``known`` are not planned here: the caller
    gives their journaled chunks instead (a resume never re-plans a table, whose chunk ids would
    differ). At most two batches are held at once, whatever the number of tables (review C2, C3).
    """

    def __init__(
        self,
        connect: Callable[[], MySQLSession],
        chunk_bytes: int,
        *,
        workers: int,
        known: Callable[[TableInfo], list[Chunk] | None],
    ) -> None:
        self.connect = connect
        self.chunk_bytes = chunk_bytes
        self.workers = max(1, workers)
        self.known = known
        self._sessions: list[MySQLSession] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def _session(self) -> MySQLSession:
        session: MySQLSession | None = getattr(self._local, "session", None)
        if session is None:
            session = self.connect()
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _plan_one(self, table: TableInfo) -> list[Chunk]:
        return plan_chunks(self._session(), table, self.chunk_bytes)

    def _plan_batch(self, pool: ThreadPoolExecutor, tables: list[TableInfo]) -> list[list[Chunk] | None]:
        return list(pool.map(self._plan_one, tables))

    def plan(
        self, tables: Sequence[TableInfo]
    ) -> Iterator[tuple[list[TableInfo], list[Chunk], list[Chunk]]]:
        """Yields ``(batch tables, batch chunks in copy order, chunks newly planned to journal)``."""
        groups = batches(tables, self.chunk_bytes)
        if not groups:
            return
        with (
            ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="plan") as pool,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="plan-batch") as ahead,
        ):
            try:

                def start(group: list[TableInfo]) -> tuple[list[list[Chunk] | None], Future[list[list[Chunk] | None]]]:
                    # Journaled tables are read here, in the caller's thread (the journal's connection).
                    known = [self.known(t) for t in group]
                    todo = [t for t, k in zip(group, known, strict=True) if k is None]
                    return known, ahead.submit(self._plan_batch, pool, todo)

                pending = start(groups[0])
                for i, group in enumerate(groups):
                    known, future = pending
                    planned = iter(future.result())
                    if i + 1 < len(groups):
                        pending = start(groups[i + 1])
                    chunks: list[Chunk] = []
                    new: list[Chunk] = []
                    for journaled in known:
                        if journaled is not None:
                            chunks.extend(journaled)
                            continue
                        fresh = next(planned)
                        assert fresh is not None
                        chunks.extend(fresh)
                        new.extend(fresh)
                    yield group, chunks, new
            finally:
                with self._lock:
                    for session in self._sessions:
                        session.close()
                    self._sessions.clear()
