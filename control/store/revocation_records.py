"""
The SQL statements and rows of revoked certificates (the ``revocations`` table).

Like :mod:`control.store.queries`, every function takes an open connection in
a transaction the caller owns; none commits. Serials are stored as lower-case
hex text: they are up to 160 bits, more than a SQL integer holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, insert, select

from control.revocations import Revocation, serial_text
from control.store.tables import revocations


def revocation_from_row(row: Mapping[Any, Any]) -> Revocation:
    """The revocation stored in ``row``."""
    return Revocation(
        serial=int(row["serial"], 16),
        subject=row["subject"],
        at=row["at"],
        actor=row["actor"],
        reason=row["reason"],
    )


def all_revocations(connection: Connection) -> list[Revocation]:
    """Every revocation, oldest first."""
    query = select(revocations)
    found = [revocation_from_row(row) for row in connection.execute(query).mappings()]
    return sorted(found, key=lambda r: (r.at, r.serial))


def get_revocation(connection: Connection, serial: int) -> Revocation | None:
    """The revocation of ``serial``, or ``None``."""
    query = select(revocations).where(revocations.c.serial == serial_text(serial))
    row = connection.execute(query).mappings().first()
    return None if row is None else revocation_from_row(row)


def put_revocation(connection: Connection, revocation: Revocation) -> None:
    """Insert a new revocation."""
    connection.execute(
        insert(revocations).values(
            serial=serial_text(revocation.serial),
            subject=revocation.subject,
            at=revocation.at,
            actor=revocation.actor,
            reason=revocation.reason,
        )
    )
