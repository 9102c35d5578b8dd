"""
State changes as values (compare Flocker's ``IStateChange``).

:func:`agent.policy.calculate_changes` returns a tree of these frozen values;
:mod:`agent.executor` runs it. Because they compare equal, a policy test is one
equality assertion on the returned tree, with no mocks.

A leaf is one backend or filesystem action (or a :class:`Wait`, which does
nothing but say why a dataset is not progressing). :func:`sequentially` and
:func:`in_parallel` combine changes and collapse: no-ops are dropped, a single
change stands for itself, and nothing left becomes :class:`NoOp`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from uuid import UUID

from attrs import field, frozen

from agent.backends.interface import FencedAttachment

IDLE_SLEEP = 60.0
"""Seconds the loop may wait (for the watch) when there is nothing to do."""

WAIT_SLEEP = 5.0
"""Seconds before looking again when a dataset waits on another node."""


@frozen
class CreateVolume:
    """Create the dataset's volume (the backend returns the existing one if any), on the
    node's ``backend`` of that name (``None``: its default one)."""

    dataset_id: UUID
    size: int
    backend: str | None = None


@frozen
class AttachVolume:
    """Attach the dataset's volume ``blockdevice_id`` to this node, at the dataset's ``epoch``;
    ``read_only``: a read-only attachment beside other readers (``ReadOnlyMany``)."""

    dataset_id: UUID
    blockdevice_id: str
    epoch: int = 0
    read_only: bool = False


@frozen
class FenceVolume:
    """
    Cut the node ``node`` (an instance id) off the volume ``blockdevice_id``, because of ``reason``.

    Made before attaching a volume still attached to a fenced node
    (``docs/failover.md``, "Backend fence").
    """

    dataset_id: UUID
    blockdevice_id: str
    node: str
    reason: str


@frozen
class ShutDownFilesystem:
    """Shut down the filesystem mounted at ``path`` (writers get ``EIO``), because of ``reason``."""

    dataset_id: UUID | None
    path: str
    reason: str


@frozen
class CleanUpFenced:
    """Remove what is left here of an attachment fenced away from this node."""

    dataset_id: UUID | None
    leftover: FencedAttachment


@frozen
class MakeFilesystem:
    """Format ``device`` as ``filesystem``; discovery found it without a filesystem."""

    dataset_id: UUID
    device: str
    filesystem: str = "ext4"


@frozen
class MountFilesystem:
    """Mount ``device`` at ``path`` (``read_only``: ``ro``, no journal replay)."""

    dataset_id: UUID
    device: str
    path: str
    read_only: bool = False


@frozen
class MountAttached:
    """
    Mount the volume ``blockdevice_id``, attached here by the change before, at ``path``.

    Made right after an :class:`AttachVolume` in the same :func:`sequentially`, so a
    volume is attached and mounted in one pass. The device is the one the attach made
    (the backend's device path); it is mounted only if it holds a filesystem that needs
    no offline grow first to fill the volume's ``size`` (:func:`agent.discovery.mountable`).
    Otherwise nothing is done and the next pass observes the device and formats, grows or
    mounts it as the table says: this change never formats.
    """

    dataset_id: UUID
    blockdevice_id: str
    path: str
    size: int | None = None
    """The volume's size, as the observation listed it (to tell a filesystem that needs growing)."""


@frozen
class UnmountFilesystem:
    """Unmount the dataset's filesystem from ``path``; ``lazy``: detach it even while busy."""

    dataset_id: UUID | None
    path: str
    lazy: bool = False


@frozen
class DetachVolume:
    """Detach the dataset's volume ``blockdevice_id`` from this node (``read_only``: this
    node's read-only attachment, leaving other readers theirs)."""

    dataset_id: UUID
    blockdevice_id: str
    read_only: bool = False


@frozen
class DestroyVolume:
    """Destroy the (deleted) dataset's unattached volume and its data."""

    dataset_id: UUID
    blockdevice_id: str


@frozen
class CreateSnapshot:
    """
    Snapshot the dataset's volume ``blockdevice_id`` as ``snapshot_id``.

    With ``freeze_path`` set (the source is mounted here) the filesystem
    there is frozen for the instant of the copy, and always thawed.
    """

    dataset_id: UUID
    snapshot_id: str
    blockdevice_id: str
    freeze_path: str | None = None


@frozen
class DestroySnapshot:
    """Destroy the (deleted) snapshot ``snapshot_id`` of the dataset ``dataset_id``."""

    dataset_id: UUID
    snapshot_id: str


@frozen
class RestoreVolume:
    """Create the dataset's volume of ``size`` bytes from the snapshot ``snapshot_id``."""

    dataset_id: UUID
    snapshot_id: str
    size: int


