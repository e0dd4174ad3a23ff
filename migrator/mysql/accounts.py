"""Accounts: which ones the application needs, copied to the target with their password hash and grants.

Read from the source with SHOW CREATE USER (plugin, hash, resource limits, password options, lock) and
SHOW GRANTS (privileges, roles, default roles); written to the target as CREATE USER IF NOT EXISTS and
GRANT statements restricted to what the target has: privileges it knows, global grants and grants on
the migrated schemas. RDS's own accounts and roles and the server's system accounts are never copied.
Every grant or account left out is listed, never silently dropped.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from migrator.mysql.flavour import Flavour
from migrator.mysql.session import MySQLSession, quote_identifier

# Accounts and roles that belong to RDS or to the server itself.
SYSTEM_USERS = frozenset(
    {
        "rdsadmin",
        "rdsrepladmin",
        "rdsproxyadmin",
        "rds_superuser_role",
        "mysql.sys",
        "mysql.session",
        "mysql.infoschema",
        "mariadb.sys",
        "root",
        "",
        "PUBLIC",
        "event_scheduler",
        "system user",
        "unauthenticated user",
    }
)
# Processlist users that are not accounts (threads of the server).
THREAD_USERS = frozenset({"system user", "event_scheduler", "unauthenticated user", "", "rdsadmin"})
NATIVE = "mysql_native_password"
_NAME = r"`(?:[^`]|``)*`"
_GRANTEE = rf"{_NAME}(?:@{_NAME})?"
_OBJECT = rf"(?:(?P<kind>PROCEDURE|FUNCTION|PACKAGE BODY|PACKAGE) )?(?P<object>\*\.\*|(?:{_NAME}|\*)\.(?:{_NAME}|\*))"
_PRIVILEGE_GRANT = re.compile(rf"^GRANT (?P<privs>.+?) ON {_OBJECT} TO (?P<grantee>{_GRANTEE})(?P<rest>.*)$", re.S)
_ROLE_GRANT = re.compile(rf"^GRANT (?P<roles>{_GRANTEE}(?:\s*,\s*{_GRANTEE})*) TO (?P<grantee>{_GRANTEE})(?P<rest>.*)$")
_DEFAULT_ROLE = re.compile(rf"^SET DEFAULT ROLE (?P<role>{_NAME}) FOR (?P<grantee>{_GRANTEE})$")


def _unquote(name: str) -> str:
    return name[1:-1].replace("``", "`") if name.startswith("`") else name


@dataclass(frozen=True, order=True)
class Account:
    user: str
    host: str

    def __str__(self) -> str:
        return f"{self.user}@{self.host}"

    @property
    def sql(self) -> str:
        return f"{quote_identifier(self.user)}@{quote_identifier(self.host)}"

    @classmethod
    def parse(cls, text: str) -> Account:
        """``user@host`` (the last @ separates them); quotes around either part are dropped."""
        user, _, host = text.rpartition("@")
        return cls(user.strip("`'\""), host.strip("`'\""))

    @classmethod
    def from_grantee(cls, grantee: str) -> Account:
        parts = re.findall(_NAME, grantee)
        return cls(_unquote(parts[0]), _unquote(parts[1]) if len(parts) > 1 else "")


def is_system(user: str) -> bool:
    return user in SYSTEM_USERS or user.startswith("rds_") or user.startswith("rdsadmin")


def matches(patterns: Iterable[str], account: Account) -> bool:
    """fnmatch patterns on ``user@host`` (``*`` any text; a bare ``user`` pattern means any host)."""
    text = str(account)
    return any(fnmatch.fnmatchcase(text, p if "@" in p else f"{p}@*") for p in patterns)


# --- grants ------------------------------------------------------------------------------------------
def _split_privileges(text: str) -> list[str]:
    out, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        out.append(current.strip())
    return out


def privilege_name(privilege: str) -> str:
    """'INSERT (`a`)' -> 'INSERT'; 'Read_only admin' -> 'READ_ONLY ADMIN' (SHOW PRIVILEGES spelling)."""
    base = privilege.split("(", 1)[0].strip().upper()
    return " ".join(base.replace("_", " ").split()) if base != "ALL PRIVILEGES" else base


@dataclass(frozen=True)
class Grant:
    privileges: tuple[str, ...]
    kind: str  # "" for tables and schemas, PROCEDURE / FUNCTION / PACKAGE ...
    object: str  # as SHOW GRANTS prints it: *.*, `shop`.*, `shop`.`t`
    grant_option: bool

    @property
    def schema(self) -> str | None:
        if self.object == "*.*":
            return None
        first = self.object.split(".", 1)[0]
        return _unquote(first).replace("\\_", "_").replace("\\%", "%")

    def scopes(self) -> list[str]:
        """This grant's scope and every enclosing one, most specific first."""
        obj = f"{self.kind} {self.object}".strip()
        if self.object == "*.*":
            return ["*.*"]
        schema_scope = f"{self.object.split('.', 1)[0]}.*"
        return [obj, schema_scope, "*.*"] if obj != schema_scope else [obj, "*.*"]

    def statement(self, grantee: str, privileges: Iterable[str] | None = None) -> str:
        privs = ", ".join(privileges if privileges is not None else self.privileges)
        on = f"{self.kind} {self.object}".strip()
        return f"GRANT {privs} ON {on} TO {grantee}" + (" WITH GRANT OPTION" if self.grant_option else "")


