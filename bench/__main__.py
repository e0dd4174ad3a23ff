"""``python -m bench --size-mb 1000 --runs 3``: copy, apply and verify, ours against the peers, side by side.

Builds a deterministic dataset of about --size-mb MB on a source server, and an apply workload of
--apply-tx single-row transactions in its binlogs; then, --runs times each, on a fresh target every
time: copies (ours, ours resumed after a kill at half-way, mysqldump | mysql, mydumper -> myloader),
applies (ours, mysqlbinlog | mysql, the server's SQL thread), verifies (ours, pt-table-checksum,
CHECKSUM TABLE). Prints a table of medians, throughput, ratios and our peak RSS.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import structlog

from bench import dataset, lag, ours, peers, workload
from bench.report import Row, render
from bench.servers import ServerFarm, endpoint
from migrator.journal import Journal
from migrator.mysql.session import MySQLSession

# Copy streams for ours and for mydumper/myloader alike: the cores + 1 was the fastest for both on 2 cores
# (ours 13.9 s at 3 workers against 15.0 s at 2 and 15.4 s at 4; mydumper/myloader 18.6 s at 3 threads,
# 19.8 s at 2 and 21.2 s at 4), since everything here shares those cores.
COPY_STREAMS = (os.cpu_count() or 2) + 1


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--size-mb", type=float, default=1000, help="dataset size on disk (data + indexes), MB")
    p.add_argument("--runs", type=int, default=3, help="runs of each measurement; the table shows medians")
    p.add_argument("--workers", type=int, default=COPY_STREAMS, help="our copy workers (copy.workers); default: cores + 1")
    p.add_argument("--chunk-mb", type=int, default=16, help="our copy chunk size (copy.chunk_mb)")
    p.add_argument("--verify-workers", type=int, default=2, help="our verify workers (sync.checksum_workers)")
    p.add_argument("--peer-threads", type=int, default=COPY_STREAMS, help="mydumper/myloader threads; default: cores + 1")
    p.add_argument("--apply-tx", type=int, default=0, help="apply workload transactions (default: 50 per MB, >= 2000)")
    p.add_argument("--method", choices=("auto", "load-data", "dump", "rows"), default="auto", help="our copy method")
    p.add_argument("--ours-only", action="store_true", help="skip the peers (quick iterations on ours)")
    p.add_argument("--only", default="copy,apply,lag,verify", help="comma-separated sections to run")
    p.add_argument("--lag-rate", type=float, default=1000, help="lag section: writer transactions per second")
    p.add_argument("--lag-seconds", type=float, default=20, help="lag section: how long the writer runs")
    p.add_argument("--work-dir", type=Path, default=None, help="where servers live (default: a temp dir, removed)")
    p.add_argument("--reuse-source", action="store_true",
                   help="with --work-dir: keep the source and its dataset for the next run, and reuse one left by "
                        "an earlier run of the same --size-mb (copy and verify only)")
    args = p.parse_args(argv)
    if args.reuse_source and args.work_dir is None:
        p.error("--reuse-source needs --work-dir")
    if args.reuse_source and "apply" in args.only.split(","):
        p.error("--reuse-source cannot rebuild the apply workload: add --only copy,lag,verify")
    return args


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    sections = set(args.only.split(","))
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="migrator-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    secrets = work / "secrets"
    pool = int(max(128, min(2048, args.size_mb * 1.2)))
    farm = ServerFarm(work, buffer_pool_mb=pool)
    apply_tx = args.apply_tx or max(2000, int(args.size_mb * 50))
    rows: list[Row] = []
    marker = work / "servers" / "source" / f".bench-dataset-{args.size_mb:g}"
    reuse = args.reuse_source and marker.exists()
    source = None
    try:
        source = farm.start("source", reuse=reuse)
        src = endpoint(source)
        started = time.monotonic()
        with MySQLSession(src) as s:
            if reuse:
                counts = dataset.counts(s)
                dataset.warm(s)
            else:
                counts = dataset.build(s, args.size_mb)
                if args.reuse_source:
                    marker.write_text("built\n")
            data_mb = dataset.size_mb(s)
            _say(f"dataset: {sum(counts.values())} rows, {data_mb:.0f} MB in {time.monotonic() - started:.0f} s")
            started = time.monotonic()
            load = workload.generate(source, s, apply_tx, work / "archive") if "apply" in sections else None
            if load:
                _say(f"apply workload: {load.transactions} transactions in {time.monotonic() - started:.0f} s")
            dataset.settle(s)
        total_rows = sum(counts.values())
        header = (
            f"migrator bench: {data_mb:.0f} MB dataset ({total_rows} rows, 6 tables), {args.runs} run(s), "
            f"{os.cpu_count()} CPUs, {platform.node()}; our copy workers={args.workers} chunk={args.chunk_mb} MB"
        )
        if "copy" in sections:
            _copy_section(args, farm, source, data_mb=data_mb, secrets=secrets, work=work, rows=rows)
        if "apply" in sections and load is not None:
            _apply_section(args, farm, source, load=load, secrets=secrets, rows=rows)
        if "lag" in sections:
            _lag_section(args, farm, source, secrets=secrets, work=work, rows=rows)
        if "verify" in sections:
            _verify_section(
                args, farm, source, total_rows=total_rows, secrets=secrets, work=work, rows=rows
            )
        print(render(rows, header), flush=True)
        return 0
    finally:
        farm.close(keep=source if args.reuse_source else None)
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def _copy_section(args, farm, source, *, data_mb, secrets, work, rows):  # type: ignore[no-untyped-def]
    src = endpoint(source)
    schemas = [dataset.SCHEMA]
    options = {"method": args.method}
    fresh = Row("copy", f"ours: step 6 (workers={args.workers})", True, data_mb, "MB/s")
    resumed = Row("copy", "ours: resume after kill -9 at half-way", True, data_mb, "MB/s")
    pipe = Row("copy", "mysqldump | mysql (one stream)", False, data_mb, "MB/s")
    mydumper = Row("copy", f"mydumper -> myloader ({args.peer_threads} threads)", False, data_mb, "MB/s")
    if not peers.mydumper_available():
        mydumper.skipped = "mydumper/myloader not installed (apt-get install mydumper)"
    rows += [fresh, resumed, pipe, mydumper]

    def measure_ours(run: int) -> None:
        target = farm.start(f"copy-ours-{run}")
        journal = _fresh_journal(work / f"journal-{run}")
        out = ours.in_child(ours.run_copy, src, endpoint(target), schemas, journal_path=journal,
                            secrets_dir=secrets, workers=args.workers, chunk_mb=args.chunk_mb, options=options)
        fresh.seconds.append(out.seconds)
        fresh.rss_mb.append(out.rss_mb)
        fresh.tools_rss_mb.append(out.tools_rss_mb)
        fresh.note = f"{out.detail['chunks']} chunks"
        _say(f"copy run {run + 1}: ours {out.seconds:.2f} s")
        # Discarded at once: a kept target flushed its new pages in the background through the peers'
        # runs that followed (36% of a core during mysqldump | mysql, seen here), slowing them, not us.
        farm.discard(target)
        # ours, killed at half-way, then resumed
        with farm.fresh(f"copy-resume-{run}") as target:
            journal = _fresh_journal(work / f"journal-resume-{run}")
            process, _queue = ours.start_child(
                ours.run_copy, src, endpoint(target), schemas, journal_path=journal, secrets_dir=secrets,
                workers=args.workers, chunk_mb=args.chunk_mb, options=options)
            done_at_kill = _kill_at_half(process, journal, after=statistics.median(fresh.seconds) / 2)
            out = ours.in_child(ours.run_copy, src, endpoint(target), schemas, journal_path=journal,
                                secrets_dir=secrets, workers=args.workers, chunk_mb=args.chunk_mb, options=options)
            resumed.seconds.append(out.seconds)
            resumed.rss_mb.append(out.rss_mb)
            resumed.note = (f"time of the resumed run only; killed at half the fresh copy's median time, "
                            f"{done_at_kill['chunks_done']}/{done_at_kill['chunks']} chunks done")
            _say(f"copy run {run + 1}: resumed {out.seconds:.2f} s ({out.detail['chunks_done_now']} chunks left, "
                 f"{done_at_kill['bytes'] / 1e6:.0f} MB were done at the kill)")

    def measure_pipe(run: int) -> None:
        with farm.fresh(f"copy-pipe-{run}") as target:
            result = peers.dump_pipe(src, endpoint(target), dataset.SCHEMA, secrets)
            pipe.seconds.append(result.seconds)
            _say(f"copy run {run + 1}: mysqldump | mysql {result.seconds:.2f} s")

    def measure_mydumper(run: int) -> None:
        with farm.fresh(f"copy-mydumper-{run}") as target:
            result = peers.mydumper_myloader(src, endpoint(target), dataset.SCHEMA, secrets,
                                             threads=args.peer_threads, rows=100_000)
            mydumper.seconds.append(result.seconds)
            mydumper.note = result.detail
            _say(f"copy run {run + 1}: mydumper -> myloader {result.seconds:.2f} s")

    tools = [measure_ours]
    if not args.ours_only:
        tools.append(measure_pipe)
        if not mydumper.skipped:
            tools.append(measure_mydumper)
    for run in range(args.runs):
        # Each run starts with a different tool: the first copy after the source started ran slow
        # (ours: 21.5 s, then 15.5 and 17.7 s), and always going first put that on ours alone.
        shift = run % len(tools)
        for measure in tools[shift:] + tools[:shift]:
            measure(run)


def _fresh_journal(directory: Path) -> Path:
    """A journal path with nothing in it: a reused --work-dir holds the last run's journals."""
    shutil.rmtree(directory, ignore_errors=True)
    return directory / "journal.sqlite"


