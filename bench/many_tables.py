"""``python -m bench.many_tables --tables 1000,10000``: many small tables through steps 1-10 (review C2).

For each size: a fresh source with that many small tables of mixed keys in one schema (integer,
text and composite primary keys, a NOT NULL unique key, keyless with and without an index, some
with secondary indexes to build), an empty target, and the product's own engine (``run_migration``
on the local platform, steps 1 to 10) in a child process so its peak RSS is its own. Prints, per
size: each step's seconds, the copy's seconds and how long it waited for plans, the planner's own
seconds (per-table planning summed over its threads, mostly overlapping the copy), the
orchestrator's peak RSS, the journal's size, and seconds per 1,000 tables (the goal: no worse at
10,000 than at 1,000).

Measured on the 2-core VM shared with other jobs (December 2026; load average 2-11, so seconds vary
by 2x between runs):

| tables | code | steps 1-10 | step 2 (local replica) | step 6 (copy) | step 8 | copy rate | peak RSS | journal |
|---|---|---|---|---|---|---|---|---|
| 1,000 | before (a98ee21) | 158 s | 13.3 s | 139.6 s | | 8.4 chunks/s | 58.7 MB | 0.39 MB |
| 1,000 | after C2 (dc3545f) | 43.6-59.9 s | 10.9-21.1 s | 29.8-34.0 s | 3.0 s | 39 chunks/s | 54 MB | 0.76 MB |
| 3,000 | after C2 (dc3545f) | 196.9 s | 43.1 s | 135.3 s | 12.7 s | | 62 MB | 2.0 MB |
| 10,000 | after C2 | ~1,420 s (resumed once) | 336 s | ~1,000 s | | 15.6 chunks/s | 77 MB (104 in step 8) | 3.2 MB |
| 1,000 | issue 13 item 3 | 15.8-19.9 s | 6.4-8.4 s | 5.0-6.6 s | 2.7-2.9 s | 230 chunks/s | 55 MB | 0.76 MB |
| 3,000 | issue 13 item 3 | 39.5-49.7 s | 16.8-20.0 s | 15.1-19.3 s | 4.5-7.9 s | 230 chunks/s | 62 MB | 2.0 MB |
| 1,000 | b69a871, one run | 11.5 s | 4.45 s | 4.03 s | 1.4 s | 290 chunks/s | 54.4 MB | 0.76 MB |
| 10,000 | b69a871, same run | 101.3 s | 34.68 s | 36.74 s | 16.7 s | 318 chunks/s | 88.3 MB | 6.52 MB |

The last two rows (`--tables 1000,10000`, load average 0.6-1.6): 11.5 s per 1,000 tables at 1,000 and
10.1 s at 10,000 (was ~142 s at 10,000): the goal holds. Inside that, step 8 grows a little faster than
the table count (1.4 s, then 16.7 s) and step 10, with no writer at all, takes 2.0 s at 10,000 tables
(0.1 s at 1,000): per-table work that is left in the pause.

Per 1,000 tables, 1,000 then 3,000 tables: 60 and 66 s before issue 13 item 3, 16 and 13-17 s after.
Back to back under a load average of 7-9 (the same minutes for both): 1,000 tables 88.5 s before
(step 2 28.3, step 6 55.0, step 8 2.7) and 21.6 s after (9.2, 8.8, 1.7); 3,000 tables 219.5 s
before (71.9, 132.9, 9.7) and 69.9 s after (29.0, 26.5, 9.9): 73 and 23 s per 1,000 tables.
Before it, the per-table costs were: the local replica's single ``mariadb-dump | mariadb`` (now a
parallel seed from one consistent snapshot, migrator/platforms/replica_seed.py), copy_schema's
four catalog round trips per table, one after another (now one catalog read, tables created by
copy.workers sessions), two client processes per chunk of a 20-row table (small tables now go by
the row path, created with their indexes instead of an index build each), and a journal fsync per
chunk start and per chunk end in the dispatching thread (now none at the start, grouped at the
end). What is left per table: CREATE TABLE on the replica and on the target (about 3 ms each here)
and step 8's checksum of each table with a journal fact per table. At the default
table_definition_cache (400) and table_open_cache (2000) every chunk reopens its table's definition
(167,434 definition opens on the source for 10,001 tables): the local replica now starts with room
for 16k tables, and ``migrator doctor`` warns when the source's or target's caches are smaller than
the migration's table count.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog

from bench.servers import ADMIN_PASSWORD, ADMIN_USER, ServerFarm, endpoint
from migrator.dns import local as local_dns
from migrator.mysql.session import MySQLSession
from migrator.ports import DnsRecord

SCHEMA = "many"
ROWS_PER_TABLE = 20
RECORD = "db.bench.internal"

# One shape per table, in turn: (columns and keys, a row's values for id i).
SHAPES: tuple[tuple[str, str], ...] = (
    ("id INT PRIMARY KEY, v VARCHAR(40) NOT NULL, n INT, KEY (n)", "{i}, 'v{i}', {i}"),
    ("code VARCHAR(20) PRIMARY KEY, v VARCHAR(40)", "'c{i:05d}', 'v{i}'"),
    ("a INT NOT NULL, b INT NOT NULL, v DOUBLE, PRIMARY KEY (a, b)", "{i} % 3, {i}, {i} * 1.5"),
    ("u BIGINT NOT NULL, v VARCHAR(40), UNIQUE KEY (u)", "{i} * 7, 'v{i}'"),
    ("g INT NOT NULL, v VARCHAR(40), KEY (g)", "{i} % 4, 'v{i}'"),
    ("v VARCHAR(40), n INT", "'v{i}', {i}"),
)


def build(source: MySQLSession, tables: int) -> None:
    """``tables`` tables of ROWS_PER_TABLE rows each in SCHEMA, cycling through SHAPES."""
    source.execute(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
    source.execute("SET SESSION sql_log_bin = 0")  # the snapshot copies them; no need to stream the build
    for n in range(tables):
        columns, values = SHAPES[n % len(SHAPES)]
        name = f"{SCHEMA}.t{n:05d}"
        source.execute(f"CREATE TABLE {name} ({columns}) ENGINE=InnoDB")
        rows = ", ".join("(" + values.format(i=i) + ")" for i in range(ROWS_PER_TABLE))
        source.execute(f"INSERT INTO {name} VALUES {rows}")


def _config(work: Path, source_port: int, target_port: int, *, workers: int) -> Path:
    workdir = work / "migration"
    workdir.mkdir(parents=True, exist_ok=True)
    dns_file = workdir / "dns.json"
    local_dns.create(dns_file, DnsRecord(RECORD, f"127.0.0.1:{source_port}", ttl=1))
    text = f"""