@dataclass(frozen=True)
class Grants:
    privileges: tuple[Grant, ...] = ()
    roles: tuple[Account, ...] = ()
    default_roles: tuple[Account, ...] = ()
    other: tuple[str, ...] = ()  # lines not understood (PROXY, ...): left out, listed


def parse_grants(lines: Iterable[str]) -> Grants:
    privileges: list[Grant] = []
    roles: list[Account] = []
    defaults: list[Account] = []
    other: list[str] = []
    for raw in lines:
        line = raw.strip()
        if m := _PRIVILEGE_GRANT.match(line):
            if m.group("privs").upper().startswith("PROXY"):
                other.append(line)
                continue
            privs = tuple(p for p in _split_privileges(m.group("privs")) if p.upper() != "USAGE")
            rest = m.group("rest").upper()
            grant = Grant(privs, m.group("kind") or "", m.group("object"), "WITH GRANT OPTION" in rest)
            if privs or grant.grant_option:
                privileges.append(grant)
        elif m := _DEFAULT_ROLE.match(line):
            defaults.append(Account.from_grantee(m.group("role")))
        elif m := _ROLE_GRANT.match(line):
            roles.extend(Account.from_grantee(g) for g in re.findall(_GRANTEE, m.group("roles")))
        else:
            other.append(line)
    return Grants(tuple(privileges), tuple(roles), tuple(defaults), tuple(other))


def grant_lines(session: MySQLSession, account: Account, *, role: bool = False) -> list[str]:
    who = quote_identifier(account.user) if role and not account.host else account.sql
    return [str(r[0]) for r in session.rows(f"SHOW GRANTS FOR {who}")]


def privilege_set(session: MySQLSession, account: Account, *, depth: int = 0) -> set[tuple[str, str]]:
    """(privilege, scope) pairs the account holds, roles expanded; empty if it does not exist there."""
    try:
        grants = parse_grants(grant_lines(session, account, role=not account.host))
    except Exception:
        return set()
    held: set[tuple[str, str]] = set()
    for g in grants.privileges:
        scope = f"{g.kind} {g.object}".strip()
        held.update((privilege_name(p), scope) for p in g.privileges)
        if g.grant_option:
            held.add(("GRANT OPTION", scope))
    if depth < 5:
        for role in grants.roles:
            held |= privilege_set(session, role, depth=depth + 1)
    return held