def _kill_at_half(process, journal: Path, *, after: float) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """SIGKILL the copy ``after`` seconds into its work (half a fresh copy's time, which is measured from
    the journal's opening too, not the child's start-up); returns the journal's progress then."""
    deadline = time.monotonic() + 600
    while process.is_alive() and not journal.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    started = time.monotonic()
    while process.is_alive() and time.monotonic() - started < after:
        time.sleep(0.005)
    process.kill()
    process.join()
    j = Journal.open_readonly(journal)
    try:
        return j.copy_progress()
    finally:
        j.close()


def _apply_section(args, farm, source, *, load, secrets, rows):  # type: ignore[no-untyped-def]
    src = endpoint(source)
    tx = load.transactions
    mine = Row("apply", "ours: step 7 applier (exactly-once)", True, tx, "tx/s")
    pipe = Row("apply", "mysqlbinlog | mysql", False, tx, "tx/s")
    native = Row("apply", "server SQL thread (replica of the source)", False, tx, "tx/s")
    parallel = Row("apply", "server SQL thread, 4 parallel (optimistic)", False, tx, "tx/s")
    rows += [mine, pipe, native, parallel]

    def prepared(name: str):  # type: ignore[no-untyped-def]
        target = farm.start(name)
        with MySQLSession(src) as s, MySQLSession(endpoint(target)) as t:
            from migrator.mysql.schema import copy_schema

            copy_schema(s, t, [workload.SCHEMA])
        return target

    def count(target) -> int:  # type: ignore[no-untyped-def]
        with MySQLSession(endpoint(target)) as t:
            return int(t.value(f"SELECT COUNT(*) FROM {workload.SCHEMA}.accounts"))

    with MySQLSession(src) as s:
        expected = int(s.value(f"SELECT COUNT(*) FROM {workload.SCHEMA}.accounts"))
    for run in range(args.runs):
        target = prepared(f"apply-ours-{run}")
        out = ours.in_child(ours.run_apply, endpoint(target), load.files[0].parent, load.start,
                            secrets_dir=secrets, schemas=[workload.SCHEMA])
        assert count(target) == expected, "our apply lost rows"
        mine.seconds.append(out.seconds)
        mine.rss_mb.append(out.rss_mb)
        farm.discard(target)
        _say(f"apply run {run + 1}: ours {out.seconds:.2f} s")
        if args.ours_only:
            continue
        target = prepared(f"apply-pipe-{run}")
        result = peers.binlog_pipe(endpoint(target), load.files, load.start[1], secrets)
        assert count(target) == expected
        pipe.seconds.append(result.seconds)
        farm.discard(target)
        _say(f"apply run {run + 1}: mysqlbinlog | mysql {result.seconds:.2f} s")
        for row, threads in ((native, 0), (parallel, 4)):
            target = prepared(f"apply-sql-{threads}-{run}")
            result = peers.sql_thread(src, endpoint(target), load.start, load.end, parallel=threads)
            assert count(target) == expected
            row.seconds.append(result.seconds)
            farm.discard(target)
            _say(f"apply run {run + 1}: SQL thread x{threads or 1} {result.seconds:.2f} s")


