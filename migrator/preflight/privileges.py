"""An account's effective privileges, read with SHOW GRANTS including the roles active in its sessions.

MySQL 8 lists granted roles in SHOW GRANTS without their privileges: those need
``SHOW GRANTS FOR CURRENT_USER() USING <active roles>``. MariaDB lists the default role's grants
(nested roles included) with the user's; ``SHOW GRANTS FOR <role>`` is read too so nothing depends
on that. Only roles active at login count (CURRENT_ROLE(): the default roles, or all with MySQL's
activate_all_roles_on_login): the migrator's sessions never SET ROLE.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from migrator import grants
from migrator.mysql.flavour import Flavour
from migrator.mysql.session import MySQLSession

_GRANT = re.compile(r"^GRANT (?P<privs>.+?) ON (?P<obj>.+?) TO ", re.DOTALL)
_ROLE_GRANT = re.compile(r"^GRANT (?P<roles>`[^ ]+?`(?:@`[^`]*`)?(?:\s*,\s*`[^ ]+?`(?:@`[^`]*`)?)*) TO ")
_COLUMNS = re.compile(r"\([^)]*\)")
_ALL = {"ALL", "ALL PRIVILEGES"}


def _unquote(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "`'\"":
        return name[1:-1].replace(name[0] * 2, name[0])
    return name


def _normalise(privilege: str) -> str:
    return " ".join(privilege.strip().upper().split())


def _pattern(db_pattern: str) -> re.Pattern[str]:
    """A database name in a grant is a LIKE pattern: % and _ are wildcards, \\_ and \\% literal."""
    out = []
    i = 0
    while i < len(db_pattern):
        ch = db_pattern[i]
        if ch == "\\" and i + 1 < len(db_pattern):
            out.append(re.escape(db_pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.IGNORECASE)


def _split_object(obj: str) -> tuple[str, str, str]:
    """``(kind, db, name)``: kind is 'global', 'db', 'table' or 'procedure'/'function'."""
    obj = obj.strip()
    kind = "table"
    for prefix in ("PROCEDURE ", "FUNCTION ", "TABLE "):
        if obj.upper().startswith(prefix):
            kind = prefix.strip().lower() if prefix != "TABLE " else "table"
            obj = obj[len(prefix) :].strip()
    if obj in {"*.*", "*"}:
        return "global", "", ""
    match = re.match(r"^(`(?:[^`]|``)*`|[^.]+)\.(.+)$", obj)
    if not match:
        return kind, _unquote(obj), ""
    db, name = _unquote(match.group(1)), match.group(2)
    if name == "*":
        return "db", db, ""
    return kind, db, _unquote(name)


@dataclass
class Privileges:
    account: str  # CURRENT_USER(): 'user@host'
    roles: tuple[str, ...] = ()
    inactive_roles: tuple[str, ...] = ()
    lines: list[str] = field(default_factory=list)
    global_: set[str] = field(default_factory=set)
    databases: list[tuple[re.Pattern[str], set[str]]] = field(default_factory=list)
    objects: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)  # (kind, db, name)

    def add_line(self, line: str) -> None:
        self.lines.append(line)
        match = _GRANT.match(line)
        if not match:
            return
        privileges = {_normalise(p) for p in _COLUMNS.sub("", match.group("privs")).split(",") if p.strip()}
        if re.search(r"\bWITH\b.*\bGRANT OPTION\b", line[match.end():], re.DOTALL):
            privileges.add("GRANT OPTION")  # printed after TO, not in the privilege list
        kind, db, name = _split_object(match.group("obj"))
        if kind == "global":
            self.global_ |= privileges
        elif kind == "db":
            self.databases.append((_pattern(db), privileges))
        else:
            self.objects.setdefault((kind, db.lower(), name.lower()), set()).update(privileges)

    @staticmethod
    def _covers(have: set[str], privilege: str) -> bool:
        return privilege in have or (bool(have & _ALL) and privilege not in ("GRANT OPTION", "PROXY"))

    def on_global(self, privilege: str) -> bool:
        return privilege == "USAGE" or self._covers(self.global_, privilege)

    def on_database(self, privilege: str, db: str) -> bool:
        if self.on_global(privilege):
            return True
        return any(pattern.match(db) and self._covers(have, privilege) for pattern, have in self.databases)

    def on_object(self, privilege: str, kind: str, db: str, name: str) -> bool:
        if self.on_database(privilege, db):
            return True
        return self._covers(self.objects.get((kind, db.lower(), name.lower()), set()), privilege)

    def has(self, privilege: str, on: str, schemas: tuple[str, ...]) -> list[str]:
        """The places (``*.*``, ```db`.*``, ...) where ``privilege`` is missing; empty when held."""
        privilege = _normalise(privilege)
        if on == grants.GLOBAL:
            return [] if self.on_global(privilege) else ["*.*"]
        if on.startswith("TABLE "):
            db, _, name = on.removeprefix("TABLE ").partition(".")
            return [] if self.on_object(privilege, "table", db, name) else [f"{db}.{name}"]
        if on.startswith("PROCEDURE "):
            db, _, name = on.removeprefix("PROCEDURE ").partition(".")
            return [] if self.on_object(privilege, "procedure", db, name) else [on]
        dbs: list[str] = []
        if on in (grants.SCHEMAS, grants.SCHEMAS_AND_MIGRATOR):
            dbs.extend(schemas)
        if on in (grants.MIGRATOR_SCHEMA, grants.SCHEMAS_AND_MIGRATOR):
            dbs.append("_migrator")
        if on == grants.MYSQL_SCHEMA:
            dbs.append("mysql")
        return [f"`{db}`.*" for db in dbs if not self.on_database(privilege, db)]


def _roles(value: object) -> tuple[str, ...]:
    text = "" if value is None else str(value)
    if not text or text.upper() == "NONE":
        return ()
    return tuple(r.strip() for r in re.split(r",(?=`)", text) if r.strip())


def read_privileges(session: MySQLSession, flavour: Flavour) -> Privileges:
    account = str(session.value("SELECT CURRENT_USER()"))
    own = [str(row[0]) for row in session.rows("SHOW GRANTS")]
    active = _roles(session.value("SELECT CURRENT_ROLE()"))
    granted: list[str] = []
    user = account.rpartition("@")[0]
    for line in own:
        match = _ROLE_GRANT.match(line)
        # only roles granted to this account (MariaDB also lists roles granted to its roles)
        if match and " ON " not in line.split(" TO ")[0] and f" TO `{user}`@" in line:
            granted.extend(r.strip() for r in re.split(r",(?=\s*`)", match.group("roles")))
    privileges = Privileges(account=account, roles=active)
    if flavour.is_mariadb:
        lines = list(own)
        for role in active:
            lines += [str(row[0]) for row in session.rows(f"SHOW GRANTS FOR {_quote_role(role)}")]
        active_names = {_unquote(r) for r in active}
    else:
        lines = own
        if active:
            lines = [
                str(row[0]) for row in session.rows(f"SHOW GRANTS FOR CURRENT_USER() USING {', '.join(active)}")
            ]
        active_names = {r.replace("`", "") for r in active}
    privileges.inactive_roles = tuple(
        r for r in granted if _unquote(r) not in active_names and r.replace("`", "") not in active_names
    )
    for line in lines:
        privileges.add_line(line)
    return privileges


def _quote_role(role: str) -> str:
    return role if role.startswith("`") else "`" + role.replace("`", "``") + "`"


def quoted_account(account: str) -> str:
    """'user@host' (CURRENT_USER()) as 'user'@'host' for a GRANT statement."""
    user, _, host = account.rpartition("@")
    return f"'{user}'@'{host}'"
