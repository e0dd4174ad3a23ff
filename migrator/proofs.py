"""Live proofs: every table compared once while writes flow, then only the rows that changed since.

Steps 8-10 prove the target equal to the source without re-reading the written tables inside the
write pause (review C1, issue 13). Three stages, each journaled:

1. **The pass** (step 8). Note the source's head P0 and wait until the applier has reached it; then
   compare every table chunk by chunk (migrator/mysql/checksum.py) while writes flow; note the
   source's head P1 after the last chunk and read from the archive the keys of every row changed in
   (P0, P1] (migrator/tools/binlog_changes.py). A chunk that differs is drilled down to keys: a key
   the archive shows changed is *pending*; any other is a real mismatch, and the step stops naming
   the table and the keys (a copy that is wrong is told before the approval gate, not in the pause).
2. **Rounds** (step 9, before asking for approval and again right before freezing). Note the head
   H, wait for the applier to reach H, read the changes since the last boundary, and compare by key
   the pending rows plus those; note the head E, wait for the applier to reach E, and read (H, E]:
   a key that differed and did not change in (H, E] is a real mismatch; the keys changed in (H, E]
   are the new pending set, and E the new boundary. The set shrinks to what changes in one round.
3. **The pause** (step 10). Writes are paused and the applier has reached the final position F:
   compare by key the pending rows plus the rows changed since the last boundary, on two quiet
   servers; tables whose changes cannot be named by key (no key, an undecodable key type,
   statement-format DML) are compared whole, and the plan says so. Then anything in the migrated
   schemas written after F (RDS rotates binlogs and writes ``mysql.rds_heartbeat2``: that is fine)
   fails the proof.

**Why a comparison made while writes flow proves anything.** Take a row whose key no event in the
archive touches in a window [A, B], where A is a position the applier had reached before the
comparison started and B is the source's head after it ended. The source's copy of that row is
the same at every moment of the comparison (any change would be an event in the window), and so is
the target's: the target changes only by applying events, and the applier was between A and B
throughout. So both sides were read in a stable state, and "equal" (or "different") is the truth
at A. Every row that *did* change in the window is put back on the pending list and compared again
later in a window of its own, and finally in the pause, where nothing changes. A row is therefore
trusted only by a comparison made while it was stable on both sides, and every change after that
comparison is in the archive, which puts the row back on the list. This rests on the archive being
complete (the change reader fails closed: an unreadable range makes every table "changed as a
whole") and on nothing but the applier writing to the target's migrated schemas.

**XA transactions.** An XA transaction is logged as its prepared part (XA START ... XA PREPARE, the
row events) and, later, an XA COMMIT or ROLLBACK with no rows; its rows change on the source at the
commit, and on the target when the applier applies that commit. So a window holding the commit
changed those rows, wherever the prepare lies. Every window boundary is therefore the target's
applied position read in one statement with ``_migrator.apply_xa`` (the XA transactions prepared and
not ended there, and where their prepared parts are), after waiting for the applier to pass the
source's head: the boundary is exact, and the reader counts the rows of every XA ended in a window
from those coordinates; an end it cannot match fails closed. The open set at the boundary ``since``
is journaled with it.

**Journal.** ``proof_pass`` (basis, P0) and one ``proof_table:<schema.table>`` fact per table whose
pass comparison finished (its differing keys), so a resumed pass skips finished tables and redoes
an unfinished one; ``proof_state`` (basis, boundary, pending keys and whole tables, rounds) is
replaced only when a pass or a round has finished, so a kill mid-round leaves the previous, still
valid state. The basis (snapshot and apply start) ties every proof to one copy: a new snapshot
invalidates them all.

Not done here: the barrier variant of DESIGN.md (the snapshot instance re-attached as a replica
and parked at P, so the full pass reads two quiet servers and not the production source).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from migrator.errors import StepFailed, VerificationFailed
from migrator.mysql.checksum import ChunkMismatch, compare_keys, compare_tables
from migrator.mysql.positions import BinlogPosition, position_key, source_head
from migrator.mysql.schema import TableInfo, base_tables
from migrator.step import StepContext
from migrator.sync_status import POSITION_TABLE, applied_position
from migrator.tools.binlog_applier import XA_TABLE
from migrator.tools.binlog_changes import (
    ChangeSet,
    Table,
    XaPrepare,
    decode_keys,
    encode_keys,
    layout_of,
    rows_changed,
)

FACT_BASELINE = "proof_pass"
FACT_TABLE = "proof_table:"
FACT_STATE = "proof_state"
MAX_SETTLE_ROUNDS = 6  # rounds per settle spent on shrinking a set already under the bound
SHRINK = 0.7  # a round that leaves under 70% of what the previous one left is worth another
SMALL_ENOUGH = 200  # rows: below this another round gains nothing measurable
MAX_REPASSES = 3  # per settle: a table that keeps going whole (repeated DDL) is left to the pause
UNREADABLE = "the archive could not say what changed (see binlog_changes.unreadable in the log)"


# --- state ------------------------------------------------------------------------------------
@dataclass
class ProofState:
    basis: str
    since: BinlogPosition  # every row not pending is proven equal as of here
    pending: ChangeSet
    rounds: int = 0
    xa_open: dict[str, XaPrepare] = field(default_factory=dict)  # XA prepared, not ended, at ``since``

    def to_json(self) -> dict[str, Any]:
        return {
            "basis": self.basis,
            "since": self.since.as_list(),
            "pending": self.pending.to_json(),
            "rounds": self.rounds,
            "xa_open": xa_to_json(self.xa_open),
            "pending_keys": self.pending.key_count(),
            "whole_tables": sorted(f"{s}.{t}" for s, t in self.pending.whole),
        }


@dataclass
class Comparison:
    """What one round (or the pause) compared, and what it found."""

    keys: int = 0
    rows: int = 0  # rows read and hashed, source and target together
    bytes: int = 0  # estimated from each table's average row length
    whole_tables: list[str] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)  # every table compared, by key or whole
    whole_rows: int = 0
    differing: dict[Table, set[Any]] = field(default_factory=dict)  # canonical keys, or {"whole"}
    detail: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "rows_compared": self.rows,
            "bytes_compared": self.bytes,
            "whole_tables": self.whole_tables,
            "tables": len(self.tables),
            "seconds": round(self.seconds, 3),
        }


def basis(ctx: StepContext) -> str:
    """What the proofs belong to: this snapshot, copied and applied from this position."""
    facts = ctx.journal.facts()
    return json.dumps([facts.get("snapshot"), facts.get("apply_started_at")], sort_keys=True, default=str)


def migrated_tables(ctx: StepContext) -> list[TableInfo]:
    with ctx.source() as s:
        return base_tables(s, list(ctx.config.migration.schemas))


def load_state(ctx: StepContext, tables: Sequence[TableInfo]) -> ProofState | None:
    """The journaled state if it belongs to this copy and its tables; else None (prove everything)."""
    data = ctx.journal.fact(FACT_STATE)
    if not data or data.get("basis") != basis(ctx) or "xa_open" not in data:  # older: open XAs unknown
        return None
    try:
        pending = ChangeSet.from_json(data["pending"], [(t.schema, t.name) for t in tables])
    except ValueError as exc:
        ctx.log.warning("proof.state_unusable", why=str(exc))
        return None
    return ProofState(
        data["basis"], BinlogPosition(*data["since"]), pending, int(data.get("rounds", 0)), xa_from_json(data["xa_open"])
    )


def xa_to_json(xa_open: dict[str, XaPrepare]) -> dict[str, list[Any]]:
    return {xid: prepared.as_list() for xid, prepared in sorted(xa_open.items())}


def xa_from_json(data: dict[str, list[Any]]) -> dict[str, XaPrepare]:
    return {xid: XaPrepare(str(f), int(start), int(end)) for xid, (f, start, end) in data.items()}


def _everything(tables: Sequence[TableInfo], why: str) -> ChangeSet:
    return ChangeSet(whole={(t.schema, t.name): why for t in tables})


def _head(ctx: StepContext) -> BinlogPosition:
    with ctx.source() as s:
        return source_head(s, ctx.source_flavour)


def wait_applied(ctx: StepContext, position: tuple[str, int], name: str, *, timeout: float | None = None) -> None:
    def reached() -> bool:
        with ctx.target() as t:
            applied = applied_position(t)
        return applied is not None and position_key(applied) >= position_key(position)

    ctx.wait(
        f"{name}@{position[0]}:{position[1]}",  # a resumed round waits for its own position, on a fresh clock
        reached,
        timeout=ctx.config.sync.timeout_seconds if timeout is None else timeout,
        interval=0.05,
        what=f"the applier to reach {position[0]}:{position[1]}",
    )


def applied_boundary(ctx: StepContext, name: str) -> tuple[BinlogPosition, dict[str, XaPrepare]]:
    """A window boundary: once the applier has passed the source's head, its position and the XA
    transactions open there, read in one statement (one consistent read: the applier moves both in
    one target transaction), so the prepare of any XA that ends later is known exactly."""
    wait_applied(ctx, _head(ctx), name)
    with ctx.target() as t:
        rows = t.rows(
            f"SELECT p.file, p.pos, x.xid, x.file, x.start_pos, x.end_pos FROM {POSITION_TABLE} p "
            f"LEFT JOIN {XA_TABLE} x ON TRUE WHERE p.id = 1"
        )
    if not rows:
        raise StepFailed(f"{POSITION_TABLE} on the target has no row", hint="step 7 starts the applier")
    position = BinlogPosition(str(rows[0][0]), int(rows[0][1]))
    xa_open = {
        bytes(xid).decode("utf-8", "surrogateescape"): XaPrepare(str(f), int(start), int(end))
        for _, _, xid, f, start, end in rows
        if xid is not None
    }
    return position, xa_open


def _changes(
    ctx: StepContext,
    start: tuple[str, int],
    end: tuple[str, int],
    tables: Sequence[TableInfo],
    xa_open: dict[str, XaPrepare],
) -> ChangeSet:
    found = rows_changed(
        ctx.config.archive_dir,
        ctx.source_flavour,
        start,
        end,
        tables=tables,
        schemas=ctx.config.migration.schemas,
        xa_open=xa_open,
    )
    return _everything(tables, UNREADABLE) if found is None else found


def _describe_keys(keys: Sequence[Any], limit: int = 10) -> str:
    shown = ", ".join(repr(k) for k in sorted(keys, key=repr)[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


# --- 1. the pass (step 8) ----------------------------------------------------------------------
def full_pass(ctx: StepContext, tables: Sequence[TableInfo]) -> tuple[ProofState, dict[str, Any]]:
    """Compare every table while writes flow (resuming a pass a kill interrupted); journal the state."""
    started = time.monotonic()
    b = basis(ctx)
    recorded = ctx.journal.fact(FACT_BASELINE)
    if recorded and recorded.get("basis") == b and "xa_open" in recorded:
        p0, xa0 = BinlogPosition(*recorded["p0"]), xa_from_json(recorded["xa_open"])
    else:
        p0, xa0 = applied_boundary(ctx, "reach-p0")
        ctx.put_fact(FACT_BASELINE, {"basis": b, "p0": p0.as_list(), "xa_open": xa_to_json(xa0)})

    def table_fact(table: TableInfo) -> dict[str, Any] | None:
        fact = ctx.journal.fact(FACT_TABLE + table.qualified_name)
        ok = fact and fact.get("basis") == b and fact.get("p0") == p0.as_list()
        return fact if ok else None

    done = {t.qualified_name: f for t in tables if (f := table_fact(t)) is not None}
    todo = [t for t in tables if t.qualified_name not in done]

    def on_table(table: TableInfo, mismatches: list[ChunkMismatch]) -> None:
        record = _table_record(table, mismatches)
        done[table.qualified_name] = {"basis": b, "p0": p0.as_list(), **record}
        ctx.put_fact(FACT_TABLE + table.qualified_name, done[table.qualified_name])

    ctx.log.info("proof.pass", p0=str(p0), tables=len(tables), already_done=len(tables) - len(todo))
    report = compare_tables(
        ctx.config.source, ctx.config.target, todo, workers=ctx.config.sync.checksum_workers, on_table=on_table
    )
    p1, xa1 = applied_boundary(ctx, "reach-p1")
    changes = _changes(ctx, p0, p1, tables, xa0)
    unexplained: dict[str, str] = {}
    for table in tables:
        record = done[table.qualified_name]
        key = (table.schema, table.name)
        if record.get("whole_differs") and key not in changes.tables():
            unexplained[table.qualified_name] = record["describe"]
        keys = [k for k in decode_keys(record.get("differing", [])) if not changes.covers(key, k)]
        if keys:
            unexplained[table.qualified_name] = f"({', '.join(table.key_columns)}) = {_describe_keys(keys)}"
    if unexplained:
        for name in unexplained:  # a retry after the operator's fix compares these tables again
            ctx.put_fact(FACT_TABLE + name, None)
        raise VerificationFailed(
            f"rows differ between source and target that no write since {p0} explains: "
            + "; ".join(f"{name} {what}" for name, what in unexplained.items()),
            hint="the copy is not faithful (or something wrote to the target): do not cut over; "
            "`migrator verify` shows the detail, `migrator retry-step 8` compares again",
        )
    state = ProofState(b, p1, changes, xa_open=xa1)
    ctx.put_fact(FACT_STATE, state.to_json())
    summary = {
        "from": p0.as_list(),
        "until": p1.as_list(),
        "tables": len(tables),
        "compared_now": len(todo),
        "rows": report.rows,
        "pending_keys": changes.key_count(),
        "whole_tables": sorted(f"{s}.{t}" for s, t in changes.whole),
        "seconds": round(time.monotonic() - started, 2),
    }
    ctx.log.info("proof.pass_done", **summary)
    return state, summary


def _table_record(table: TableInfo, mismatches: list[ChunkMismatch]) -> dict[str, Any]:
    """What the pass found for one table, in a form the journal keeps."""
    if not mismatches:
        return {"differing": [], "whole_differs": False, "describe": ""}
    describe = "; ".join(m.describe() for m in mismatches[:3])
    if layout_of(table).key is None:  # keyless, or keys the archive cannot name
        return {"differing": [], "whole_differs": True, "describe": describe}
    keys = set().union(*(m.canonical_keys for m in mismatches))
    return {"differing": encode_keys(sorted(keys, key=repr)), "whole_differs": False, "describe": describe}


# --- comparing what is pending -----------------------------------------------------------------
def compare_pending(
    ctx: StepContext, tables: Sequence[TableInfo], todo: ChangeSet, *, whole: bool, whole_tables_checksum: bool = False
) -> Comparison:
    """Compare the pending rows by key; with ``whole``, also the tables changed as a whole (in full)."""
    started = time.monotonic()
    out = Comparison()
    by_key = {(t.schema, t.name): t for t in tables}
    with ctx.source() as src, ctx.target() as dst, ThreadPoolExecutor(1, thread_name_prefix="keys") as pool:
        for s in (src, dst):
            s.execute("SET SESSION time_zone = '+00:00'")
        for key, keys in sorted(todo.keys.items()):
            table = by_key.get(key)
            if table is None or key in todo.whole or not keys:
                continue
            result = compare_keys(src, dst, table, keys, pool=pool)
            out.tables.add(table.qualified_name)
            out.keys += result.keys
            out.rows += result.source_rows + result.target_rows
            out.bytes += (result.source_rows + result.target_rows) * max(table.avg_row_length, 1)
            if result.differing:
                out.differing[key] = set(result.differing)
    if whole and todo.whole:
        full = [by_key[k] for k in sorted(todo.whole) if k in by_key]
        out.whole_tables = [t.qualified_name for t in full]
        out.tables.update(out.whole_tables)
        report = compare_tables(
            ctx.config.source,
            ctx.config.target,
            full,
            workers=ctx.config.sync.checksum_workers,
            whole_tables=whole_tables_checksum,
        )
        whole_rows = sum(t.rows_estimate for t in full if t.qualified_name not in report.per_table_rows)
        out.whole_rows = report.rows + report.target_rows + 2 * whole_rows
        out.rows += out.whole_rows
        out.bytes += sum(2 * max(t.data_length, t.rows_estimate * t.avg_row_length) for t in full)
        for m in report.mismatches:
            out.differing.setdefault((m.schema, m.table), set()).add("whole")
            out.detail.append(m.describe())
    out.seconds = time.monotonic() - started
    return out


# --- 2. rounds (step 9) ----------------------------------------------------------------------
def run_round(ctx: StepContext, state: ProofState, tables: Sequence[TableInfo]) -> tuple[ProofState, Comparison]:
    """One round while writes flow; the new state is journaled only once the round is complete."""
    ctx.journal.event("proof.round_started", ctx.step_number, since=state.since.as_list(), round=state.rounds + 1)
    h, xa_h = applied_boundary(ctx, "round-start")
    todo = state.pending.union(_changes(ctx, state.since, h, tables, state.xa_open))
    compared = compare_pending(ctx, tables, todo, whole=False)
    e, xa_e = applied_boundary(ctx, "round-end")
    during = _changes(ctx, h, e, tables, xa_h)
    unexplained = {
        t: [k for k in keys if not during.covers(t, k)] for t, keys in compared.differing.items()
    }
    unexplained = {t: keys for t, keys in unexplained.items() if keys}
    if unexplained:
        detail = "; ".join(f"{s}.{n} keys {_describe_keys(k)}" for (s, n), k in sorted(unexplained.items()))
        raise VerificationFailed(
            f"rows differ between source and target that no write explains (round after {state.since}): {detail}",
            hint="the target is not a faithful copy (or something writes to it): do not cut over",
        )
    pending = ChangeSet(keys=during.keys, whole={**todo.whole, **during.whole})
    new = ProofState(state.basis, e, pending, state.rounds + 1, xa_e)
    ctx.put_fact(FACT_STATE, new.to_json())
    ctx.log.info(
        "proof.round",
        round=new.rounds,
        since=str(state.since),
        until=str(e),
        compared_keys=compared.keys,
        pending_keys=pending.key_count(),
        whole_tables=sorted(f"{s}.{t}" for s, t in pending.whole),
        seconds=round(compared.seconds, 3),
    )
    return new, compared


def pending_rows(state: ProofState, tables: Sequence[TableInfo]) -> int:
    """Rows the pause would compare if it started now: pending keys plus the whole tables' rows."""
    sizes = {(t.schema, t.name): t.rows_estimate for t in tables}
    return state.pending.key_count() + sum(sizes.get(t, 0) for t in state.pending.whole)


