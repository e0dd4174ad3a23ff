"""Fault kinds and trials: each trial is one migration (a fresh sandbox under live writes) with one or
more faults of one kind, resumed with `run` until done, then checked (see tests/faults/harness.py).

Every random choice comes from ``random.Random(seed)``; a failing trial prints its kind and seed, and
``python -m tests.faults.campaign --kind KIND --seed SEED --trials 1`` replays it.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrator.engine import EXECUTION_ORDER
from migrator.errors import EXIT_OK, EXIT_STEP_FAILED
from tests.conftest import MakeServer
from tests.faults.harness import World, checksum_tables, journal_facts, sigkill, world

POINTS = ("before_begin", "before_complete", "after_complete")
# In execution order (step 12 runs before step 9): a kill point is reached only after the ones before it.
ALL_BOUNDARIES = tuple(f"step.{n}.{p}" for n in EXECUTION_ORDER for p in POINTS)
# Seconds a step lasts on a scale-1 sandbox (measured): a random kill lands within it.
STEP_WINDOW = {5: 0.06, 6: 2.0, 7: 0.05, 10: 0.12}
APPLY_HOOKS = ("apply.before_commit", "apply.after_commit")
DDL_CRASHES = (None, "apply.ddl.after_marker", "apply.ddl.after_ddl")
KILLED = -9


@dataclass
class TrialResult:
    kind: str
    seed: int
    ok: bool
    problems: list[str]
    faults: int  # faults actually injected (kills, cuts, restarts ...)
    runs: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        verdict = "ok  " if self.ok else "FAIL"
        head = f"{verdict} {self.kind:<16} seed={self.seed:<8} faults={self.faults} runs={self.runs} {self.seconds:5.1f}s"
        return head + ("" if self.ok else "\n    " + "\n    ".join(self.problems[:6]))


@dataclass
class Ctx:
    w: World
    rng: random.Random
    params: dict[str, Any]
    faults: int = 0

    def expect_killed(self, env: dict[str, str]) -> None:
        record = self.w.run(env)
        if record.rc == KILLED:
            self.faults += 1
        else:
            self.w.notes.append(f"{env} not reached (rc {record.rc})")


# --- kinds ---------------------------------------------------------------------------------
def boundary(c: Ctx) -> None:
    """SIGKILL at step boundaries (the engine's crash points), resuming between kills."""
    points: list[str] = list(
        c.params.get("points")
        or sorted(c.rng.sample(ALL_BOUNDARIES, c.params.get("count", 3)), key=ALL_BOUNDARIES.index)
    )
    for point in points:
        c.expect_killed({"MIGRATOR_CRASH_AT": point})
    c.w.finish()


def kill_in_step(c: Ctx) -> None:
    """SIGKILL at a seeded random moment inside steps 5, 6, 7 or 10 (several kills, in step order)."""
    steps = c.params.get("steps") or sorted(c.rng.sample(sorted(STEP_WINDOW), c.rng.randint(1, 2)))
    for step in steps:
        delay = c.rng.uniform(0, STEP_WINDOW[step])

        def driver(proc: subprocess.Popen[str], step: int = step, delay: float = delay) -> str:
            if c.w.wait_for_step(proc, step):
                time.sleep(delay)
                sigkill(proc)
                return f"kill {delay:.3f}s into step {step}"
            return ""

        record = c.w.run_with(driver)
        if record.rc == KILLED:
            c.faults += 1
            c.w.notes.append(record.killed_by)
    c.w.finish()


def apply_crash(c: Ctx) -> None:
    """SIGKILL inside the applier: before or after the COMMIT of its Nth group (rows + position)."""
    hook = c.params.get("hook") or c.rng.choice(APPLY_HOOKS)
    nth = c.params.get("nth") or c.rng.randint(1, 4)
    c.expect_killed({"MIGRATOR_CRASH_AT": f"{hook}@{nth}"})
    c.w.finish()


def _proxy_for(c: Ctx) -> Any:
    proxy = c.w.source_proxy if c.params["side"] == "source" else c.w.target_proxy
    assert proxy is not None
    return proxy


def net_cut(c: Ctx) -> None:
    """Reset every connection through the proxy, a few times while copy, streaming and apply work.
    The run must recover by itself (its retry budget) and end 0."""
    proxy = _proxy_for(c)
    step = c.params.get("step", 6)
    cuts = c.params.get("cuts") or c.rng.randint(1, 3)

    def driver(proc: subprocess.Popen[str]) -> str:
        done = []
        if not c.w.wait_for_step(proc, step):
            return ""
        for _ in range(cuts):
            time.sleep(c.rng.uniform(0.05, 0.8))
            if proc.poll() is not None:
                break
            done.append(proxy.cut())
        c.faults += len(done)
        return f"cut {done} connections"

    record = c.w.run_with(driver)
    if record.rc != EXIT_OK:
        c.w.problems.append(f"a cut within the budget stopped the run (rc {record.rc}): {record.error}")
    c.w.finish()


def net_stall(c: Ctx) -> None:
    """Stop all bytes through the proxy for a while (connections stay open); the run must ride it out."""
    proxy = _proxy_for(c)
    step = c.params.get("step", 6)
    seconds = c.params.get("seconds") or c.rng.uniform(0.5, 3.0)

    def driver(proc: subprocess.Popen[str]) -> str:
        if not c.w.wait_for_step(proc, step):
            return ""
        time.sleep(c.rng.uniform(0, 0.5))
        proxy.stall(True)
        time.sleep(seconds)
        proxy.stall(False)
        c.faults += 1
        return f"stall {seconds:.1f}s"

    record = c.w.run_with(driver)
    if record.rc != EXIT_OK:
        c.w.problems.append(f"a {seconds:.1f}s stall stopped the run (rc {record.rc}): {record.error}")
    c.w.finish()


def net_down(c: Ctx) -> None:
    """The server stays unreachable past the retry budget: the run must stop (rc 1) with a clear message
    naming the server, and a later `run` resumes once the network is back."""
    proxy = _proxy_for(c)
    step = c.params.get("step", 6)
    limit = c.params.get("limit", 240.0)

    def driver(proc: subprocess.Popen[str]) -> str:
        if not c.w.wait_for_step(proc, step):
            return ""
        proxy.refuse(True)
        c.faults += 1
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            sigkill(proc)
            return f"still running {limit:.0f}s after the {c.params['side']} went away"
        finally:
            proxy.refuse(False)
        return f"{c.params['side']} down from step {step}"

    record = c.w.run_with(driver)
    c.w.notes.append(f"down: rc {record.rc} after {record.seconds:.0f}s; {record.killed_by}; {record.error}")
    port = proxy.port
    if record.rc != EXIT_STEP_FAILED:
        c.w.problems.append(
            f"past the budget expected rc 1, got {record.rc} ({record.killed_by}): {record.error}"
        )
    elif f":{port}" not in record.error or "retry budget" not in record.error:
        c.w.problems.append(
            f"the stop does not say the budget is spent and name the server :{port}: {record.error}"
        )
    c.w.finish()


def _restart_server(c: Ctx, which: str, step: int, jitter: float) -> None:
    """Stop and start ``which`` server a seeded moment into ``step``; the run must recover by itself."""
    server = c.w.box.source if which == "source" else c.w.box.target

    def driver(proc: subprocess.Popen[str]) -> str:
        if not c.w.wait_for_step(proc, step):
            return ""
        time.sleep(c.rng.uniform(0, jitter))  # seeded fault timing, not a wait for a condition
        server.stop()
        time.sleep(c.rng.uniform(0, 1.0))
        server.start()
        c.faults += 1
        return f"{which} restarted in step {step}"

    record = c.w.run_with(driver)
    c.w.notes.append(f"restart run: rc {record.rc}")
    if record.rc != EXIT_OK:
        c.w.problems.append(f"a {which} restart stopped the run (rc {record.rc}): {record.error}")
    c.w.finish()


def source_restart(c: Ctx) -> None:
    """Restart the source (clean shutdown) while binlogs stream; the streamer must pick up the new file."""
    _restart_server(c, "source", c.params.get("step") or c.rng.choice([6, 8]), jitter=0.3)


def target_restart(c: Ctx) -> None:
    """Restart the target while the applier works (step 8 waits for it to catch up)."""
    _restart_server(c, "target", c.params.get("step", 8), jitter=0.1)


def ddl_mid_stream(c: Ctx) -> None:
    """ALTER TABLE ADD COLUMN on the source during the copy: the applier runs it exactly once. With
    ``crash`` set, SIGKILL right after its marker or right after the DDL; the resume must stop with the
    operator message, whose own instructions then let it finish."""
    crash = c.params["crash"] if "crash" in c.params else c.rng.choice(DDL_CRASHES)
    env = {"MIGRATOR_CRASH_AT": crash} if crash else None
    source = c.w.box.source

    def driver(proc: subprocess.Popen[str]) -> str:
        if not c.w.wait_for_step(proc, 6):
            return ""
        source.execute("ALTER TABLE hr.departments ADD COLUMN budget INT NOT NULL DEFAULT 7")
        source.execute("UPDATE hr.departments SET budget = budget + id")
        c.faults += 1
        return "ALTER during copy"

    record = c.w.run_with(driver, env=env)
    if crash is None:
        if record.rc != EXIT_OK:
            c.w.problems.append(f"a DDL mid-stream stopped the run (rc {record.rc}): {record.error}")
        c.w.finish()
        return
    if record.rc != KILLED:
        c.w.problems.append(f"{crash} was not reached (rc {record.rc})")
        c.w.finish()
        return
    stopped = c.w.run()
    text = stopped.stderr_tail
    if stopped.rc != EXIT_STEP_FAILED or "running a DDL" not in text:
        c.w.problems.append(
            f"after a kill around a DDL expected the operator stop, got rc {stopped.rc}: {text[-600:]}"
        )
        c.w.finish()
        return
    # Do what the message says: look at the target, then run the matching UPDATE it printed.
    conn = c.w.box.target.root()
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='hr' "
            "AND TABLE_NAME='departments' AND COLUMN_NAME='budget'"
        )
        took_effect = bool(cur.fetchone()[0])
    conn.close()
    hint = text[text.index("hint:") :]
    took, not_took = hint.split("If it did:")[1].split("; if it did not:")
    found = re.search(r"UPDATE [^;(]*WHERE id=1", took if took_effect else not_took)
    if found is None:
        c.w.problems.append(f"no UPDATE for the operator in the hint: {hint[:600]}")
        return
    statement = found.group(0)
    expected = crash.startswith("apply.ddl.after_ddl")
    if took_effect != expected:
        c.w.problems.append(f"{crash}: DDL took effect={took_effect}, expected {expected}")
    c.w.box.target.execute(statement)
    c.w.notes.append(f"operator ran: {statement}")
    c.w.finish()