[migration]
name = "many-tables"
workdir = "{workdir}"
platform = "local"
schemas = ["{SCHEMA}"]

[source]
host = "127.0.0.1"
port = {source_port}
user = "{ADMIN_USER}"
password = "{ADMIN_PASSWORD}"

[target]
host = "127.0.0.1"
port = {target_port}
user = "{ADMIN_USER}"
password = "{ADMIN_PASSWORD}"

[replica]
port = 0
server_id = 3

[copy]
workers = {workers}
chunk_mb = 16

[sync]
max_lag_bytes = 1000000
max_lag_seconds = 5
timeout_seconds = 3600
heartbeat_seconds = 1

[dns]
provider = "local"
record = "{RECORD}"
target_value = "127.0.0.1:{target_port}"
ttl = 0
file = "{dns_file}"

[definers]
fallback = "{ADMIN_USER}@%"
"""
    path = work / "migration.toml"
    path.write_text(text)
    return path


def _run_steps(config_path: str, queue: Any) -> None:
    """The child: steps 1-10 with the product's engine; reports its peak RSS."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    from migrator.config import load
    from migrator.platforms.local import LocalPlatform
    from migrator.runtime import run_migration

    config = load(config_path)
    log = structlog.get_logger()
    try:
        started = time.monotonic()
        run_migration(config, log=log, argv=["bench.many_tables"], until=10)
        queue.put(("ok", time.monotonic() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))
    except BaseException as exc:  # reported to the parent
        queue.put(("error", f"{type(exc).__name__}: {exc}", 0.0))
    finally:
        # Step 9 froze the source; the bench is done with it. The local replica outlives us otherwise.
        LocalPlatform(config, log=log).stop_all()


