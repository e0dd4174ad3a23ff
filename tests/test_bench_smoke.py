"""The bench at a tiny size, one run: it must print its table with every row (no timing assertions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ROWS = (
    "ours: step 6",
    "ours: resume after kill -9 at half-way",
    "mysqldump | mysql",
    "mydumper -> myloader",
    "ours: step 7 applier",
    "mysqlbinlog | mysql",
    "server SQL thread (replica of the source)",
    "server SQL thread, 4 parallel",
    "ours: streamer + applier, writer at 200 tx/s",
    "ours: step 10 compare_tables",
    "pt-table-checksum",
    "CHECKSUM TABLE",
)


def test_bench_prints_every_row_at_5_mb(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--size-mb", "5", "--runs", "1", "--work-dir", str(tmp_path / "bench"),
         "--lag-rate", "200", "--lag-seconds", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout
    assert "median s" in table and "vs ours" in table and "paired" in table and "peak RSS" in table
    for name in ROWS:
        line = next((ln for ln in table.splitlines() if name in ln), None)
        assert line is not None, f"no row for {name!r} in:\n{table}"
    ours = next(ln for ln in table.splitlines() if "ours: step 6" in ln)
    assert "MB/s" in ours and " MB" in ours  # throughput and peak RSS of our process
    lag = next(ln for ln in table.splitlines() if "writer at 200 tx/s" in ln)
    assert "median lag; p99" in lag and "tx/s" in lag
