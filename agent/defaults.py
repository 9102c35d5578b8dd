"""
The agent's defaults, in a module that imports nothing heavy.

``shoal agent --help`` shows them without loading the agent (see
:mod:`agent.cli`); :mod:`agent.service` uses the same values.
"""

from __future__ import annotations

from uuid import UUID

from agent.backends.interface import BackendError

DEFAULT_MOUNT_ROOT = "/var/lib/shoal/mounts"
DEFAULT_CLUSTER_ID = UUID("5e0a1c1d-0000-4000-8000-00000000c1a5")
"""The cluster id of agents not given one; the same on every node, so they agree."""

OVERCOMMIT_RANGE = (1.0, 10.0)
"""The bounds of a thin pool's overcommit ratio (provisioned bytes / pool size)."""


def check_overcommit(ratio: float | None) -> float | None:
    """``ratio`` if it is ``None`` (thick) or within :data:`OVERCOMMIT_RANGE`; else raise."""
    low, high = OVERCOMMIT_RANGE
    if ratio is not None and not low <= ratio <= high:
        raise BackendError(
            f"The pool overcommit ratio must be between {low} and {high}, not {ratio}; "
            "leave it unset for a fully allocated (thick) pool."
        )
    return ratio
