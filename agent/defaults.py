"""
The agent's defaults, in a module that imports nothing heavy.

``shoal agent --help`` shows them without loading the agent (see
:mod:`agent.cli`); :mod:`agent.service` uses the same values.
"""

from __future__ import annotations

from uuid import UUID

DEFAULT_MOUNT_ROOT = "/var/lib/shoal/mounts"
DEFAULT_CLUSTER_ID = UUID("5e0a1c1d-0000-4000-8000-00000000c1a5")
"""The cluster id of agents not given one; the same on every node, so they agree."""