@frozen
class CloneVolume:
    """
    Create the dataset's volume of ``size`` bytes as a copy of the volume ``source_blockdevice_id``.

    With ``freeze_path`` set (the source is mounted here) the source's
    filesystem is frozen for the instant of the copy.
    """

    dataset_id: UUID
    source_blockdevice_id: str
    size: int
    freeze_path: str | None = None


@frozen
class ResizeVolume:
    """Grow the dataset's volume ``blockdevice_id`` to ``size`` bytes."""

    dataset_id: UUID
    blockdevice_id: str
    size: int


@frozen
class GrowFilesystem:
    """Grow the filesystem on ``device`` to fill it (online if mounted)."""

    dataset_id: UUID
    device: str


@frozen
class Wait:
    """
    Do nothing for this dataset now, because of ``reason`` (e.g. another node has it).

    ``reason`` is a sentence for people; ``code`` the machine-readable kind
    of wait, reported as the dataset's waiting condition.
    """

    dataset_id: UUID
    reason: str
    code: str = "waiting"


@frozen
class NoOp:
    """Nothing to do; the loop may wait up to ``sleep`` seconds before the next pass."""

    sleep: float = IDLE_SLEEP


def _as_tuple(changes: Iterable[Change]) -> tuple[Change, ...]:
    return tuple(changes)


@frozen
class Sequentially:
    """Run ``changes`` one after another, stopping at the first failure."""

    changes: tuple[Change, ...] = field(converter=_as_tuple)


@frozen
class InParallel:
    """Run all of ``changes`` independently; the run fails if any of them failed."""

    changes: tuple[Change, ...] = field(converter=_as_tuple)


Action = (
    CreateVolume
    | AttachVolume
    | MakeFilesystem
    | MountFilesystem
    | MountAttached
    | UnmountFilesystem
    | DetachVolume
    | DestroyVolume
    | CreateSnapshot
    | DestroySnapshot
    | RestoreVolume
    | CloneVolume
    | ResizeVolume
    | GrowFilesystem
    | FenceVolume
    | ShutDownFilesystem
    | CleanUpFenced
)
"""A leaf change that does I/O."""

Change = Action | Wait | NoOp | Sequentially | InParallel
"""Any node of a change tree."""

ACTIONS: tuple[type, ...] = (
    CreateVolume,
    AttachVolume,
    MakeFilesystem,
    MountFilesystem,
    MountAttached,
    UnmountFilesystem,
    DetachVolume,
    DestroyVolume,
    CreateSnapshot,
    DestroySnapshot,
    RestoreVolume,
    CloneVolume,
    ResizeVolume,
    GrowFilesystem,
    FenceVolume,
    ShutDownFilesystem,
    CleanUpFenced,
)


def _collapse(changes: Iterable[Change], combine: type[Sequentially] | type[InParallel]) -> Change:
    kept: list[Change] = []
    sleeps: list[float] = []
    for change in changes:
        if isinstance(change, NoOp):
            sleeps.append(change.sleep)
        else:
            kept.append(change)
    if not kept:
        return NoOp(sleep=min(sleeps, default=IDLE_SLEEP))
    if len(kept) == 1:
        return kept[0]
    return combine(kept)


def sequentially(changes: Iterable[Change]) -> Change:
    """``changes`` in order; no-ops dropped, one change alone, none as :class:`NoOp`."""
    return _collapse(changes, Sequentially)


def in_parallel(changes: Iterable[Change]) -> Change:
    """``changes`` independently; no-ops dropped, one change alone, none as :class:`NoOp`."""
    return _collapse(changes, InParallel)


def leaves(change: Change) -> Iterator[Change]:
    """Every leaf of the tree (actions, waits and no-ops), depth first, in order."""
    if isinstance(change, Sequentially | InParallel):
        for child in change.changes:
            yield from leaves(child)
    else:
        yield change


def actions(change: Change) -> list[Action]:
    """The leaves of the tree that do I/O."""
    return [leaf for leaf in leaves(change) if isinstance(leaf, ACTIONS)]  # type: ignore[misc]


def sleep_after(change: Change) -> float:
    """
    How long the loop may wait for the watch before its next pass.

    Zero when the tree did anything (the next pass continues the work),
    :data:`WAIT_SLEEP` when a dataset waits on another node, else the
    :class:`NoOp`'s sleep.
    """
    if actions(change):
        return 0.0
    found = list(leaves(change))
    sleep = min((leaf.sleep for leaf in found if isinstance(leaf, NoOp)), default=IDLE_SLEEP)
    if any(isinstance(leaf, Wait) for leaf in found):
        return min(sleep, WAIT_SLEEP)
    return sleep
