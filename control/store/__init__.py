"""
Where Shoal keeps its desired configuration and the cluster's reported state.

:class:`~control.store.interface.Store` is the blocking protocol;
:class:`~control.store.memory.MemoryStore` is the in-memory fake and
:class:`~control.store.sql.SQLStore` the durable store (SQLite or PostgreSQL).
:func:`~control.store.factory.open_store` picks one from a URL.
"""
