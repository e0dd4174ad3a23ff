"""Steady lag: a paced writer on the source while the product's streamer and applier run (step 7 live).

A writer process commits single-row transactions at ``rate`` per second on the source, from 4 sessions. Every
``sample_every`` seconds the sampler notes the source's binlog head and the moment, then polls the
target's applied position (``_migrator.apply_position``) until it reaches that head: the time it
took is one lag sample, the delay a write waits before it is on the target, streaming included.
"""

from __future__ import annotations

import multiprocessing
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from bench.ours import Outcome, _outcome
from migrator.endpoint import Endpoint
from migrator.mysql.flavour import MARIADB_10_11
from migrator.mysql.positions import position_key, source_head
from migrator.mysql.session import MySQLSession
from migrator.ports import SnapshotCoordinates
from migrator.sync_status import applied_position
from migrator.tools.binlog_applier import BinlogApplier
from migrator.tools.binlog_streamer import BinlogStreamer

SCHEMA = "lagdb"
_DDL = (
    f"CREATE DATABASE IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.events (
      id BIGINT NOT NULL PRIMARY KEY,
      kind VARCHAR(20) NOT NULL,
      amount DECIMAL(12,2) NOT NULL,
      at DATETIME(6) NOT NULL,
      KEY idx_kind (kind)
    ) ENGINE=InnoDB""",
)


def _writer(source: Endpoint, rate: float, seconds: float, first_id: int, done: Any, *, connections: int = 4) -> None:
    """Paced autocommit writes from ``connections`` sessions: 70% INSERT, 30% UPDATE of a recent row.

    One session could not reach 1,000 tx/s on a VM whose fsync takes 1.5 ms (639 tx/s measured:
    each commit waits for its own binlog and redo flushes); an application's several connections
    share those flushes (group commit), and so do these.
    """
    counts = [0] * connections

    def paced(k: int) -> None:
        with MySQLSession(source) as s:
            share = rate / connections
            n = 0
            while (now := time.monotonic()) - started < seconds:
                due = started + (n + k / connections) / share
                if due > now:
                    time.sleep(due - now)
                i = first_id + k + n * connections  # this session's own ids
                if n % 10 < 7 or n < 20:
                    s.execute(
                        f"INSERT INTO {SCHEMA}.events VALUES (%s, %s, %s, NOW(6))", (i, f"kind{i % 7}", i % 1000)
                    )
                else:
                    s.execute(
                        f"UPDATE {SCHEMA}.events SET amount = amount + 1, at = NOW(6) WHERE id = %s",
                        (i - 13 * connections,),
                    )
                n += 1
                counts[k] = n

    started = time.monotonic()
    threads = [threading.Thread(target=paced, args=(k,)) for k in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.value = sum(counts) / (time.monotonic() - started)


def run_lag(
    source: Endpoint,
    target: Endpoint,
    *,
    archive_dir: Path,
    secrets_dir: Path,
    rate: float,
    seconds: float,
    sample_every: float = 0.5,
) -> Outcome:
    """Returns an Outcome whose seconds is the median lag; detail has p99, max, rate."""
    with MySQLSession(source) as s, MySQLSession(target) as t:
        for sql in _DDL:
            s.execute(sql)
            t.execute(sql)
        first_id = int(s.value(f"SELECT COALESCE(MAX(id), 0) + 1000 FROM {SCHEMA}.events"))
        s.execute("FLUSH BINARY LOGS")
        head = source_head(s, MARIADB_10_11)
    streamer = BinlogStreamer(source, archive_dir, MARIADB_10_11, 4242, secrets_dir=secrets_dir)
    streamer.start(head.file)
    applier = BinlogApplier(
        target,
        archive_dir,
        MARIADB_10_11,
        schemas=frozenset({SCHEMA}),
        start=SnapshotCoordinates(file=head.file, position=head.position, gtid=None),
        secrets_dir=secrets_dir,
    )
    applier.ensure_position_table()
    stop = threading.Event()
    thread = threading.Thread(target=applier.run, args=(stop,), name="applier", daemon=True)
    thread.start()
    ctx = multiprocessing.get_context("spawn")
    achieved = ctx.Value("d", 0.0)
    writer = ctx.Process(target=_writer, args=(source, rate, seconds, first_id, achieved))
    samples: list[float] = []
    try:
        writer.start()
        time.sleep(1.0)  # let the writer reach its pace before sampling
        with MySQLSession(source) as s, MySQLSession(target) as t:
            while writer.is_alive():
                tick = time.monotonic()
                wanted = position_key(source_head(s, MARIADB_10_11))
                while True:
                    applied = applied_position(t)
                    if applied is not None and position_key(applied) >= wanted:
                        break
                    if time.monotonic() - tick > 60:
                        raise RuntimeError("the applier fell more than 60 s behind")
                    if applier.error is not None:
                        raise RuntimeError(f"the applier stopped: {applier.error}")
                    time.sleep(0.005)
                samples.append(time.monotonic() - tick)
                time.sleep(max(0.0, tick + sample_every - time.monotonic()))
        writer.join()
    finally:
        if writer.is_alive():
            writer.kill()
        stop.set()
        thread.join(timeout=30)
        streamer.stop()
    if not samples:
        raise RuntimeError("no lag sample was taken")
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return _outcome(
        statistics.median(samples),
        {"p99": p99, "max": ordered[-1], "samples": len(samples), "rate": achieved.value},
    )