def _lag_section(args, farm, source, *, secrets, work, rows):  # type: ignore[no-untyped-def]
    row = Row("lag", f"ours: streamer + applier, writer at {args.lag_rate:g} tx/s", True, 0.0, "lag")
    rows.append(row)
    for run in range(args.runs):
        with farm.fresh(f"lag-{run}") as target:
            archive = work / f"lag-archive-{run}"
            shutil.rmtree(archive, ignore_errors=True)
            out = ours.in_child(lag.run_lag, endpoint(source), endpoint(target), archive_dir=archive,
                                secrets_dir=secrets, rate=args.lag_rate, seconds=args.lag_seconds)
            shutil.rmtree(archive, ignore_errors=True)
        row.seconds.append(out.seconds)
        row.rss_mb.append(out.rss_mb)
        row.unit_amount = out.detail["rate"]
        short = (f"; THE WRITER REACHED ONLY {out.detail['rate']:.0f} OF {args.lag_rate:.0f} TX/S"
                 if out.detail["rate"] < 0.95 * args.lag_rate else "")
        row.note = (f"median lag; p99 {out.detail['p99']:.2f} s, max {out.detail['max']:.2f} s over "
                    f"{out.detail['samples']} samples (write committed -> applied on the target){short}")
        _say(f"lag run {run + 1}: median {out.seconds:.3f} s, p99 {out.detail['p99']:.3f} s, "
             f"max {out.detail['max']:.3f} s at {out.detail['rate']:.0f} tx/s")


