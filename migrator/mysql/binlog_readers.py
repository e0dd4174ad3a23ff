"""Whether anything reads a server's binlog: the target's replicas must get the copied rows too (review A7)."""

from __future__ import annotations

from migrator.mysql.flavour import detect
from migrator.mysql.session import MySQLSession


def binlog_readers(session: MySQLSession) -> str | None:
    """What reads this server's binlog (its replicas, a CDC tool), in words; None when nothing visibly does.

    Registered replicas (SHOW SLAVE HOSTS; SHOW REPLICAS on MySQL 8.4) and binlog dump threads (a
    reader that did not register). A list we may not read counts as a reader: rows missing on a
    replica of the target are worse than a slower copy.
    """
    flavour = detect(str(session.value("SELECT VERSION()")))
    try:
        hosts = session.rows(flavour.replicas_sql)
        dumps = session.value(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND IN ('Binlog Dump', 'Binlog Dump GTID')"
        )
    except Exception as exc:  # no privilege to look: assume a reader
        return f"possibly a replica (the replicas could not be listed: {exc})"
    if hosts:
        return f"{len(hosts)} replica(s) (server ids {', '.join(str(h[0]) for h in hosts)})"
    if dumps:
        return f"{int(dumps)} binlog dump connection(s)"
    return None