def settle(ctx: StepContext, *, why: str) -> dict[str, Any]:
    """Rounds until the lag is under the thresholds and the set left for the pause is small."""
    from migrator.sync_status import measure

    tables = migrated_tables(ctx)
    state = load_state(ctx, tables)
    if state is None:  # step 8 skipped, or a journal from before live proofs: the pause compares everything
        ctx.log.warning("proof.none", why=why, consequence="step 10 compares every table in full")
        return {"rounds": 0, "rows_left": None}
    sync, bound = ctx.config.sync, ctx.config.cutover.max_pause_rows
    deadline = time.monotonic() + sync.timeout_seconds
    sizes = {(t.schema, t.name): t.rows_estimate for t in tables}
    repasses = settled = 0
    previous: int | None = None
    while True:
        state, compared = run_round(ctx, state, tables)
        settled += 1
        # Tables pending as a whole only because a range could not be read by key (a DDL, statements): compare
        # them again while writes flow, as the pass does, and they return to key-level tracking.
        retry = [t for t in tables if (t.schema, t.name) in state.pending.whole and layout_of(t).key is not None]
        if retry and pending_rows(state, tables) > bound and repasses < MAX_REPASSES:
            repasses += 1
            state = repass(ctx, state, tables, retry)
        stuck = {t: sizes.get(t, 0) for t in state.pending.whole if t not in {(r.schema, r.name) for r in retry}}
        if sum(stuck.values()) > bound:
            raise StepFailed(
                f"before the pause ({why}): tables whose changes cannot be tracked by key were written to and would "
                f"be compared whole in the pause, about {sum(stuck.values())} rows (bound {bound}): "
                + ", ".join(f"{s}.{t} ({state.pending.whole[(s, t)]})" for s, t in sorted(stuck)),
                hint="give these tables a primary key of integer or string columns, or raise cutover.max_pause_rows "
                "and accept a longer pause",
            )
        with ctx.source() as s, ctx.target() as t:
            lag = measure(s, t, ctx.source_flavour)
        left = pending_rows(state, tables)
        lag_ok = (
            lag.lag_bytes is not None
            and lag.lag_bytes <= sync.max_lag_bytes
            and lag.lag_seconds is not None
            and lag.lag_seconds <= sync.max_lag_seconds
        )
        ctx.log.info("proof.settle", why=why, rows_left=left, bound=bound, lag_ok=lag_ok, **lag.as_dict())
        # Under the bound, a few more rounds while the set still shrinks: each round is shorter than the last
        # (it compares only what the previous one left), and what the pause compares is what one round leaves.
        shrinking = left > SMALL_ENOUGH and (previous is None or left < SHRINK * previous)
        if lag_ok and left <= bound and not (shrinking and settled < MAX_SETTLE_ROUNDS):
            return {"rounds": state.rounds, "rows_left": left, "since": state.since.as_list(), **compared.as_dict()}
        previous = left
        if time.monotonic() >= deadline:
            whole = sorted(f"{s}.{t}" for s, t in state.pending.whole)
            raise StepFailed(
                f"before the pause ({why}): {left} rows would be compared in the pause (bound {bound}) and the lag "
                f"is {lag.lag_bytes} bytes / {lag.lag_seconds} s after {sync.timeout_seconds} s of rounds"
                + (f"; compared whole in the pause: {', '.join(whole)}" if whole else ""),
                hint="raise cutover.max_pause_rows, or wait for a quieter moment and `migrator run` again",
            )