def binlog_purged(c: Ctx) -> None:
    """The source purges the snapshot's binlog after step 4 (before streaming): a clear stop naming the
    missing file and the remedy; a second `run` stops the same way and nothing changed in between."""
    c.expect_killed({"MIGRATOR_CRASH_AT": "step.4.after_complete"})
    snapshot = journal_facts(c.w.journal)["snapshot"]
    conn = c.w.box.source.root()
    deadline = time.monotonic() + 30
    with conn.cursor() as cur:
        # MariaDB keeps a log it may need for crash recovery (binlog checkpoint): flush and retry.
        while True:
            cur.execute("FLUSH BINARY LOGS")
            cur.execute("SHOW MASTER STATUS")
            current = cur.fetchone()[0]
            cur.execute(f"PURGE BINARY LOGS TO '{current}'")
            cur.execute("SHOW BINARY LOGS")
            if snapshot["file"] not in {row[0] for row in cur.fetchall()}:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the source would not purge {snapshot['file']}")
            time.sleep(0.2)
    conn.close()
    c.faults += 1
    target_before = _target_schemas(c.w)
    for attempt in (1, 2):
        record = c.w.run()
        text = record.stderr_tail
        if record.rc != EXIT_STEP_FAILED or snapshot["file"] not in text or "retry-step 2" not in text:
            c.w.problems.append(
                f"run {attempt} after the purge: rc {record.rc}, expected 1 naming "
                f"{snapshot['file']} and the remedy: {text[-600:]}"
            )
    statuses = c.w.statuses()
    if statuses.get(5) != "failed" or any(statuses[n] != "pending" for n in range(6, 15)):
        c.w.problems.append(f"steps after the purge: {statuses}")
    if _target_schemas(c.w) != target_before:
        c.w.problems.append("the target changed after the stop")
    c.w.notes.append("expected stop; not resumable without a new snapshot")


