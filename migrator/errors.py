"""The error tree: every failure the operator sees carries an exit code and a hint."""

from __future__ import annotations

EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_WAITING_ON_OPERATOR = 3


class MigratorError(Exception):
    exit_code = EXIT_STEP_FAILED

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class BadInput(MigratorError):
    """Config, environment or server state the operator must fix; nothing was changed."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(BadInput):
    pass


class PreflightFailed(BadInput):
    pass


class JournalLocked(BadInput):
    pass


class JournalMismatch(BadInput):
    pass


class EnvironmentProblem(BadInput):
    """A tool or binary the migration needs is missing."""


class StepFailed(MigratorError):
    exit_code = EXIT_STEP_FAILED


class VerificationFailed(StepFailed):
    pass


class BinlogGap(StepFailed):
    """A binlog file we need is gone from the source: the snapshot can no longer be caught up."""


class OperatorGate(MigratorError):
    exit_code = EXIT_WAITING_ON_OPERATOR


class ApplyConflict(StepFailed):
    """The applier cannot prove exactly-once for a statement; an operator must look."""