def repass(
    ctx: StepContext, state: ProofState, tables: Sequence[TableInfo], which: Sequence[TableInfo]
) -> ProofState:
    """Compare ``which`` chunk by chunk while writes flow (a pass of their own) and track them by key again.

    The other tables keep their pending rows plus everything written since the state's boundary; the
    new boundary is the end of this pass. Journaled only once complete, like a round.
    """
    ctx.journal.event("proof.repass_started", ctx.step_number, tables=[t.qualified_name for t in which])
    p0, xa0 = applied_boundary(ctx, "repass-start")
    report = compare_tables(ctx.config.source, ctx.config.target, which, workers=ctx.config.sync.checksum_workers)
    p1, xa1 = applied_boundary(ctx, "repass-end")
    window = _changes(ctx, p0, p1, tables, xa0)
    unexplained: list[str] = []
    for m in report.mismatches:
        key = (m.schema, m.table)
        keys = [k for k in m.canonical_keys if not window.covers(key, k)]
        if keys or (not m.key_columns and key not in window.tables()):
            unexplained.append(f"{m.schema}.{m.table} {_describe_keys(keys) if keys else m.describe()}")
    if unexplained:
        raise VerificationFailed(
            f"rows differ between source and target that no write since {p0} explains: " + "; ".join(unexplained),
            hint="the target is not a faithful copy (or something writes to it): do not cut over",
        )
    redone = {(t.schema, t.name) for t in which}
    merged = state.pending.union(_changes(ctx, state.since, p1, tables, state.xa_open))
    pending = ChangeSet(
        keys={t: k for t, k in merged.keys.items() if t not in redone},
        whole={t: why for t, why in merged.whole.items() if t not in redone},
    )
    pending = pending.union(
        ChangeSet(
            keys={t: k for t, k in window.keys.items() if t in redone},
            whole={t: why for t, why in window.whole.items() if t in redone},
        )
    )
    new = ProofState(state.basis, p1, pending, state.rounds, xa1)
    ctx.put_fact(FACT_STATE, new.to_json())
    ctx.log.info("proof.repass", tables=sorted(redone), until=str(p1), pending_keys=pending.key_count(), rows=report.rows)
    return new


