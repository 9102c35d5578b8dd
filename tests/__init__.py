"""Shoal's test suite; ``tests.processes`` is shared with ``bench/``."""
