"""The CI subset of the fault suite: fixed seeds, one small migration per test (see trials.py).

The long seeded campaign is ``python -m tests.faults.campaign`` (tests/faults/README.md); here it runs
only when MIGRATOR_FAULT_CAMPAIGN=<trials> is set (it is also marked slow).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from migrator.engine import EXECUTION_ORDER
from migrator.errors import EXIT_BAD_INPUT, EXIT_OK
from tests.conftest import MakeServer
from tests.faults.harness import RUN_TIMEOUT, sigkill, world
from tests.faults.trials import POINTS, disk_full_unavailable, run_trial

# Found by this suite in the copy rework in progress (the LOAD DATA LOCAL path, deferred indexes):
# a connection reset mid-load surfaces as AttributeError ('NoneType' has no 'sendall'), not retried; and a
# copy sometimes hangs right after its first "indexes added". Remove once migrator.copy handles both.


def assert_passed(result: Any) -> None:
    assert result.ok, result.line() + "\n" + "\n".join(result.problems) + f"\nnotes: {result.notes}"


# Parametrizations marked campaign_extra are out of the default run (the suite's wall time): the seeded
# campaign draws the same kinds with random steps and sides; `pytest tests/faults -m campaign_extra` runs them.
EXTRA = pytest.mark.campaign_extra


@pytest.mark.parametrize("point", [pytest.param(POINTS[0], marks=EXTRA), *POINTS[1:]])
def test_kill_at_every_step_boundary(point: str, make_server: MakeServer, tmp_path: Path) -> None:
    """14 SIGKILLs in one migration, one at this boundary of every step, each followed by a resume."""
    points = [f"step.{n}.{point}" for n in EXECUTION_ORDER]  # 12 runs before 9
    result = run_trial("boundary", 100, make_server, tmp_path, points=points)
    assert_passed(result)
    assert result.faults == 14


@pytest.mark.parametrize(
    ("step", "seed"),
    [pytest.param(5, 501, marks=EXTRA), (6, 601), pytest.param(6, 602, marks=EXTRA),
     pytest.param(7, 701, marks=EXTRA), (10, 1001)],
)
def test_kill_at_a_random_moment_inside_a_step(
    step: int, seed: int, make_server: MakeServer, tmp_path: Path
) -> None:
    result = run_trial("kill-in-step", seed, make_server, tmp_path, steps=[step])
    assert_passed(result)
    assert result.faults == 1


def test_kill_between_the_streamer_and_the_heartbeat_start(make_server: MakeServer, tmp_path: Path) -> None:
    """Step 5 starts the streamer, then the heartbeat: a kill in between left no heartbeat to resume, and
    step 8 waited forever for its lag (campaign seed 5270515). The journal of such a kill is made exactly."""
    with world(make_server, tmp_path, seed=55) as w:
        assert w.run({"MIGRATOR_CRASH_AT": "step.5.before_complete"}).rc == -9
        conn = sqlite3.connect(w.journal)
        with conn:
            conn.execute("DELETE FROM service WHERE name = 'heartbeat'")
        conn.close()
        w.box.source.execute("DELETE FROM _migrator.heartbeat")  # no beat written before the kill
        assert w.finish(max_runs=1).rc == EXIT_OK, w.runs[-1].error
        w.settle_workload()
        w.verify_outcome()
        assert not w.problems, w.problems


@pytest.mark.parametrize(("hook", "nth"), [("apply.before_commit", 1), ("apply.after_commit", 2)])
def test_kill_inside_the_applier(hook: str, nth: int, make_server: MakeServer, tmp_path: Path) -> None:
    """Killed between the rows and their COMMIT, or just after it: nothing lost, nothing applied twice."""
    result = run_trial("apply-crash", 7, make_server, tmp_path, hook=hook, nth=nth)
    assert_passed(result)
    assert result.faults == 1


@pytest.mark.parametrize(
    ("kind", "side", "step"),
    [
        ("net-cut", "target", 6),
        pytest.param("net-cut", "source", 7, marks=EXTRA),
        pytest.param("net-cut", "target", 8, marks=EXTRA),
        pytest.param("net-stall", "target", 6, marks=EXTRA),
        ("net-stall", "source", 8),
    ],
)
def test_network_faults_within_the_budget(
    kind: str, side: str, step: int, make_server: MakeServer, tmp_path: Path
) -> None:
    result = run_trial(kind, 31, make_server, tmp_path, side=side, step=step)
    assert_passed(result)
    assert result.faults >= 1


def test_network_down_past_the_budget_stops_then_resumes(make_server: MakeServer, tmp_path: Path) -> None:
    result = run_trial("net-down", 41, make_server, tmp_path, side="target", step=8)
    assert_passed(result)


@pytest.mark.parametrize(
    ("kind", "step"),
    [pytest.param("source-restart", 6, marks=EXTRA), ("source-restart", 8), ("target-restart", 8)],
)
def test_server_restarts(kind: str, step: int, make_server: MakeServer, tmp_path: Path) -> None:
    result = run_trial(kind, 51, make_server, tmp_path, step=step)
    assert_passed(result)


def test_source_restart_after_the_pause(make_server: MakeServer, tmp_path: Path) -> None:
    """read_only does not survive a restart: the source takes writes again after step 9. Step 10 must put
    the pause back, not fail forever (campaign seed 1422347), and no write made meanwhile may be lost."""
    with world(make_server, tmp_path, seed=57) as w:
        assert w.run({"MIGRATOR_CRASH_AT": "step.9.after_complete"}).rc == -9
        w.box.source.stop()
        w.box.source.start()
        deadline = time.monotonic() + 10
        ok_before = w.workload.stats().ops_ok
        while w.workload.stats().ops_ok < ok_before + 5 and time.monotonic() < deadline:
            time.sleep(0.05)  # the application writes to the restarted source again
        assert w.workload.stats().ops_ok >= ok_before + 5
        assert w.finish(max_runs=1).rc == EXIT_OK, w.runs[-1].error
        w.settle_workload()
        w.verify_outcome()
        assert not w.problems, w.problems


def test_binlogs_purged_before_streaming(make_server: MakeServer, tmp_path: Path) -> None:
    result = run_trial("binlog-purged", 61, make_server, tmp_path)
    assert_passed(result)


@pytest.mark.parametrize("crash", [None, "apply.ddl.after_marker", "apply.ddl.after_ddl"])
def test_ddl_mid_stream(crash: str | None, make_server: MakeServer, tmp_path: Path) -> None:
    result = run_trial("ddl", 71, make_server, tmp_path, crash=crash)
    assert_passed(result)


@pytest.mark.skipif(
    not os.environ.get("MIGRATOR_FAULT_DISK_FULL"), reason="opt-in: MIGRATOR_FAULT_DISK_FULL=1"
)
def test_target_out_of_disk(make_server: MakeServer, tmp_path: Path) -> None:
    if why := disk_full_unavailable():
        pytest.skip(why)
    result = run_trial("disk-full", 81, make_server, tmp_path)
    assert_passed(result)


def test_two_runs_and_status_verify_loops(make_server: MakeServer, tmp_path: Path) -> None:
    """A second `run` refuses while one owns the journal; after kill -9 of the owner a run takes over while
    `status --json` and `verify --json` loop beside it, every answer well-formed and quick."""
    with world(make_server, tmp_path, seed=91) as w:
        first = w.box.popen("run")
        assert w.wait_for_step(first, 2)
        second = w.box.cli("run")
        assert second.returncode == EXIT_BAD_INPUT, second.stderr[-1000:]
        assert f"in use by pid {first.pid}" in second.stderr
        sigkill(first)
        first.communicate()

        answers: list[tuple[str, float, int, str]] = []
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                for command in ("status", "verify"):
                    started = time.monotonic()
                    done = w.box.cli(command, "--json", timeout=60)
                    answers.append((command, time.monotonic() - started, done.returncode, done.stdout))

        looper = threading.Thread(target=loop, daemon=True)
        started = time.monotonic()
        runner = w.box.popen("run")
        looper.start()
        _, stderr = runner.communicate(timeout=RUN_TIMEOUT)
        run_seconds = time.monotonic() - started
        stop.set()
        looper.join(timeout=90)
        assert runner.returncode == EXIT_OK, stderr[-2000:]
        w.settle_workload()
        w.verify_outcome()
        assert not w.problems, w.problems

    def parse(out: str) -> Any:
        try:
            return json.loads(out)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"not JSON ({exc}): {out[:1500]!r}") from exc

    statuses = [parse(out) for cmd, _, rc, out in answers if cmd == "status"]
    verifies = [(rc, out) for cmd, _, rc, out in answers if cmd == "verify"]
    assert len(statuses) >= 3, answers
    done_counts = [s["steps_done"] for s in statuses]
    assert done_counts == sorted(done_counts)  # progress never goes backwards
    assert {s["owner_pid"] for s in statuses[:-1]} <= {runner.pid, None}
    for rc, out in verifies:
        assert rc in (0, 1)
        if out.strip():
            assert "in_sync" in parse(out)
    slowest = max(seconds for _, seconds, _, _ in answers)
    assert slowest < 20, f"a status/verify took {slowest:.1f}s"
    print(f"run {run_seconds:.1f}s beside {len(answers)} status/verify calls, slowest {slowest:.2f}s")


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("MIGRATOR_FAULT_CAMPAIGN"), reason="opt-in: MIGRATOR_FAULT_CAMPAIGN=<trials>"
)
def test_campaign() -> None:
    trials = os.environ["MIGRATOR_FAULT_CAMPAIGN"]
    seed = os.environ.get("MIGRATOR_FAULT_SEED", str(int(time.time()) % 100000))
    done = subprocess.run(
        ["python", "-m", "tests.faults.campaign", "--trials", trials, "--seed", seed],
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.returncode == 0, f"campaign seed {seed} failed (see its output)"
