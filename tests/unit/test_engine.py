"""The engine against fake steps and a real SQLite journal."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
import pytest
import structlog

from migrator.config import Config
from migrator.engine import Engine, RetryBudget
from migrator.errors import StepFailed
from migrator.journal import Journal
from migrator.step import Check, StepContext
from tests.fakes.clock import FakeClock
from tests.fakes.services import NoServices


@dataclass
class FakeStep:
    NUMBER: int
    NAME: str
    NEEDS: tuple[str, ...] = ()
    holds: bool = False
    failures: list[BaseException] = field(default_factory=list)
    runs: int = 0
    checks: int = 0

    def describe(self, config: Config) -> str:
        return self.NAME

    def check(self, ctx: StepContext) -> Check:
        self.checks += 1
        return Check(self.holds, "fake", {f"f{self.NUMBER}": "held"} if self.holds else {})

    def run(self, ctx: StepContext) -> dict[str, Any]:
        self.runs += 1
        if self.failures:
            raise self.failures.pop(0)
        return {f"f{self.NUMBER}": self.runs}


def make(tmp_path: Path, steps: list[FakeStep]) -> tuple[Engine, Journal, FakeClock]:
    journal = Journal.open(tmp_path / "journal.sqlite")
    journal.acquire()
    journal.register("t", "fp", [(s.NUMBER, s.NAME) for s in steps], [])
    clock = FakeClock()
    ctx = StepContext(
        config=None,
        journal=journal,
        platform=None,
        dns=None,
        clock=clock,  # type: ignore[arg-type]
        services=NoServices(),
        log=structlog.get_logger(),
    )  # type: ignore[arg-type]
    return Engine(ctx, steps, retry=RetryBudget(attempts=3, seconds=60)), journal, clock


def test_runs_in_order_and_records_facts(tmp_path: Path) -> None:
    steps = [FakeStep(1, "a"), FakeStep(2, "b", NEEDS=("f1",)), FakeStep(3, "c", holds=True)]
    engine, journal, _ = make(tmp_path, steps)
    assert engine.run().completed == (1, 2, 3)
    assert [s.status for s in journal.steps()] == ["done"] * 3
    assert journal.facts() == {"f1": 1, "f2": 1, "f3": "held"}
    assert steps[2].runs == 0  # check said the effect holds: run is not called


def test_resume_skips_done_steps_and_reenters_running(tmp_path: Path) -> None:
    steps = [FakeStep(1, "a"), FakeStep(2, "b")]
    engine, journal, _ = make(tmp_path, steps)
    journal.complete_step(1, {"f1": 1}, how="ran")
    journal.begin_step(2)  # as if the orchestrator died inside step 2
    engine.run()
    assert steps[0].runs == 0 and steps[1].checks == 1 and steps[1].runs == 1
    assert journal.step(2).attempts == 2


def test_transient_mysql_errors_retry_within_budget(tmp_path: Path) -> None:
    lost = pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
    steps = [FakeStep(1, "a", failures=[lost, lost])]
    engine, journal, clock = make(tmp_path, steps)
    engine.run()
    assert steps[0].runs == 3 and journal.step(1).status == "done"
    assert len(clock.sleeps) == 2
    assert [e["kind"] for e in journal.events()].count("step.retry") == 2


def test_budget_exhausted_fails_step_with_error(tmp_path: Path) -> None:
    lost = pymysql.err.OperationalError(2003, "Can't connect")
    steps = [FakeStep(1, "a", failures=[lost] * 5)]
    engine, journal, _ = make(tmp_path, steps)
    with pytest.raises(StepFailed):
        engine.run()
    row = journal.step(1)
    assert row.status == "failed" and "Can't connect" in (row.last_error or "")
    assert steps[0].runs == 3


def test_non_transient_errors_do_not_retry(tmp_path: Path) -> None:
    steps = [FakeStep(1, "a", failures=[pymysql.err.ProgrammingError(1064, "syntax")])]
    engine, _journal, _ = make(tmp_path, steps)
    with pytest.raises(StepFailed, match="syntax"):
        engine.run()
    assert steps[0].runs == 1


def test_missing_fact_stops_before_running(tmp_path: Path) -> None:
    steps = [FakeStep(1, "a"), FakeStep(2, "b", NEEDS=("never",))]
    engine, journal, _ = make(tmp_path, steps)
    journal.skip_step(1, who="t", why="test")
    with pytest.raises(StepFailed, match="needs never"):
        engine.run()
    assert steps[1].runs == 0 and journal.step(2).status == "pending"


def test_until_stops_before_later_steps(tmp_path: Path) -> None:
    steps = [FakeStep(1, "a"), FakeStep(2, "b"), FakeStep(3, "c")]
    engine, _journal, _ = make(tmp_path, steps)
    result = engine.run(until=2)
    assert result.completed == (1, 2) and result.stopped_before == 3 and steps[2].runs == 0


def test_wait_deadline_is_journaled(tmp_path: Path) -> None:
    steps = [FakeStep(1, "a")]
    engine, journal, clock = make(tmp_path, steps)
    ctx = engine.ctx
    ctx.step_number = 1
    with pytest.raises(StepFailed, match="timed out waiting for godot"):
        ctx.wait("godot", lambda: False, timeout=30, interval=5, what="godot")
    assert clock.now() >= 1_800_000_030.0
    ctx.wait_out("pause", 12, why="test")
    assert journal.conn.execute("SELECT COUNT(*) FROM deadline WHERE name = 'step1.pause'").fetchone()[0] == 1


def test_routines_run_before_the_write_pause_and_until_follows_execution_order(tmp_path: Path) -> None:
    steps = [FakeStep(n, f"s{n}") for n in range(1, 15)]
    engine, journal, _ = make(tmp_path, steps)
    first = engine.run(until=8)
    assert first.completed == tuple(range(1, 9)) and first.stopped_before == 12
    second = engine.run(until=9)  # step 12 runs before step 9: `--until 9` includes it
    assert second.completed == (12, 9) and second.stopped_before == 10
    assert engine.run().completed == (10, 11, 13, 14)
    started = [e["step"] for e in journal.events(200) if e["kind"] == "step.running"]
    assert started == [1, 2, 3, 4, 5, 6, 7, 8, 12, 9, 10, 11, 13, 14]
