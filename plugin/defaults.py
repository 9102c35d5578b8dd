"""
The plugin's defaults, in a module that imports nothing heavy.

``shoal plugin --help`` shows them without loading the plugin (see
:mod:`plugin.cli`); :mod:`plugin.serve` uses the same values.
"""

from __future__ import annotations

DEFAULT_SOCKET = "/run/docker/plugins/shoal.sock"
DEFAULT_STATE_DIR = "/var/lib/shoal/plugin"
DEFAULT_SIZE = 1024**3
"""Bytes of a volume created without a ``size`` option (1 GiB)."""
DEFAULT_MOUNT_TIMEOUT = 110.0
"""Seconds a Mount waits: under Docker's own 120 s limit, so Docker shows our message."""