def exceeding(mapped: set[tuple[str, str]], original: set[tuple[str, str]]) -> list[str]:
    """Privileges ``mapped`` holds that ``original`` holds at no enclosing scope ("PRIV ON scope")."""
    def covered(priv: str, scope: str) -> bool:
        obj = scope.split(" ", 1)[-1]
        enclosing = [scope]
        if obj != "*.*":
            enclosing += [f"{obj.split('.', 1)[0]}.*", "*.*"]
        return any((priv, s) in original or ("ALL PRIVILEGES", s) in original for s in enclosing)

    return sorted(f"{p} ON {s}" for p, s in mapped if not covered(p, s))


# --- which accounts ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceAccount:
    account: Account
    is_role: bool
    plugin: str


def source_accounts(session: MySQLSession, flavour: Flavour) -> list[SourceAccount]:
    if flavour.is_mariadb:
        rows = session.rows("SELECT User, Host, is_role, plugin FROM mysql.user")
        return [
            SourceAccount(Account(str(u), str(h)), str(r) == "Y", str(p or "") or NATIVE) for u, h, r, p in rows
        ]
    rows = session.rows(
        "SELECT u.User, u.Host, (u.account_locked = 'Y' AND u.authentication_string = '' AND EXISTS "
        "(SELECT 1 FROM mysql.role_edges e WHERE e.FROM_USER = u.User AND e.FROM_HOST = u.Host)), u.plugin "
        "FROM mysql.user u"
    )
    return [SourceAccount(Account(str(u), str(h)), bool(r), str(p or NATIVE)) for u, h, r, p in rows]


def auth_plugins(session: MySQLSession) -> set[str]:
    """Authentication plugins the server can use now (ACTIVE)."""
    return {
        str(r[0])
        for r in session.rows(
            "SELECT PLUGIN_NAME FROM information_schema.PLUGINS "
            "WHERE PLUGIN_TYPE = 'AUTHENTICATION' AND PLUGIN_STATUS = 'ACTIVE'"
        )
    }


def known_privileges(session: MySQLSession) -> set[str]:
    return {privilege_name(str(r[0])) for r in session.rows("SHOW PRIVILEGES")} | {"ALL PRIVILEGES"}


@dataclass
class Selection:
    """The accounts to copy, and the ones left out with why."""

    accounts: list[SourceAccount] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


def select_accounts(
    session: MySQLSession,
    flavour: Flavour,
    *,
    schemas: Iterable[str],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    own: Iterable[str],
    definers: Iterable[Account] = (),
) -> Selection:
    """``include`` patterns (default: every account with a privilege naming a migrated schema), the DEFINERs
    of the migrated objects, and the roles they are granted; minus ``exclude``, system and our own accounts."""
    wanted_schemas = set(schemas)
    own_users = set(own)
    definer_set = set(definers)
    everyone = {a.account: a for a in source_accounts(session, flavour)}
    chosen: dict[Account, SourceAccount] = {}
    out = Selection()

    def consider(acc: SourceAccount, why: str) -> None:
        a = acc.account
        if a in chosen:
            return
        if is_system(a.user):
            out.left_out.append(f"{a}: RDS or server system account ({why})")
            return
        if a.user in own_users:
            out.left_out.append(f"{a}: the migration's own account ({why})")
            return
        if matches(exclude, a):
            out.left_out.append(f"{a}: matches accounts.exclude ({why})")
            return
        chosen[a] = acc
        for role in parse_grants(grant_lines(session, a, role=acc.is_role)).roles:
            if role in everyone:
                consider(everyone[role], f"role of {a}")
            elif Account(role.user, "") in everyone:
                consider(everyone[Account(role.user, "")], f"role of {a}")

    for acc in sorted(everyone.values(), key=lambda x: x.account):
        if acc.is_role:
            continue  # roles come with the accounts granted them
        if include:
            if matches(include, acc.account):
                consider(acc, "accounts.include")
            continue
        if acc.account in definer_set:
            consider(acc, "DEFINER of a migrated object")
            continue
        try:
            grants = parse_grants(grant_lines(session, acc.account))
        except Exception:
            if is_system(acc.account.user):
                continue  # some system accounts cannot be shown; they are never copied anyway
            raise
        if any(g.schema in wanted_schemas for g in grants.privileges):
            consider(acc, "has privileges on a migrated schema")  # system and own accounts: listed as left out
    for definer in sorted(definer_set):
        if definer in everyone and definer not in chosen and include:
            consider(everyone[definer], "DEFINER of a migrated object")
    out.accounts = sorted(chosen.values(), key=lambda x: (not x.is_role, x.account))  # roles first
    return out


