"""
Where Shoal keeps its desired configuration and the cluster's reported state.

:class:`Store` is the blocking protocol; :class:`MemoryStore` is the in-memory
fake and :class:`~control.store.sql.SQLStore` the durable store (SQLite or
PostgreSQL). :func:`open_store` picks one from a URL.
"""

from control.store.factory import open_store
from control.store.interface import Store
from control.store.memory import MemoryStore

__all__ = ["MemoryStore", "Store", "open_store"]
