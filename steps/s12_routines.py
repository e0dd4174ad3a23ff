"""Step 12: copy the application's accounts, then re-create procedures, functions, views, triggers and
events on the target.

Accounts (``migrator.mysql.accounts``) come first, so DEFINERs exist before their objects. A DEFINER
that is not copied is never silently given to the migration account: it is mapped only as
``[definers]`` says, to an account with no more privileges than it, or the step stops naming it.

It runs after step 8 and before step 9 (see ``migrator.engine.EXECUTION_ORDER``): creating them can
fail for a grant (1419 without SUPER on a target with binary logging), a definition or a name, and
such a failure must come while the application still writes to the source. It is safe while the
applier runs: row events (``BINLOG`` statements) do not fire triggers; events are created DISABLED
and enabled by step 14. A definition changed on the source afterwards reaches the target through
the applier (it replays CREATE/DROP as DDL); step 11 compares the frozen source's definitions with
the ones recorded here and re-creates whatever changed.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pymysql

from migrator import cutover
from migrator.config import Config
from migrator.errors import StepFailed
from migrator.mysql import accounts, routines
from migrator.mysql.positions import position_key, source_head
from migrator.mysql.session import MySQLSession
from migrator.step import Check, StepContext
from migrator.sync_status import applied_position

NUMBER = 12
NAME = "routines"  # and the application's accounts
NEEDS: tuple[str, ...] = ("approx_sync",)


def describe(config: Config) -> str:
    accounts = config.accounts
    who = (
        f"accounts matching {', '.join(accounts.include)}"
        if accounts.include
        else "every account with a privilege on a migrated schema"
    )
    if accounts.exclude:
        who += f" except {', '.join(accounts.exclude)}"
    mappings = [f"{a} -> {b}" for a, b in config.definers.map]
    if config.definers.fallback:
        mappings.append(f"any other DEFINER not on the target -> {config.definers.fallback}")
    return (
        f"before the write pause: copy {who} (and the DEFINERs of migrated objects, and their roles) to the target "
        "with password hash, plugin, limits and grants (RDS and system accounts, other schemas' grants and "
        "privileges the target lacks are left out and listed); read procedures, functions, views, triggers and "
        "events from the source, wait until the applier has every change up to that moment, and create them on "
        "the target (events DISABLED until step 14); DEFINER mappings: "
        + ("; ".join(mappings) if mappings else "none (a DEFINER not on the target stops this step)")
        + " (each refused if the new DEFINER holds a privilege the old one does not)"
    )


def check(ctx: StepContext) -> Check:
    return Check(False, "accounts and definitions are copied afresh on every run (if-not-exists, drop-and-create)")


def source_definitions(ctx: StepContext) -> list[routines.Definition]:
    schemas = list(ctx.config.migration.schemas)
    with ctx.source() as s:
        return [routines.definition(s, ref) for ref in routines.list_objects(s, schemas)]


def _definers(definitions: list[routines.Definition]) -> set[accounts.Account]:
    found = (routines.definer_of(d.create_sql) for d in definitions)
    return {accounts.Account(u, h) for u, h in (f for f in found if f is not None)}


def copy_accounts(ctx: StepContext, definitions: list[routines.Definition]) -> dict[str, Any]:
    """CREATE USER IF NOT EXISTS + GRANTs on the target; accounts already there (not created by us) are kept.

    Idempotent, and a refresh too (step 11 calls it again on the frozen source): an account created here
    whose statements changed since (a password rotated, a grant added or revoked) is altered and re-granted;
    one that appeared on the source meanwhile is created."""
    cfg = ctx.config
    schemas = list(cfg.migration.schemas)
    previous = ctx.journal.fact("accounts") or {}
    created: list[str] = list(previous.get("created", []))
    digests: dict[str, str] = dict(previous.get("digests", {}))
    kept: list[str] = []
    refreshed: list[str] = []
    with ctx.source() as s, ctx.target() as t:
        cutover.record_connected(ctx.journal, s, ctx.step_number)
        chosen = accounts.select_accounts(
            s, ctx.source_flavour, schemas=schemas, include=cfg.accounts.include, exclude=cfg.accounts.exclude,
            own=(cfg.source.user, cfg.target.user), definers=_definers(definitions),
        )
        left_out = list(chosen.left_out)
        privileges = accounts.known_privileges(t)
        plugins = accounts.auth_plugins(t)
        existing = accounts.target_accounts(t)
        for acc in chosen.accounts:
            name = str(acc.account)
            if acc.account in existing and name not in created:
                kept.append(name)  # the operator's own account on the target: left as it is
                continue
            if not acc.is_role and acc.plugin not in plugins:
                raise StepFailed(
                    f"account {name} authenticates with {acc.plugin}, which the target cannot load",
                    hint=f"INSTALL SONAME/PLUGIN {acc.plugin} on the target, change the account's plugin on the "
                    "source, or add it to accounts.exclude",
                )
            copy = accounts.plan_copy(
                s, acc, source_flavour=ctx.source_flavour, target_flavour=ctx.target_flavour,
                target_privileges=privileges, schemas=schemas,
            )
            left_out += copy.left_out
            digest = hashlib.sha256("\n".join([copy.create, *copy.grants]).encode()).hexdigest()[:20]
            if acc.account in existing:
                if digests.get(name) == digest:
                    continue
                # Ours, changed on the source since: same statements as before, as ALTER and a fresh set of grants.
                grantee = accounts.role_sql(acc.account) if acc.is_role else acc.account.sql
                if not (acc.is_role and ctx.source_flavour.is_mariadb):
                    t.execute(copy.create.replace("CREATE USER IF NOT EXISTS ", "ALTER USER ", 1))
                t.execute(f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {grantee}")
                refreshed.append(name)
            else:
                t.execute(copy.create)
                created.append(name)
            for grant in copy.grants:
                t.execute(grant)
            digests[name] = digest
            ctx.put_fact("accounts", {**previous, "created": created, "digests": digests})  # resumable
    for line in left_out:
        ctx.log.info("accounts.left_out", detail=line)
    if refreshed:
        ctx.journal.event("accounts.refreshed", ctx.step_number, accounts=refreshed)
    ctx.log.info("accounts.copied", created=len(created), refreshed=len(refreshed), kept=len(kept))
    return {"created": created, "digests": digests, "refreshed": refreshed, "kept_as_is": kept, "left_out": left_out}


def _definer_target(
    ctx: StepContext, source: MySQLSession, target: MySQLSession, definer: tuple[str, str], cache: dict[str, str | None]
) -> str | None:
    """Where a DEFINER missing on the target goes: a configured account with no more privileges, or None to
    keep it as it is (it does not exist on the source either). Raises naming the problem otherwise."""
    original = accounts.Account(*definer)
    key = str(original)
    if key in cache:
        return cache[key]
    on_source = original in accounts.target_accounts(source)
    mapped = ctx.config.definers.mapping_for(key)
    if mapped is None:
        if not on_source:
            cache[key] = None  # an orphan on the source already: kept as it is, failing there as here
            return None
        raise StepFailed(
            f"DEFINER {key} is not on the target and no mapping is configured",
            hint=f"let step 12 copy it (remove it from accounts.exclude), or map it: [definers] map = "
            f'{{"{key}" = "user@host"}} naming an account with no more privileges than it',
        )
    target_account = accounts.Account.parse(mapped)
    if target_account not in accounts.target_accounts(target):
        raise StepFailed(f"definers mapping {key} -> {mapped}: {mapped} does not exist on the target")
    extra = accounts.exceeding(
        accounts.privilege_set(target, target_account), accounts.privilege_set(source, original)
    )
    if extra:
        raise StepFailed(
            f"definers mapping {key} -> {mapped} refused: SQL SECURITY DEFINER objects would run with privileges "
            f"{key} does not have: {', '.join(extra[:8])}",
            hint=f"map {key} to an account with no more privileges than it, or let step 12 copy {key}",
        )
    cache[key] = mapped
    return mapped


def create_on_target(ctx: StepContext, definitions: list[routines.Definition]) -> list[str]:
    """Create (drop-if-exists first) each definition on the target; returns the DEFINER mappings made."""
    remapped: list[str] = []
    cache: dict[str, str | None] = {}
    with ctx.source() as s, ctx.target() as t:
        existing = routines.accounts(t)
        pending = []
        for d in definitions:
            sql = d.create_sql
            definer = routines.definer_of(sql)
            if definer is not None and definer not in existing:
                mapped = _definer_target(ctx, s, t, definer, cache)
                if mapped is not None:
                    sql, _ = routines.map_definer(sql, existing, mapped)
                    remapped.append(f"{d.ref}: {definer[0]}@{definer[1]} -> {mapped}")
                    ctx.log.warning("definer.mapped", object=str(d.ref), definer=f"{definer[0]}@{definer[1]}", to=mapped)
                else:
                    ctx.log.warning("definer.orphan", object=str(d.ref), definer=f"{definer[0]}@{definer[1]}")
            pending.append(
                routines.Definition(
                    d.ref, sql, d.sql_mode, d.character_set_client, d.collation_connection, d.time_zone
                )
            )
        # Views may depend on views: create in passes until nothing more succeeds.
        errors: dict[str, str] = {}
        while pending:
            failed = []
            for d in pending:
                try:
                    routines.create(t, d)
                except pymysql.err.MySQLError as exc:
                    failed.append(d)
                    errors[str(d.ref)] = str(exc)
            if len(failed) == len(pending):
                raise StepFailed(
                    "could not create " + "; ".join(f"{d.ref}: {errors[str(d.ref)]}" for d in failed),
                    hint="fix the definitions or grants on the target (1419: give the target account SUPER or "
                    "set log_bin_trust_function_creators=ON there), then `migrator run`; the source was "
                    "never paused",
                )
            pending = failed
    return remapped


def run(ctx: StepContext) -> dict[str, Any]:
    definitions = source_definitions(ctx)
    with ctx.source() as s:
        read_at = source_head(s, ctx.source_flavour)

    # A CREATE/DROP logged before the definitions were read must be applied before we create them,
    # or the applier's replay of it would fail on (or silently undo) what we create.
    def applied_read_at() -> bool:
        with ctx.target() as t:
            applied = applied_position(t)
        return applied is not None and position_key(applied) >= position_key(read_at)

    ctx.wait(
        "reach-definitions",
        applied_read_at,
        timeout=ctx.config.sync.timeout_seconds,
        interval=0.2,
        what=f"the applier to reach {read_at}, where the definitions were read",
    )
    copied = copy_accounts(ctx, definitions)  # first: DEFINERs must exist before their objects
    remapped = create_on_target(ctx, definitions)
    return {
        "accounts": copied,
        "routines": {
            "objects": len(definitions),
            "definers_mapped": remapped,
            "read_at": read_at.as_list(),
            "digests": {str(d.ref): routines.digest(d) for d in definitions},
        }
    }
