"""A seeded fault campaign: many trials (one migration each, see trials.py), then a summary table.

    python -m tests.faults.campaign --trials 200 --seed 7 --jobs 2

Each line names the trial's kind and seed; replay one with ``--kind KIND --seed SEED --trials 1 --exact``.
Exit status 0 only when every trial passed.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

# Relative frequency of each kind in a campaign (net-down waits out a retry budget: rarer).
WEIGHTS = {
    "boundary": 4,
    "kill-in-step": 5,
    "apply-crash": 3,
    "net-cut": 2,
    "net-stall": 1,
    "net-down": 0.4,
    "source-restart": 1.5,
    "target-restart": 1.5,
    "ddl": 1.5,
    "binlog-purged": 0.3,
    "disk-full": 0.3,
    "shapes": 3,
    "big-tx": 1,
}


def schedule(trials: int, seed: int, kinds: list[str] | None) -> list[tuple[str, int, dict[str, Any]]]:
    rng = random.Random(seed)
    names = kinds or list(WEIGHTS)
    weights = [WEIGHTS[k] for k in names]
    out: list[tuple[str, int, dict[str, Any]]] = []
    for _ in range(trials):
        kind = rng.choices(names, weights)[0]
        out.append((kind, rng.randrange(1, 10**7), {}))
    return out


def _one(kind: str, seed: int, params: dict[str, Any], root: str, template: str) -> Any:
    from tests.faults.harness import ServerFactory
    from tests.faults.trials import disk_full_unavailable, run_trial

    if kind == "disk-full" and (why := disk_full_unavailable()):
        from tests.faults.trials import TrialResult

        return TrialResult(kind, seed, True, [], 0, 0, 0.0, [f"skipped: {why}"])
    tmp = Path(tempfile.mkdtemp(prefix=f"{kind}-{seed}-", dir=root))
    factory = ServerFactory(tmp, Path(template))
    result = None
    try:
        result = run_trial(kind, seed, factory, tmp, **params)
        return result
    finally:
        factory.close()
        if result is not None and result.ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:  # kept for the post-mortem: journal, migrator.log, servers' error logs
            print(f"kept {tmp}", flush=True)


def _isolate_credentials(seed: int) -> None:
    """Give this campaign's servers an admin password of their own.

    Other test runs on the machine use tests/conftest.py's password; when one of them restarts a server
    whose port one of ours took meanwhile, its clients would otherwise log in to our server and write
    there (seen: chunk ranges deleted from a campaign's target). With another password they cannot.
    """
    import tests.conftest
    import tests.harness

    password = f"campaign-{seed}-{random.randrange(10**9)}-Pw"
    tests.conftest.ADMIN_PASSWORD = password  # read at call time by add_admin and admin_endpoint
    tests.harness.ADMIN_PASSWORD = password  # type: ignore[attr-defined]  # make_sandbox's config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    parser.add_argument("--jobs", type=int, default=2, help="trials in parallel")
    parser.add_argument("--kind", action="append", choices=sorted(WEIGHTS), help="only these kinds")
    parser.add_argument("--exact", action="store_true", help="--seed is the trial's own seed (replay)")
    parser.add_argument("--workdir", default=None, help="where sandboxes go (default: a temp dir)")
    parser.add_argument("--shapes", action="store_true",
                        help="every trial's writer uses every transaction shape (autocommit on/off, XA, "
                        "ANALYZE/FLUSH), not only the shapes kind's")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="start no new trial after this long; the summary covers the trials run")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1, 10**6)
    if args.exact:
        if not args.kind or len(args.kind) != 1:
            parser.error("--exact needs exactly one --kind")
        plan: list[tuple[str, int, dict[str, Any]]] = [(args.kind[0], seed, {}) for _ in range(args.trials)]
    else:
        plan = schedule(args.trials, seed, args.kind)
    if args.shapes:
        plan = [(kind, trial_seed, {**params, "shapes": True}) for kind, trial_seed, params in plan]
    _isolate_credentials(seed)
    root = Path(args.workdir or tempfile.mkdtemp(prefix="fault-campaign-"))
    root.mkdir(parents=True, exist_ok=True)
    template = root / "template"
    from migrator.platforms.local_server import build_template

    build_template(template)
    print(f"fault campaign: {len(plan)} trials, seed {seed}, {args.jobs} jobs, in {root}", flush=True)
    started = time.monotonic()
    results: list[Any] = []
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        queue = list(plan)
        running: set[Future[Any]] = set()
        while queue or running:
            if args.max_minutes is not None and time.monotonic() - started > args.max_minutes * 60 and queue:
                print(f"time budget spent: {len(queue)} trials not started", flush=True)
                queue.clear()
            while queue and len(running) < args.jobs:
                kind, trial_seed, params = queue.pop(0)
                running.add(pool.submit(_one, kind, trial_seed, params, str(root), str(template)))
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                result = future.result()
                results.append(result)
                print(f"[{len(results):>3}/{len(plan)}] {result.line()}", flush=True)
    elapsed = time.monotonic() - started
    print(summary(results, elapsed, seed))
    return 0 if all(r.ok for r in results) else 1


def summary(results: list[Any], elapsed: float, seed: int) -> str:
    by_kind: dict[str, list[Any]] = defaultdict(list)
    for r in results:
        by_kind[r.kind].append(r)
    lines = [
        "",
        f"{'kind':<16} {'trials':>6} {'faults':>6} {'runs':>5} {'failed':>6} {'mean s':>7}  notes",
        "-" * 72,
    ]
    for kind in sorted(by_kind):
        rs = by_kind[kind]
        skipped = sum(1 for r in rs if any(n.startswith("skipped") for n in r.notes))
        note = f"{skipped} skipped" if skipped else ""
        lines.append(
            f"{kind:<16} {len(rs):>6} {sum(r.faults for r in rs):>6} {sum(r.runs for r in rs):>5} "
            f"{sum(1 for r in rs if not r.ok):>6} {sum(r.seconds for r in rs) / len(rs):>7.1f}  {note}"
        )
    lines.append("-" * 72)
    failed = [r for r in results if not r.ok]
    lines.append(
        f"{'total':<16} {len(results):>6} {sum(r.faults for r in results):>6} {sum(r.runs for r in results):>5} "
        f"{len(failed):>6}  wall {elapsed:.0f}s, seed {seed}"
    )
    for r in failed:
        lines.append(f"replay: python -m tests.faults.campaign --kind {r.kind} --seed {r.seed} --trials 1 --exact")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
