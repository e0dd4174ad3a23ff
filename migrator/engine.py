"""The state machine: ordered steps, resume from the journal, retries, gates and crash points.

For each step not yet done: mark it running, ask ``check`` whether its effect already holds, and
only if not call ``run``; then write its facts and 'done' in one journal transaction. A crash
leaves the step 'running' and the next run re-enters it through ``check``.

Steps run in ``EXECUTION_ORDER``, not by number: step 12 (routines, views, triggers, events) runs
before step 9, so nothing that can fail for a grant, a definition or a name runs inside the write
pause. Numbers stay the steps' identifiers (journal, retry-step, skip-step, --until).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_exponential

from migrator.errors import MigratorError, StepFailed
from migrator.mysql.session import is_transient
from migrator.step import StepContext, StepModule

# The write pause (9..14) holds only: freeze, catch up and verify, stop services, switch, resume.
EXECUTION_ORDER: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 12, 9, 10, 11, 13, 14)


def execution_rank(number: int) -> int:
    """Where step ``number`` runs; steps outside the plan (engine tests) keep their numeric order."""
    return EXECUTION_ORDER.index(number) if number in EXECUTION_ORDER else len(EXECUTION_ORDER) + number


def in_execution_order(steps: Sequence[StepModule]) -> list[StepModule]:
    return sorted(steps, key=lambda s: execution_rank(s.NUMBER))


def runs_after(number: int, other: int) -> bool:
    """True when step ``other`` runs after step ``number``."""
    return execution_rank(other) > execution_rank(number)


def _retryable(exc: BaseException) -> bool:
    """Transient, or a step's own error wrapping a transient one (``raise StepFailed(...) from exc``)."""
    return is_transient(exc) or (exc.__cause__ is not None and is_transient(exc.__cause__))


@dataclass(frozen=True)
class RetryBudget:
    attempts: int = 6
    seconds: float = 120.0
    first_wait: float = 0.5
    max_wait: float = 10.0


@dataclass(frozen=True)
class RunResult:
    completed: tuple[int, ...]
    stopped_before: int | None = None


