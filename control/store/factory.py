"""Open a store from a URL: ``memory:`` or an SQLAlchemy database URL."""

from __future__ import annotations

from control.events import EventRetention
from control.store.interface import Store
from control.store.memory import MemoryStore

MEMORY_URL = "memory:"
"""The URL of a fresh, non-durable :class:`~control.store.memory.MemoryStore`."""


def open_store(
    url: str,
    upgrade: bool = False,
    retention: EventRetention | None = None,
    seen_in_memory: bool = False,
    sole_writer: bool = False,
) -> Store:
    """
    Open the store at ``url``.

    ``memory:`` gives an in-memory store; anything else is an SQLAlchemy URL
    (``sqlite:////var/lib/shoal/control.db``,
    ``postgresql+psycopg://user@host/db``). With ``upgrade`` the database
    schema is first migrated to the newest revision (created if empty);
    without it a database that is not at the newest revision is refused.
    Raises :class:`~control.errors.Unavailable` if the database cannot be
    reached. ``retention`` bounds the event history (default
    :class:`~control.events.EventRetention`). ``seen_in_memory`` keeps an SQL
    store's heartbeats in memory until :meth:`~control.store.interface.Store.flush_seen`;
    with ``sole_writer`` too (nothing else writes the database while the store is open),
    it may renew repeated heartbeats without reading them
    (:meth:`~control.store.interface.Store.renew_report`).
    """
    if url == MEMORY_URL:
        return MemoryStore(retention)
    from control.store.sql import SQLStore

    if upgrade:
        from control.store.migrate import upgrade as upgrade_schema

        upgrade_schema(url)
    return SQLStore(url, retention, seen_in_memory, sole_writer=sole_writer)
