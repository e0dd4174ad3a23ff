"""The grant table (migrator/grants.py) checked against one account's effective privileges."""

from __future__ import annotations

from dataclasses import dataclass, field

from migrator.grants import TABLE, Alternative, Conditions, Need, grant_sql
from migrator.mysql.flavour import Flavour
from migrator.preflight.privileges import Privileges, quoted_account


@dataclass(frozen=True)
class GrantRow:
    need: Need
    server: str  # the server whose account was read ("snapshot" needs are read on the source account)
    account: str
    status: str  # "ok" | "missing" | "warning" (an optional grant is missing) | "n/a"
    held: str = ""  # the alternative found
    grant_sql: tuple[str, ...] = field(default_factory=tuple)
    inactive_roles: tuple[str, ...] = ()  # granted, but not active in the migrator's sessions

    @property
    def wanted(self) -> str:
        return " or ".join(a.render() for a in self.need.mariadb if a.privileges != {"USAGE"})

    def as_dict(self) -> dict[str, object]:
        return {
            "step": self.need.step,
            "server": self.need.server,
            "checked_on": self.server,
            "account": self.account,
            "statements": self.need.statements,
            "status": self.status,
            "held": self.held,
            "grant": list(self.grant_sql),
            "or_setting": self.need.or_setting,
        }


def _applies(alternative: Alternative, flavour: Flavour) -> bool:
    return alternative.below is None or (flavour.major, flavour.minor) < alternative.below


def _grant_statements(missing: dict[str, list[str]], account: str) -> tuple[str, ...]:
    """One GRANT per place: ``{place: [privileges]}``."""
    to = quoted_account(account)
    statements = []
    for place, privileges in missing.items():
        on = place.removeprefix("PROCEDURE ")
        prefix = "PROCEDURE " if place.startswith("PROCEDURE ") else ""
        statements.append(grant_sql(privileges, prefix + on, to))
    return tuple(statements)


def evaluate(
    server: str,
    privileges: Privileges,
    flavour: Flavour,
    schemas: tuple[str, ...],
    conditions: Conditions,
    *,
    servers: tuple[str, ...] | None = None,
    table: tuple[Need, ...] = TABLE,
) -> list[GrantRow]:
    """Rows for the needs of ``servers`` (default: just ``server``), checked on ``privileges``."""
    rows: list[GrantRow] = []
    for need in table:
        if need.server not in (servers or (server,)):
            continue
        if not conditions.holds(need.when):
            rows.append(GrantRow(need, server, privileges.account, "n/a"))
            continue
        alternatives = [a for a in need.alternatives(flavour.is_mariadb) if _applies(a, flavour)]
        first_missing: dict[str, list[str]] | None = None
        held = ""
        for alternative in alternatives:
            missing: dict[str, list[str]] = {}
            for privilege in sorted(alternative.privileges):
                for place in privileges.has(privilege, need.scope(flavour.is_mariadb), schemas):
                    missing.setdefault(place, []).append(privilege)
            if not missing:
                held = alternative.render()
                break
            if first_missing is None:
                first_missing = missing
        if held:
            rows.append(GrantRow(need, server, privileges.account, "ok", held=held))
            continue
        status = "warning" if need.optional else "missing"
        rows.append(
            GrantRow(need, server, privileges.account, status,
                     grant_sql=_grant_statements(first_missing or {}, privileges.account),
                     inactive_roles=privileges.inactive_roles)
        )
    return rows


def describe_missing(row: GrantRow, flavour: Flavour) -> str:
    names = " or ".join(a.render() for a in row.need.alternatives(flavour.is_mariadb) if _applies(a, flavour))
    line = (
        f"{names} for the {row.need.server} account {row.account} (on {row.server}): step {row.need.step} "
        f"runs {row.need.statements}; run: {'; '.join(row.grant_sql)}"
    )
    if row.need.or_setting:
        line += f" (or {row.need.or_setting})"
    if row.inactive_roles:
        roles = ", ".join(row.inactive_roles)
        line += (
            f"; roles {roles} are granted but not active at login, so they do not count: "
            f"SET DEFAULT ROLE {row.inactive_roles[0]} FOR {quoted_account(row.account)} (MariaDB) / "
            f"SET DEFAULT ROLE {roles} TO {quoted_account(row.account)} (MySQL)"
        )
    return line