class Engine:
    def __init__(
        self,
        ctx: StepContext,
        steps: Sequence[StepModule],
        *,
        retry: RetryBudget = RetryBudget(),
        crash_points: frozenset[str] = frozenset(),
    ) -> None:
        self.ctx = ctx
        self.steps = in_execution_order(steps)
        self.retry = retry
        self.crash_points = crash_points
        self.log = ctx.log

    def crash_point(self, name: str) -> None:
        """Fault tests name points where the orchestrator dies as if by kill -9."""
        if name in self.crash_points:
            self.log.warning("crash_point", point=name)
            os.kill(os.getpid(), signal.SIGKILL)

    def run(self, *, until: int | None = None) -> RunResult:
        journal = self.ctx.journal
        completed: list[int] = []
        self.ctx.services.resume()
        for step in self.steps:
            row = journal.step(step.NUMBER)
            if row.status in ("done", "skipped"):
                continue
            if until is not None and runs_after(until, step.NUMBER):
                return RunResult(tuple(completed), stopped_before=step.NUMBER)
            self._run_step(step)
            completed.append(step.NUMBER)
        return RunResult(tuple(completed))

    def _run_step(self, step: StepModule) -> None:
        journal = self.ctx.journal
        self.ctx.step_number = step.NUMBER
        log = self.log.bind(step=step.NUMBER, step_name=step.NAME)
        self.ctx.log = log
        facts = journal.facts()
        missing = [key for key in step.NEEDS if key not in facts]
        if missing:
            raise StepFailed(
                f"step {step.NUMBER} ({step.NAME}) needs {', '.join(missing)} from earlier steps",
                hint="an earlier step was skipped; `migrator retry-step N` it instead",
            )
        self.crash_point(f"step.{step.NUMBER}.before_begin")
        journal.begin_step(step.NUMBER)
        log.info("step.begin")
        try:
            outcome, how = self._with_retries(step, log)
        except MigratorError as exc:
            journal.fail_step(step.NUMBER, str(exc))
            log.error("step.failed", error=exc.message, hint=exc.hint)
            note = self._after_failure_in_pause(step, exc)
            if note:
                raise type(exc)(exc.message + note, hint=exc.hint) from exc
            raise
        except Exception as exc:
            journal.fail_step(step.NUMBER, f"{type(exc).__name__}: {exc}")
            log.error("step.failed", error=str(exc), error_type=type(exc).__name__)
            note = self._after_failure_in_pause(step, exc)
            if _retryable(exc):  # the retry budget is spent: say so, and what brings the run back
                config = self.ctx.config
                servers = (
                    f"the source ({config.source.describe()}) and the target ({config.target.describe()})"
                    if config is not None
                    else "the source and the target"
                )
                raise StepFailed(
                    f"step {step.NUMBER} ({step.NAME}) gave up after its retry budget ({self.retry.attempts} "
                    f"attempts, at most {self.retry.seconds:.0f} s): a database connection kept failing: "
                    f"{type(exc).__name__}: {exc}{note}",
                    hint=f"check that {servers} are up and reachable, then `migrator run` resumes here",
                ) from exc
            raise StepFailed(f"step {step.NUMBER} ({step.NAME}) failed: {type(exc).__name__}: {exc}{note}") from exc
        self.crash_point(f"step.{step.NUMBER}.before_complete")
        journal.complete_step(step.NUMBER, outcome, how=how)
        log.info("step.done", how=how)
        self.crash_point(f"step.{step.NUMBER}.after_complete")
        self.ctx.services.check()

    def _after_failure_in_pause(self, step: StepModule, exc: BaseException) -> str:
        """A step inside the write pause failed: give the source its writes back unless told to hold.

        Returns a note for the error message ("" when the failure was not inside a pause)."""
        from migrator import cutover

        config, journal = self.ctx.config, self.ctx.journal
        if config is None or step.NUMBER not in cutover.PAUSE_STEPS or not cutover.writes_paused(journal):
            return ""
        if config.cutover.on_failure != "resume":
            journal.event("cutover.held", step.NUMBER, why="cutover.on_failure = hold", error=str(exc)[:500])
            return "; writes stay paused (cutover.on_failure = hold): `migrator abort-cutover` gives them back"
        if cutover.dns_switched(journal):
            journal.event("cutover.held", step.NUMBER, why="DNS already switched", error=str(exc)[:500])
            return "; writes stay paused: DNS already points at the target, so the source cannot take them back"
        try:
            cutover.abort_cutover(
                config, journal, self.ctx.platform, log=self.log, who="migrator (automatic)",
                why=f"step {step.NUMBER} ({step.NAME}) failed: {str(exc)[:300]}", automatic=True,
            )
        except Exception as abort_exc:  # the step's error stays the one reported; this one is added to it
            journal.event("cutover.abort_failed", step.NUMBER, error=f"{type(abort_exc).__name__}: {abort_exc}")
            self.log.error("cutover.abort_failed", error=str(abort_exc))
            return (
                f"; giving the source its writes back failed too ({type(abort_exc).__name__}: {abort_exc}): "
                "run `migrator abort-cutover` once the source is reachable"
            )
        return "; writes resumed on the source (cutover.on_failure = resume); `migrator run` starts the cut-over again"

    def _with_retries(self, step: StepModule, log: Any) -> tuple[dict[str, Any], str]:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("step.retry", attempt=state.attempt_number, error=str(exc))
            self.ctx.journal.event("step.retry", step.NUMBER, attempt=state.attempt_number, error=str(exc))

        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.retry.attempts) | stop_after_delay(self.retry.seconds),
            wait=wait_exponential(multiplier=self.retry.first_wait, max=self.retry.max_wait),
            sleep=self.ctx.clock.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                check = step.check(self.ctx)
                if check.holds:
                    log.info("step.check_holds", reason=check.reason)
                    return check.facts, f"already held: {check.reason}"
                log.info("step.check_missing", reason=check.reason)
                return step.run(self.ctx), "ran"
        raise AssertionError("unreachable")  # pragma: no cover
