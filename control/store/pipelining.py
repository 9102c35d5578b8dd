"""
Statements sent together: :func:`pipelined`.

On PostgreSQL every statement is a round trip: the client sends it and waits
for its answer before sending the next. Statements whose results nobody
reads (inserts, updates and deletes without ``RETURNING``) can instead go
out together in libpq's pipeline mode and their answers be read once at the
end: one round trip for all. A failure of any of them is raised when the
block ends, and the transaction is then rolled back as after any failure.

Only statements whose rows are not read may run in the block: in pipeline
mode a query's rows arrive after the block, so a ``SELECT`` inside it would
see none. SQLite has no round trips: there the block does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection


@contextmanager
def pipelined(connection: Connection) -> Iterator[None]:
    """Send the statements ``connection`` executes in the block together (PostgreSQL), their
    answers read when it ends; only statements whose results are not read."""
    if connection.dialect.name != "postgresql":
        yield
        return
    with connection.connection.driver_connection.pipeline():  # type: ignore[union-attr]
        yield