# --- statements ---------------------------------------------------------------------------------------
_MYSQL_ONLY_OPTIONS = re.compile(
    r"\s+(?:PASSWORD HISTORY (?:DEFAULT|\d+)|PASSWORD REUSE INTERVAL (?:DEFAULT|\d+ DAY)|"
    r"PASSWORD REQUIRE CURRENT(?: DEFAULT| OPTIONAL)?|FAILED_LOGIN_ATTEMPTS \d+|"
    r"PASSWORD_LOCK_TIME (?:\d+|UNBOUNDED)|ATTRIBUTE '(?:[^'\\]|\\.|'')*'|COMMENT '(?:[^'\\]|\\.|'')*')",
    re.IGNORECASE,
)
_DEFAULT_ROLE_CLAUSE = re.compile(
    r"\s+DEFAULT ROLE (.+?)(?=\s+(?:REQUIRE|WITH|PASSWORD|ACCOUNT|FAILED_LOGIN_ATTEMPTS|PASSWORD_LOCK_TIME|"
    r"ATTRIBUTE|COMMENT)\b|$)",
    re.IGNORECASE,
)


def create_user_sql(show_create: str, source: Flavour, target: Flavour) -> tuple[str, list[str], list[Account]]:
    """SHOW CREATE USER text -> CREATE USER IF NOT EXISTS for the target.

    Returns the statement, the options the target cannot take (listed, not silently dropped; an option
    at its DEFAULT loses nothing) and MySQL's DEFAULT ROLE list (set after the roles are granted)."""
    sql = re.sub(r"^CREATE USER\s+(IF NOT EXISTS\s+)?", "CREATE USER IF NOT EXISTS ", show_create.strip(), count=1)
    left_out: list[str] = []
    defaults: list[Account] = []
    if not source.is_mariadb:
        if m := _DEFAULT_ROLE_CLAUSE.search(sql):
            defaults = [Account.from_grantee(g) for g in re.findall(_GRANTEE, m.group(1))]
            sql = sql.replace(m.group(0), "", 1)
        if target.is_mariadb:
            for m in list(_MYSQL_ONLY_OPTIONS.finditer(sql)):
                clause = m.group(0).strip()
                if not re.search(r"\bDEFAULT$", clause, re.IGNORECASE):
                    left_out.append(clause)
                sql = sql.replace(m.group(0), "", 1)
            # IDENTIFIED WITH 'plugin' AS 'hash': MariaDB takes the plugin name unquoted.
            sql = re.sub(r"IDENTIFIED WITH '([A-Za-z0-9_]+)'", r"IDENTIFIED WITH \1", sql)
    elif not target.is_mariadb:
        # MariaDB prints native hashes as IDENTIFIED BY PASSWORD, which MySQL 8 no longer accepts.
        sql = re.sub(
            r"IDENTIFIED BY PASSWORD ('[^']*')", rf"IDENTIFIED WITH {NATIVE} AS \1", sql, flags=re.IGNORECASE
        )
    return sql, left_out, defaults


def create_role_sql(role: Account, target: Flavour) -> str:
    if target.is_mariadb:
        return f"CREATE ROLE IF NOT EXISTS {quote_identifier(role.user)}"
    return f"CREATE ROLE IF NOT EXISTS {role.sql}"


def role_sql(role: Account) -> str:
    return quote_identifier(role.user) if not role.host else role.sql


@dataclass
class AccountCopy:
    account: Account
    is_role: bool
    plugin: str
    create: str
    grants: list[str]
    left_out: list[str]