def _target_schemas(w: World) -> list[tuple[Any, ...]]:
    conn = w.box.target.root()
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA IN ('shop', 'hr', '_migrator') ORDER BY 1, 2"
        )
        rows = list(cur.fetchall())
    conn.close()
    return rows


def target_disk_full(c: Ctx) -> None:
    """The target's datadir is a small tmpfs: the copy fills it. A clear stop (rc 1) naming the cause;
    after the filesystem grows, `run` resumes to the end."""
    mount = c.params["mount"]
    limit = c.params.get("limit", 90.0)

    def driver(proc: subprocess.Popen[str]) -> str:
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            sigkill(proc)
            return f"hung: no stop {limit:.0f}s after the target's disk filled"
        return ""

    record = c.w.run_with(driver)
    c.faults += 1
    if record.killed_by:
        c.w.problems.append(record.killed_by)
    text = record.stderr_tail
    if record.rc != EXIT_STEP_FAILED:
        c.w.problems.append(f"disk full: expected rc 1, got {record.rc}: {text[-600:]}")
    elif not any(s in text.lower() for s in ("full", "no space", "disk")):
        c.w.problems.append(f"disk full: the message does not say so: {text[-600:]}")
    c.w.notes.append(f"stop: {record.error}")
    subprocess.run(["mount", "-o", "remount,size=400m", str(mount)], check=True)
    c.w.finish()


