"""``python -m bench.big_transaction --gb 2``: apply one source transaction of that size, report peak RSS.

A single ``INSERT ... SELECT`` on the source writes one row-based transaction of about --gb GB (rows of
--row-kb KB of incompressible text). The applier (step 7's code, one pass, in a fresh child process so
its RSS is its own) streams it into one target transaction. Prints the transaction's binlog size, the
apply time and the orchestrator's peak RSS (review B7: it once held the whole transaction, ~1.4x its
size plus object overhead). The target checks the rows arrived (count and checksum).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.ours import Outcome, _outcome, in_child
from bench.servers import ServerFarm, endpoint
from migrator.endpoint import Endpoint
from migrator.mysql.flavour import MARIADB_10_11
from migrator.mysql.positions import lag_bytes
from migrator.mysql.session import MySQLSession
from migrator.ports import SnapshotCoordinates
from migrator.tools.binlog_applier import BinlogApplier


@dataclass(frozen=True)
class Result:
    transaction_bytes: int  # the transaction's size in the binlog
    apply_seconds: float
    peak_rss_mb: float  # the applying process, whole life (interpreter and imports included)
    baseline_rss_mb: float  # the same process just before the apply
    apply_peak_rss_mb: float  # its highest RSS during the apply alone
    rows: int


def _status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def _reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS mark (VmHWM) from the current RSS, so it measures what follows only
    (the spawned child's start-up, e.g. unpickling and imports, may have peaked higher)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def apply_once(
    target: Endpoint, archive: Path, start: tuple[str, int], secrets_dir: Path, *,
    max_chunk_bytes: int, read_ahead_bytes: int,
) -> Outcome:
    """In the child: one apply pass from ``start``, as step 7 runs it."""
    applier = BinlogApplier(
        target, archive, MARIADB_10_11, schemas=frozenset({"big"}), start=SnapshotCoordinates(*start),
        secrets_dir=secrets_dir, max_chunk_bytes=max_chunk_bytes, read_ahead_bytes=read_ahead_bytes,
    )
    applier.ensure_position_table()
    baseline = _rss_mb()
    exact = _reset_peak_rss()
    started = time.monotonic()
    progress = applier.apply_available()
    seconds = time.monotonic() - started
    apply_peak = _status_mb("VmHWM") if exact else float("nan")
    applier.close()
    return _outcome(seconds, {"baseline_rss_mb": baseline, "apply_peak_rss_mb": apply_peak,
                              "transactions": progress.transactions, "position": list(progress.position)})


def run(gb: float, root: Path, *, row_kb: int = 256, max_chunk_bytes: int = 8 << 20,
        read_ahead_bytes: int = 16 << 20) -> Result:
    farm = ServerFarm(root, buffer_pool_mb=256)
    try:
        source = farm.start("source")
        target = farm.start("target", log_bin=False)
        rows = max(1, int(gb * (1 << 30) / (row_kb << 10)))
        with MySQLSession(endpoint(source)) as s, MySQLSession(target_ep := endpoint(target)) as t:
            for session in (s, t):
                session.execute("CREATE DATABASE big")
                session.execute("CREATE TABLE big.t (id INT PRIMARY KEY, v LONGTEXT NOT NULL)")
            s.execute("FLUSH BINARY LOGS")
            file, position = (str(v) for v in s.rows("SHOW MASTER STATUS")[0][:2])
            start = (file, int(position))
            # One statement, one transaction: MD5 text repeated to row_kb KB, a different text per row.
            s.execute(f"INSERT INTO big.t SELECT seq, REPEAT(MD5(seq), {row_kb * 32}) FROM mysql.seq_1_to_{rows}")
            end_file, end_pos = (str(v) for v in s.rows("SHOW MASTER STATUS")[0][:2])
            # The transaction may end in a later file than it began (a file holds at least one whole
            # transaction, so it grows past max_binlog_size and the next write rotates).
            sizes = [(str(r[0]), int(r[1])) for r in s.rows("SHOW BINARY LOGS")]
            transaction_bytes = lag_bytes(sizes, start, (end_file, int(end_pos)))
            expected = s.rows("SELECT COUNT(*), SUM(CRC32(v)) FROM big.t")[0]
        archive = root / "archive"
        archive.mkdir()
        binlogs = sorted(p for p in source.datadir.glob("mysql-bin.[0-9]*"))
        for path in binlogs:
            os.symlink(path, archive / path.name)  # the archive the streamer would have written
        outcome = in_child(apply_once, target_ep, archive, start, root / "secrets",
                           max_chunk_bytes=max_chunk_bytes, read_ahead_bytes=read_ahead_bytes)
        with MySQLSession(target_ep) as t:
            got = t.rows("SELECT COUNT(*), SUM(CRC32(v)) FROM big.t")[0]
        if tuple(got) != tuple(expected):
            raise AssertionError(f"the target holds {got}, the source {expected}")
        detail: dict[str, Any] = outcome.detail
        return Result(transaction_bytes, outcome.seconds, outcome.rss_mb, float(detail["baseline_rss_mb"]),
                      float(detail["apply_peak_rss_mb"]), int(got[0]))
    finally:
        for server in list(farm.started):
            farm.discard(server)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.big_transaction", description=__doc__.splitlines()[0])
    p.add_argument("--gb", type=float, default=2.0, help="size of the source transaction, GB")
    p.add_argument("--row-kb", type=int, default=256, help="size of one row, KB")
    p.add_argument("--work-dir", type=Path, default=None, help="where servers live (default: a temp dir, removed)")
    args = p.parse_args(argv)
    root = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-bigtx-"))
    try:
        result = run(args.gb, root, row_kb=args.row_kb)
    finally:
        if args.work_dir is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"transaction      {result.transaction_bytes / (1 << 20):10.1f} MB in the binlog, {result.rows} rows")
    print(f"apply            {result.apply_seconds:10.1f} s  "
          f"({result.transaction_bytes / (1 << 20) / max(result.apply_seconds, 1e-9):.1f} MB/s)")
    print(f"peak RSS         {result.peak_rss_mb:10.1f} MB  (orchestrator, whole life; "
          f"{result.baseline_rss_mb:.1f} MB before the apply, {result.apply_peak_rss_mb:.1f} MB at most during it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