# --- 3. the pause (step 10) ----------------------------------------------------------------
def prove_in_pause(
    ctx: StepContext, final: BinlogPosition, tables: Sequence[TableInfo], *, whole_tables_checksum: bool
) -> tuple[Comparison, str]:
    """Compare what changed since the last proof on the paused source and the caught-up target.

    Returns the comparison and how the plan was made; raises VerificationFailed on any difference.
    """
    state = None if ctx.config.cutover.verify_all_in_pause else load_state(ctx, tables)
    if state is None:
        todo, how = _everything(tables, "no live proof to build on"), "every table in full (no live proof)"
    else:
        read_started = time.monotonic()
        todo = state.pending.union(_changes(ctx, state.since, final, tables, state.xa_open))
        how = f"rows changed since {state.since} ({state.rounds} rounds)"
        ctx.log.info("proof.pause_delta_read", seconds=round(time.monotonic() - read_started, 3))
    ctx.log.info(
        "proof.pause_plan",
        how=how,
        keys=todo.key_count(),
        whole_tables={f"{s}.{t}": why for (s, t), why in sorted(todo.whole.items())},
    )
    ctx.journal.event("proof.pause_compare", ctx.step_number, keys=todo.key_count(), whole=len(todo.whole))
    compared = compare_pending(ctx, tables, todo, whole=True, whole_tables_checksum=whole_tables_checksum)
    if compared.differing:
        parts = [
            f"{s}.{n}: " + ("see below" if "whole" in keys else f"keys {_describe_keys(list(keys))}")
            for (s, n), keys in sorted(compared.differing.items(), key=lambda kv: kv[0])
        ]
        raise VerificationFailed(
            f"{len(compared.differing)} table(s) differ between source and target (writes paused): "
            + "; ".join(parts) + ("; " + "; ".join(compared.detail[:5]) if compared.detail else ""),
            hint="the target is not a faithful copy; do not cut over. `migrator verify` shows the detail",
        )
    return compared, how


def changed_after(ctx: StepContext, final: BinlogPosition, tables: Sequence[TableInfo]) -> ChangeSet | None:
    """What the migrated schemas gained after ``final`` (the source's own writes elsewhere are fine).

    None: nothing moved. Waits for the applier (and so the archive) to reach the source's head first.
    """
    head = _head(ctx)
    if head == final:
        return None
    wait_applied(ctx, head, "after-final", timeout=ctx.config.cutover.catchup_timeout_seconds)
    # No XA is open at ``final`` (step 10 refuses one there); an XA ended after it whose prepare came
    # before would make the range unreadable, "everything changed": a write after ``final`` all the same.
    return _changes(ctx, final, head, tables, {})