def _verify_section(args, farm, source, *, total_rows, secrets, work, rows):  # type: ignore[no-untyped-def]
    src = endpoint(source)
    # A target equal to the source: our copy into a fresh server, its new pages flushed before anything
    # is measured (so no tool shares the cores with that flush).
    target = farm.start("verify-target")
    ours.in_child(ours.run_copy, src, endpoint(target), [dataset.SCHEMA],
                  journal_path=_fresh_journal(work / "journal-verify"), secrets_dir=secrets,
                  workers=args.workers, chunk_mb=args.chunk_mb, options={"method": args.method})
    with MySQLSession(endpoint(target)) as t:
        dataset.settle(t)
    mine = Row("verify", f"ours: step 10 compare_tables (workers={args.verify_workers})", True, total_rows, "rows/s",
               note="both servers, every row")
    pt = Row("verify", "pt-table-checksum (source only)", False, total_rows, "rows/s")
    whole = Row("verify", "CHECKSUM TABLE (both servers at once)", False, total_rows, "rows/s",
                note="whole tables: cannot name a differing range")
    if not peers.pt_table_checksum_available():
        pt.skipped = "percona-toolkit not installed (apt-get install percona-toolkit)"
    rows += [mine, pt, whole]
    with MySQLSession(src) as s:
        tables = [(dataset.SCHEMA, str(r[0])) for r in s.rows(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
            (dataset.SCHEMA,))]
    for run in range(args.runs):
        out = ours.in_child(ours.run_verify, src, endpoint(target), [dataset.SCHEMA], workers=args.verify_workers)
        if not out.detail["ok"]:
            raise RuntimeError(f"our verify found {out.detail['mismatches']} differing ranges after our copy")
        mine.seconds.append(out.seconds)
        mine.rss_mb.append(out.rss_mb)
        mine.note = (
            f"both servers, every row; {out.detail['whole_tables']} tables by CHECKSUM TABLE, "
            f"{out.detail['chunks']} chunks"
        )
        _say(f"verify run {run + 1}: ours {out.seconds:.2f} s")
        if args.ours_only:
            continue
        if not pt.skipped:
            result = peers.pt_table_checksum(src, dataset.SCHEMA, secrets)
            pt.seconds.append(result.seconds)
            pt.note = result.detail
            _say(f"verify run {run + 1}: pt-table-checksum {result.seconds:.2f} s ({result.detail})")
        result = peers.checksum_table(src, endpoint(target), tables)
        whole.seconds.append(result.seconds)
        whole.note = f"whole tables, cannot name a differing range; {result.detail}"
        _say(f"verify run {run + 1}: CHECKSUM TABLE {result.seconds:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