def shapes_crash(c: Ctx) -> None:
    """The writer in every transaction shape (autocommit on/off, XA, ANALYZE/FLUSH between them), and a
    SIGKILL inside the applier around its Nth group COMMIT: each shape must land exactly once."""
    hook = c.params.get("hook") or c.rng.choice(APPLY_HOOKS)
    nth = c.params.get("nth") or c.rng.randint(1, 6)
    c.expect_killed({"MIGRATOR_CRASH_AT": f"{hook}@{nth}"})
    c.w.finish()


BIG_TABLE = "hr.big_tx"
# Statements of ~2.6 MB of row events each: 12 of them make a ~31 MB source transaction, about four of the
# applier's 8 MB round trips, so it streams in parts (the path a multi-GB transaction takes; its memory
# bound is bench/big_transaction.py's job, not a trial's).
BIG_STATEMENTS = 12


def _count(server: Any, table: str) -> int:
    conn = server.root()
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {table}")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def big_transaction(c: Ctx) -> None:
    """One large source transaction (inserts, then an update of part of them) during the copy, and a
    SIGKILL while the applier streams it into its target transaction: it must land exactly once."""
    part = c.params.get("part") or c.rng.randint(1, 4)
    source = c.w.box.source
    source.execute(f"CREATE TABLE {BIG_TABLE} (id INT PRIMARY KEY, b LONGBLOB NOT NULL)")

    def driver(proc: subprocess.Popen[str]) -> str:
        if not c.w.wait_for_step(proc, 6):
            return ""
        conn = source.root()
        try:
            with conn.cursor() as cur:
                conn.begin()
                for n in range(BIG_STATEMENTS):
                    cur.execute(
                        f"INSERT INTO {BIG_TABLE} SELECT {n * 1000} + seq, REPEAT(MD5({n} * 1000 + seq), 2000) "
                        "FROM mysql.seq_1_to_40"
                    )
                cur.execute(f"UPDATE {BIG_TABLE} SET b = REVERSE(b) WHERE id % 7 = 0")
                conn.commit()
        finally:
            conn.close()
        return f"{BIG_STATEMENTS * 40}-row transaction during the copy"

    record = c.w.run_with(driver, env={"MIGRATOR_CRASH_AT": f"apply.stream_part@{part}"})
    if record.rc == KILLED:
        c.faults += 1
        c.w.notes.append(f"killed at streamed part {part}")
    else:
        c.w.problems.append(f"apply.stream_part@{part} was not reached (rc {record.rc}): {record.error}")
    c.w.finish()
    sums = [checksum_tables(server, [BIG_TABLE]).get(BIG_TABLE) for server in (source, c.w.box.target)]
    counts = [_count(server, BIG_TABLE) for server in (source, c.w.box.target)]
    if counts != [BIG_STATEMENTS * 40] * 2 or sums[0] != sums[1] or sums[0] is None:
        c.w.problems.append(f"{BIG_TABLE}: rows {counts}, CHECKSUM TABLE {sums} (source, target)")


