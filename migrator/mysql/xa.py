"""Prepared XA transactions on a server (XA RECOVER), named as XA COMMIT / XA ROLLBACK take them.

A replica stopped between an XA PREPARE and its XA COMMIT holds the transaction prepared: its rows
are not visible to a copy, and an applier starting at the stop coordinates meets an XA COMMIT whose
prepared part it never saw. Step 3 reads these to refuse such a point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migrator.mysql.flavour import Flavour
from migrator.mysql.session import MySQLSession


@dataclass(frozen=True)
class PreparedXa:
    format_id: int
    gtrid: bytes
    bqual: bytes

    @property
    def sql(self) -> str:
        """The xid as XA COMMIT takes it, in the form mariadb-binlog prints (and the applier names)."""
        return f"X'{self.gtrid.hex()}',X'{self.bqual.hex()}',{self.format_id}"

    @property
    def readable(self) -> str:
        """``sql``, with the gtrid as text when it is printable (what an application usually set)."""
        text = self.gtrid.decode("ascii", "replace")
        if text.isprintable() and "\ufffd" not in text and "'" not in text:
            return f"{self.sql} ('{text}')"
        return self.sql


def from_recover_row(flavour: Flavour, row: tuple[Any, ...]) -> PreparedXa:
    """One XA RECOVER row: data is gtrid then bqual, split at gtrid_length."""
    format_id, gtrid_length, _bqual_length, data = row[:4]
    raw = flavour.xa_data(data)
    return PreparedXa(int(format_id), raw[: int(gtrid_length)], raw[int(gtrid_length) :])


def prepared_xas(session: MySQLSession, flavour: Flavour) -> list[PreparedXa]:
    """Every XA transaction in the PREPARED state on this server, whichever session prepared it."""
    return sorted(
        (from_recover_row(flavour, row) for row in session.rows(flavour.xa_recover_sql)),
        key=lambda xa: (xa.format_id, xa.gtrid, xa.bqual),
    )
