"""Operator hook commands (pause/resume writes): argv lists, no shell, a timeout, context in env vars."""

from __future__ import annotations

import os
import subprocess

from migrator.errors import StepFailed


def run_hook(argv: tuple[str, ...], context: dict[str, str], *, timeout: float) -> str:
    if not argv:
        return ""
    env = dict(os.environ)
    env.update({f"MIGRATOR_{k.upper()}": v for k, v in context.items()})
    try:
        proc = subprocess.run(
            list(argv), env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise StepFailed(f"hook {argv[0]!r} not found", hint="check cutover.*_hook in the config") from exc
    except subprocess.TimeoutExpired as exc:
        raise StepFailed(f"hook {argv[0]!r} did not finish within {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise StepFailed(f"hook {argv[0]!r} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return proc.stdout.strip()