KINDS: dict[str, Callable[[Ctx], None]] = {
    "boundary": boundary,
    "kill-in-step": kill_in_step,
    "apply-crash": apply_crash,
    "net-cut": net_cut,
    "net-stall": net_stall,
    "net-down": net_down,
    "source-restart": source_restart,
    "target-restart": target_restart,
    "ddl": ddl_mid_stream,
    "binlog-purged": binlog_purged,
    "disk-full": target_disk_full,
    "shapes": shapes_crash,
    "big-tx": big_transaction,
}
# Kinds whose pass is a clean stop, not a finished migration.
STOPS = {"binlog-purged"}


def _mount_small_tmpfs(tmp_path: Path, size: str) -> Path:
    mount = tmp_path / "servers" / "target"
    mount.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True, capture_output=True
    )
    return mount


def disk_full_unavailable() -> str | None:
    """Why the disk-full trial cannot run here, or None."""
    import os

    if os.geteuid() != 0:
        return "mounting a small tmpfs for the target's datadir needs root"
    if shutil.which("mount") is None:
        return "no mount(8)"
    return None


def run_trial(kind: str, seed: int, make_server: MakeServer, tmp_path: Path, **params: Any) -> TrialResult:
    rng = random.Random(seed)
    started = time.monotonic()
    options: dict[str, Any] = {}
    if kind.startswith("net-"):
        side = params.setdefault("side", rng.choice(["source", "target"]))
        options["proxy_source" if side == "source" else "proxy_target"] = True
    if kind == "shapes" or params.pop("shapes", False):
        options["shapes"] = True
    mount: Path | None = None
    if kind == "disk-full":
        mount = _mount_small_tmpfs(tmp_path, params.get("size", "75m"))
        params["mount"] = mount
    result = TrialResult(kind, seed, False, [], 0, 0, 0.0)
    try:
        with world(make_server, tmp_path, seed=seed, **options) as w:
            ctx = Ctx(w, rng, params)
            try:
                KINDS[kind](ctx)
                if kind not in STOPS:
                    w.settle_workload()
                    w.verify_outcome()
                if options.get("shapes"):
                    counts = dict(w.workload.shape_counts)
                    w.notes.append(f"writer shapes {counts}")
                    if not counts.get("xa") or not counts.get("autocommit"):
                        w.problems.append(f"the writer used too few shapes: {counts}")
            except Exception:
                w.problems.append("harness error: " + traceback.format_exc()[-1500:])
            result = TrialResult(
                kind,
                seed,
                not w.problems,
                w.problems,
                ctx.faults,
                len(w.runs),
                time.monotonic() - started,
                w.notes,
            )
    finally:
        if mount is not None:
            for server_dir in [mount]:
                from migrator.platforms.local_server import LocalServer

                LocalServer(server_dir, server_id=2).kill()
            subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)
    result.seconds = time.monotonic() - started
    return result
