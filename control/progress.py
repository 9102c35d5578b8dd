"""
How far a dataset is from being mounted on a node, from the reported state (pure).

The one answer behind ``shoal dataset list``'s STATUS, the CLI's ``--wait``
and the plugin's Mount: each turns the :class:`Progress` into its own words.
"""

from __future__ import annotations

import enum
from uuid import UUID

from attrs import frozen

from control.client.interface import StateDataset


class Stage(enum.Enum):
    """Where a dataset's volume is, seen from the node that should mount it."""

    UNREPORTED = "unreported"
    """No node reports the dataset (not created yet, or its agent is not running)."""
    DETACHED = "detached"
    """The volume exists but is attached to no node."""
    ELSEWHERE = "elsewhere"
    """The volume is attached (or mounted) on another node."""
    ATTACHED = "attached"
    """Attached to the node, not mounted yet."""
    MOUNTED = "mounted"
    """Mounted on the node."""


@frozen
class Progress:
    """A :class:`Stage`, the node holding the volume (if any) and its mount path (if mounted)."""

    stage: Stage
    holder: UUID | None = None
    path: str | None = None


def progress_towards(state: StateDataset | None, node: UUID) -> Progress:
    """How far the dataset reported as ``state`` is from being mounted on ``node``."""
    if state is None:
        return Progress(Stage.UNREPORTED)
    if state.primary is None:
        return Progress(Stage.DETACHED)
    if state.primary != node:
        return Progress(Stage.ELSEWHERE, state.primary)
    if state.path is None:
        return Progress(Stage.ATTACHED, node)
    return Progress(Stage.MOUNTED, node, state.path)
