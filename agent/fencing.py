"""
The agent's side of fencing (``docs/failover.md``), as pure functions of values.

- :class:`FenceView`: what this node knows of fencing in one pass: whether it
  is fenced, which nodes are (by instance id), and whether it has fenced
  itself (its node lease ran out).
- :func:`self_fence_changes`: what a node whose lease ran out does to every
  dataset it mounts (shut the filesystem down, then unmount it, lazily).
- :func:`let_go_fenced`: how a fenced node lets go of a dataset now primary
  elsewhere (the same, then detach).
- :func:`leftover_changes`: removing what a fence left on this node.
- :class:`Lease`: the node lease, measured on the agent's monotonic clock.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from uuid import UUID

from attrs import frozen

from agent.changes import (
    Change,
    CleanUpFenced,
    DetachVolume,
    ShutDownFilesystem,
    UnmountFilesystem,
    Wait,
    in_parallel,
    sequentially,
)
from agent.discovery import DiscoveredDataset, Leftover
from agent.fs.interface import Mount

FENCED = "fenced"
"""The code of a dataset's wait while this node is fenced by the control service."""
SELF_FENCED = "self_fenced"
"""The code of a dataset's wait while this node has fenced itself (its lease ran out)."""
STALE_EPOCH = "stale_epoch"
"""The code of a dataset's wait when the backend saw a newer epoch than this node's."""


@frozen
class FenceView:
    """
    What one pass knows about fencing.

    ``fenced``: the control service fenced this node (it attaches nothing and
    lets go of what is primary elsewhere). ``fenced_nodes``: the instance ids
    (``str(node uuid)``) of every fenced node, whose attachments this node
    fences in the backend before attaching. ``self_fenced``: this node's lease
    ran out and it has not renewed it since (it mounts nothing).
    """

    fenced: bool = False
    fenced_nodes: frozenset[str] = frozenset()
    self_fenced: bool = False

    @property
    def holding(self) -> bool:
        """Whether the node must not attach, format or mount anything now."""
        return self.fenced or self.self_fenced

    def hold_reason(self) -> tuple[str, str]:
        """Why the node holds (a sentence), and the wait's code."""
        if self.fenced:
            return (
                "this node is fenced by the control service: it attaches and mounts nothing "
                "until it is unfenced",
                FENCED,
            )
        return (
            "this node fenced itself (no successful report within its node lease): it mounts "
            "nothing until the control service answers again",
            SELF_FENCED,
        )


def hold(dataset_id: UUID, view: FenceView) -> Wait:
    """The wait of a dataset this node would attach, format or mount, were it not holding."""
    reason, code = view.hold_reason()
    return Wait(dataset_id, reason, code)


def stale(dataset_id: UUID, found: DiscoveredDataset, epoch: int) -> Wait:
    """The wait of a dataset whose volume was attached at a newer epoch than the configuration's."""
    return Wait(
        dataset_id,
        f"volume {found.blockdevice_id} was attached at epoch {found.epoch}, newer than this "
        f"node's configuration (epoch {epoch}): the dataset failed over or moved; not attaching",
        STALE_EPOCH,
    )


def _shut_and_unmount(dataset_id: UUID | None, paths: Iterable[str], reason: str) -> list[Change]:
    steps: list[Change] = []
    for path in paths:
        steps.append(ShutDownFilesystem(dataset_id, path, reason))
        steps.append(UnmountFilesystem(dataset_id, path, lazy=True))
    return steps


def let_go_fenced(found: DiscoveredDataset) -> Change:
    """A fenced node lets go of a dataset primary elsewhere: shut down, unmount (lazily), detach.

    The shutdown stops its writers at once (they may be the ones of a
    partition the node just came back from); the data is never touched.
    """
    assert found.blockdevice_id is not None
    reason = "this node is fenced and the dataset's primary is another node"
    return sequentially(
        [
            *_shut_and_unmount(found.dataset_id, found.mount_paths, reason),
            DetachVolume(found.dataset_id, found.blockdevice_id, read_only=found.read_only),
        ]
    )


def leftover_changes(leftovers: Iterable[Leftover]) -> Change:
    """Remove each fenced leftover: shut its mounts down, unmount them, then clean it up."""
    reason = "its volume was fenced away from this node"
    return in_parallel(
        sequentially(
            [
                *_shut_and_unmount(leftover.dataset_id, leftover.mount_paths, reason),
                CleanUpFenced(leftover.dataset_id, leftover.attachment),
            ]
        )
        for leftover in leftovers
    )


def dataset_of_mount(mount_root: str, path: str) -> UUID | None:
    """The dataset whose mount point (``<mount_root>/<dataset_id>``) ``path`` is, if any."""
    parent, name = posixpath.split(posixpath.normpath(path))
    if parent != posixpath.normpath(mount_root):
        return None
    try:
        return UUID(name)
    except ValueError:
        return None


def self_fence_changes(mounts: Iterable[Mount], mount_root: str, reason: str) -> Change:
    """What a node whose lease ran out does: shut down and unmount (lazily) every mount of its own.

    Its own are the mounts at or below ``mount_root`` (the agent mounts
    nothing elsewhere); no backend call is needed, so this works while the
    node is cut off from everything.
    """
    root = posixpath.normpath(mount_root)
    own = sorted(
        {
            posixpath.normpath(m.path)
            for m in mounts
            if posixpath.normpath(m.path) == root or m.path.startswith(root.rstrip("/") + "/")
        }
    )
    return in_parallel(
        sequentially(_shut_and_unmount(dataset_of_mount(mount_root, path), [path], reason))
        for path in own
    )


@frozen
class Lease:
    """
    The node lease on the agent's monotonic clock (``docs/failover.md``, "Timing").

    ``renewed_at`` is when the agent *sent* the last report or registration
    that succeeded (``None``: none yet); ``length`` the ``node_lease`` the
    service gave (``None``: it gave none, so no self-fencing).
    """

    renewed_at: float | None = None
    length: float | None = None

    def renewed(self, sent_at: float) -> Lease:
        """After a report or registration sent at ``sent_at`` succeeded."""
        latest = sent_at if self.renewed_at is None else max(self.renewed_at, sent_at)
        return Lease(latest, self.length)

    def with_length(self, length: float | None) -> Lease:
        """With the lease length the latest configuration gave (kept when it gives none)."""
        return Lease(self.renewed_at, length if length is not None else self.length)

    def expires_at(self) -> float | None:
        """When the lease runs out (monotonic), or ``None`` if it cannot."""
        if self.renewed_at is None or self.length is None:
            return None
        return self.renewed_at + self.length

    def expired(self, now: float) -> bool:
        """Whether the lease has run out at ``now`` (monotonic)."""
        end = self.expires_at()
        return end is not None and now >= end
