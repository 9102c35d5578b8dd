"""Alembic migrations of the store's schema; run them with :mod:`control.store.migrate`."""