def plan_copy(
    source: MySQLSession,
    acc: SourceAccount,
    *,
    source_flavour: Flavour,
    target_flavour: Flavour,
    target_privileges: set[str],
    schemas: Iterable[str],
) -> AccountCopy:
    """The statements that re-create one account (or role) on the target, and what they leave out."""
    a = acc.account
    wanted = set(schemas)
    left_out: list[str] = []
    default_roles: list[Account] = []
    if acc.is_role and source_flavour.is_mariadb:
        create = create_role_sql(a, target_flavour)
        grantee = role_sql(a)
    else:
        show = str(source.rows(f"SHOW CREATE USER {a.sql}")[0][0])
        create, dropped, default_roles = create_user_sql(show, source_flavour, target_flavour)
        left_out += [f"{a}: option {d} (the target has no such option)" for d in dropped]
        grantee = a.sql
    parsed = parse_grants(grant_lines(source, a, role=acc.is_role))
    grants: list[str] = []
    for g in parsed.privileges:
        where = f"{g.kind} {g.object}".strip()
        if g.schema is not None and g.schema not in wanted:
            left_out.append(f"{a}: {', '.join(g.privileges)} ON {where} (schema not migrated)")
            continue
        kept = [p for p in g.privileges if privilege_name(p) in target_privileges]
        lacking = [p for p in g.privileges if privilege_name(p) not in target_privileges]
        if lacking:
            left_out.append(f"{a}: {', '.join(lacking)} ON {where} (the target has no such privilege)")
        if kept or g.grant_option:
            grants.append(g.statement(grantee, kept or ["USAGE"]))
    for role in parsed.roles:
        if is_system(role.user):
            left_out.append(f"{a}: role {role} (an RDS or system role)")
            continue
        grants.append(f"GRANT {role_sql(role)} TO {grantee}")
    for role in [*parsed.default_roles, *default_roles]:
        if not is_system(role.user):
            grants.append(
                f"SET DEFAULT ROLE {role_sql(role)} FOR {grantee}"
                if target_flavour.is_mariadb
                else f"SET DEFAULT ROLE {role_sql(role)} TO {grantee}"
            )
    left_out += [f"{a}: {line} (not understood)" for line in parsed.other]
    return AccountCopy(a, acc.is_role, acc.plugin, create, grants, left_out)


def target_accounts(session: MySQLSession) -> set[Account]:
    return {Account(str(u), str(h)) for u, h in session.rows("SELECT User, Host FROM mysql.user")}


# --- who was connected ------------------------------------------------------------------------------------
def connected(session: MySQLSession) -> set[str]:
    """``user@client-host`` of every session on the server now (needs PROCESS to see other accounts')."""
    seen = set()
    for raw_user, raw_host in session.rows("SELECT USER, HOST FROM information_schema.PROCESSLIST"):
        user, host = str(raw_user or ""), str(raw_host or "")
        if user in THREAD_USERS:
            continue
        client = host.rsplit(":", 1)[0] if ":" in host and not host.startswith("[") else host
        seen.add(f"{user}@{client}")
    return seen


def host_matches(pattern: str, client: str) -> bool:
    """MySQL's host matching, simplified: % and _ wildcards, case-insensitive; netmasks not handled."""
    if "/" in pattern:
        return False
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, client, re.IGNORECASE) is not None or (
        pattern.lower() == "localhost" and client in ("127.0.0.1", "::1", "localhost")
    )


def missing_for(seen: Iterable[str], accounts: set[Account], *, skip: Iterable[str], exclude: tuple[str, ...]) -> list[str]:
    """The sessions in ``seen`` no account in ``accounts`` would let in (ours, system and excluded aside)."""
    skip_users = set(skip)
    missing = []
    for entry in sorted(set(seen)):
        user, _, client = entry.rpartition("@")
        if user in skip_users or is_system(user) or matches(exclude, Account(user, client)):
            continue
        if any(matches(exclude, a) for a in accounts if a.user == user):
            continue
        if not any(a.user == user and host_matches(a.host, client) for a in accounts):
            missing.append(entry)
    return missing