def _step_seconds(journal: Path) -> dict[int, float]:
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        return {
            int(n): round(float(f) - float(s), 2)
            for n, s, f in conn.execute("SELECT number, started_at, finished_at FROM step")
            if s is not None and f is not None
        }
    finally:
        conn.close()


def _copy_fact(journal: Path) -> dict[str, Any]:
    import json

    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM fact WHERE key = 'copy'").fetchone()
        return dict(json.loads(row[0])) if row else {}
    finally:
        conn.close()


def measure(farm: ServerFarm, work: Path, tables: int, *, workers: int) -> dict[str, Any]:
    source = farm.start(f"source-{tables}")
    target = farm.start(f"target-{tables}")
    try:
        started = time.monotonic()
        with MySQLSession(endpoint(source)) as s:
            build(s, tables)
        built = time.monotonic() - started
        run_dir = work / f"run-{tables}"
        config = _config(run_dir, source.port, target.port, workers=workers)
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        child = ctx.Process(target=_run_steps, args=(str(config), queue))
        child.start()
        status, value, rss = queue.get()
        child.join()
        if status != "ok":
            raise RuntimeError(f"the migration of {tables} tables failed: {value}")
        journal = run_dir / "migration" / "journal.sqlite"
        steps = _step_seconds(journal)
        copy = _copy_fact(journal)
        return {
            "tables": tables,
            "build_seconds": round(built, 1),
            "steps_seconds": round(float(value), 1),
            "per_step": steps,
            "copy_seconds": copy.get("seconds"),
            "plan_wait_seconds": copy.get("planning_wait_seconds"),
            "chunks": copy.get("chunks"),
            "rss_mb": round(rss, 1),
            "journal_mb": round(sum(p.stat().st_size for p in journal.parent.glob("journal.sqlite*")) / 1e6, 2),
            "seconds_per_1000_tables": round(float(value) / tables * 1000, 1),
        }
    finally:
        farm.discard(source)
        farm.discard(target)


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        "| tables | steps 1-10 s | s per 1,000 tables | copy s (step 6) | waited for plans s | chunks "
        "| peak RSS MB | journal MB | slowest steps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        slow = sorted(r["per_step"].items(), key=lambda kv: -kv[1])[:3]
        lines.append(
            f"| {r['tables']:,} | {r['steps_seconds']} | {r['seconds_per_1000_tables']} | {r['copy_seconds']} "
            f"| {r['plan_wait_seconds']} | {r['chunks']} | {r['rss_mb']} | {r['journal_mb']} "
            f"| {', '.join(f'{n}: {s} s' for n, s in slow)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.many_tables", description=__doc__.splitlines()[0])
    p.add_argument("--tables", default="1000,10000", help="comma-separated table counts, one run each")
    p.add_argument("--workers", type=int, default=3, help="copy.workers")
    p.add_argument("--work-dir", type=Path, default=None, help="where servers live (default: a temp dir)")
    args = p.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="migrator-many-"))
    farm = ServerFarm(work, buffer_pool_mb=256)
    results = []
    try:
        for count in (int(n) for n in args.tables.split(",")):
            result = measure(farm, work, count, workers=args.workers)
            print(result, file=sys.stderr, flush=True)
            results.append(result)
        print(render(results), flush=True)
        return 0
    finally:
        farm.close()
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
