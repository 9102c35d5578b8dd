"""
The block-device backend seam (compare Flocker's ``IBlockDeviceAPI``).

A backend stores *volumes*: block devices that exist independently of any
node and can be attached to one node at a time. Every backend passes the
conformance suite in ``tests/agent/backends/conformance.py``.

Calls are blocking; the agent's executor runs them in a thread, never on the
reactor thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from attrs import frozen

from control.model import Capacity


class BackendError(Exception):
    """Base of the errors a backend raises; the message says what to do."""


class UnknownVolume(BackendError):
    """No volume with that blockdevice id exists (in this cluster)."""


class AlreadyAttachedVolume(BackendError):
    """The volume is attached (to this or another instance) and must be detached first."""


class UnattachedVolume(BackendError):
    """The volume is not attached, so it has no device path and cannot be detached."""


class StaleEpoch(BackendError):
    """
    An attach carried an epoch older than one the backend already saw for the volume.

    The caller's configuration is stale (the dataset changed primary since, a
    failover happened): it must not attach, and never mounts. Only a newer
    configuration can clear it (``permanent``, in the agent's conditions).
    """

    reason = "stale_epoch"
    permanent = True


class UnknownSnapshot(BackendError):
    """No snapshot with that id exists (in this cluster)."""


class InsufficientCapacity(BackendError):
    """
    The volume cannot be created: it is larger than the backend can hold.

    ``reason`` is ``"too_large"`` when the volume exceeds what the backend
    could hold even empty (a configuration change is needed), ``"no_space"``
    when it exceeds only the space free now. ``requested`` and ``available``
    are bytes (``available``: the largest volume the backend can create now).
    """

    def __init__(self, message: str, *, reason: str, requested: int, available: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.requested = requested
        self.available = available


@frozen
class BlockDeviceVolume:
    """
    One volume as the backend sees it.

    ``attached_to`` is the compute instance id of the node it is attached to,
    or ``None``. ``size`` is in bytes, a multiple of the allocation unit.
    ``epoch`` is the highest attach epoch the backend has recorded for the
    volume (0 until an attach carries one). ``readers`` are the instances the
    volume is attached to read-only (:class:`ReadOnlyManyAPI`); a volume is
    attached read-write to one instance or read-only to any number, never both.
    """

    blockdevice_id: str
    size: int
    cluster_id: UUID
    dataset_id: UUID
    attached_to: str | None = None
    epoch: int = 0
    readers: frozenset[str] = frozenset()


@frozen
class FencedAttachment:
    """
    What is left on *this* node of an attachment fenced away from it.

    ``device_path`` is a local device still present (a loop device), or
    ``None``; ``detail`` says in words what remains (for logs and events).
    """

    blockdevice_id: str
    device_path: str | None
    detail: str


@frozen
class BlockDeviceSnapshot:
    """
    One snapshot as the backend sees it: a copy-on-write capture of a volume.

    ``blockdevice_id`` and ``dataset_id`` name the source volume and dataset
    (which the snapshot outlives); ``size`` is its size in bytes, the
    smallest volume it can be restored into.
    """

    snapshot_id: str
    blockdevice_id: str
    dataset_id: UUID
    size: int
    cluster_id: UUID


@runtime_checkable
class BlockDeviceAPI(Protocol):
    """
    Create, attach, detach and destroy the volumes of one cluster.

    A backend instance is bound to one ``cluster_id`` and one compute instance
    (the node it runs on); several clusters may share the storage behind it,
    and each sees only its own volumes.

    Idempotency and half-done states, which every backend must tolerate:

    - ``create_volume`` is keyed by dataset id and is the write-once
      dataset->volume record: creating a volume for a dataset that already has
      one returns the existing volume (whatever the size asked) and never
      makes a second. Two nodes racing to create end with one volume.
    - A crash may leave a volume created but not attached, or attached with
      the attachment recorded but its device gone (the loop device vanished):
      ``list_volumes`` still reports it attached, ``get_device_path`` restores
      the device or raises :class:`UnattachedVolume`, and ``detach_volume``
      clears the record even when the device is already gone.
    - Capacity is accounted for: a create that does not fit raises
      :class:`InsufficientCapacity` instead of promising space the backend
      does not have (a thin backend may overcommit only within a bounded,
      explicit setting).
    - Nothing here looks at filesystems or mounts: callers unmount first. A
      backend that can tell the device is still in use (loopback: mounted)
      refuses the detach with :class:`BackendError` and keeps the attachment.
    - Fencing (issue 11, ``docs/failover.md``): ``fence`` cuts a node off a
      volume without its cooperation, so that the volume can be attached
      elsewhere while the fenced node is dead, paused or partitioned; attach
      epochs (fencing tokens) keep a node holding a stale configuration from
      attaching it again. The fenced node later removes what is left of its
      attachment (``fenced_leftovers``, ``clean_up_fenced``).
    """

    def allocation_unit(self) -> int:
        """Volume sizes are rounded up to a multiple of this many bytes."""
        ...

    def compute_instance_id(self) -> str:
        """The id of the node this backend instance runs on, as used by ``attach_volume``."""
        ...

    def capacity(self) -> Capacity:
        """What the backend can hold now: total, free, the largest volume it can create.

        Cheap enough to call on every pass of the agent's loop.
        """
        ...

    def create_volume(self, dataset_id: UUID, size: int) -> BlockDeviceVolume:
        """Return the dataset's volume, creating it unattached with at least ``size`` bytes.

        Raises :class:`InsufficientCapacity` (and creates nothing) when a new
        volume of that size does not fit, whatever the size: a create never
        fails with an arithmetic error or leaves a partial volume behind.
        """
        ...

    def destroy_volume(self, blockdevice_id: str) -> None:
        """Destroy an unattached volume and its data.

        Raises :class:`UnknownVolume` if it does not exist and
        :class:`AlreadyAttachedVolume` if it is attached.
        """
        ...

    def attach_volume(
        self, blockdevice_id: str, attach_to: str, epoch: int = 0
    ) -> BlockDeviceVolume:
        """Attach a volume to the instance ``attach_to``; returns the updated volume.

        Raises :class:`UnknownVolume`; :class:`StaleEpoch` (and changes
        nothing) if ``epoch`` is lower than the volume's recorded epoch,
        whether or not the volume is attached; or
        :class:`AlreadyAttachedVolume` if it is attached anywhere (including
        ``attach_to``). Otherwise records ``max(recorded, epoch)``.
        """
        ...

    def fence(self, blockdevice_id: str, node: str) -> None:
        """Cut the instance ``node`` off the volume.

        When it returns, nothing ``node`` writes through its existing
        attachment reaches the volume (its writers get I/O errors), and the
        volume is no longer attached (another instance can attach it).
        Idempotent: a volume not attached to ``node`` is left alone. Never
        touches the volume's data or its recorded epoch. Raises
        :class:`UnknownVolume`.
        """
        ...

    def fenced_leftovers(self) -> list[FencedAttachment]:
        """This instance's local remains of attachments fenced away from it."""
        ...

    def clean_up_fenced(self, leftover: FencedAttachment) -> None:
        """Remove one leftover: detach its local device, kill helper processes.

        Never touches the volume's data or another node's attachment;
        idempotent (a leftover already gone is fine). Raises
        :class:`BackendError` when it cannot yet (loopback: the device is
        still mounted; unmount it first).
        """
        ...

    def detach_volume(self, blockdevice_id: str) -> None:
        """Detach a volume from whichever instance has it.

        Raises :class:`UnknownVolume`, or :class:`UnattachedVolume` if it is
        not attached.
        """
        ...

    def list_volumes(self) -> list[BlockDeviceVolume]:
        """Every volume of this cluster, attached or not."""
        ...

    def get_device_path(self, blockdevice_id: str) -> str:
        """The device path of a volume attached to *this* instance.

        Raises :class:`UnknownVolume`, or :class:`UnattachedVolume` if it is
        not attached here.
        """
        ...

    # -- snapshots, clones, resize -------------------------------------------
    #
    # A snapshot, a restore and a clone appear whole or not at all: a crash
    # while one is made leaves nothing listed (a half-made copy is removed
    # later by the backend itself). Snapshots count towards capacity.

    def create_snapshot(self, blockdevice_id: str, snapshot_id: str) -> BlockDeviceSnapshot:
        """Capture the volume as it is now, copy-on-write where the storage can.

        Idempotent by ``snapshot_id`` (the existing snapshot is returned; the
        same id with another source raises :class:`BackendError`). The caller
        freezes a mounted filesystem around the call. The snapshot outlives
        its source. Raises :class:`UnknownVolume` if the source is absent.
        """
        ...

    def list_snapshots(self) -> list[BlockDeviceSnapshot]:
        """Every (whole) snapshot of this cluster."""
        ...

    def destroy_snapshot(self, snapshot_id: str) -> None:
        """Destroy a snapshot; volumes restored from it are never touched.

        Raises :class:`UnknownSnapshot` if it does not exist.
        """
        ...

    def create_volume_from_snapshot(
        self, dataset_id: UUID, snapshot_id: str, size: int
    ) -> BlockDeviceVolume:
        """Like :meth:`create_volume`, with the snapshot's content.

        Idempotent by dataset id, unattached, :class:`InsufficientCapacity`
        when it does not fit. ``size`` must be at least the snapshot's size
        (larger: a bigger volume, whose filesystem the caller grows); smaller
        raises :class:`BackendError`. Raises :class:`UnknownSnapshot`.
        """
        ...

    def clone_volume(
        self, dataset_id: UUID, source_blockdevice_id: str, size: int
    ) -> BlockDeviceVolume:
        """Like :meth:`create_volume_from_snapshot`, from a live volume.

        The caller freezes the source's filesystem if it is mounted. Raises
        :class:`UnknownVolume` if the source is absent.
        """
        ...

    def resize_volume(self, blockdevice_id: str, size: int) -> BlockDeviceVolume:
        """Grow a volume, attached or not, to at least ``size`` bytes.

        A smaller size raises :class:`BackendError` (volumes never shrink);
        the same size changes nothing. An attached volume's device shows the
        new size at once. :class:`InsufficientCapacity` if the growth does
        not fit. The caller grows the filesystem.
        """
        ...


@runtime_checkable
class ReadOnlyManyAPI(Protocol):
    """
    A backend that attaches one volume read-only to several nodes at once (``ReadOnlyMany``).

    Optional: a backend that has these methods declares the capability (its
    :class:`~control.model.Capacity` says ``read_only_many``), and the
    control service refuses readers on a backend without it. The read-only
    attachments are listed in :attr:`BlockDeviceVolume.readers`; while any
    exists, :meth:`BlockDeviceAPI.attach_volume` and
    :meth:`BlockDeviceAPI.destroy_volume` raise :class:`AlreadyAttachedVolume`,
    and :meth:`BlockDeviceAPI.get_device_path` answers a reader's own device.
    """

    def attach_read_only(self, blockdevice_id: str, attach_to: str) -> BlockDeviceVolume:
        """Attach the volume read-only to ``attach_to``, beside its other readers.

        The device refuses every write (``EROFS``/``EPERM``), whatever mounts it.
        Raises :class:`UnknownVolume`, or :class:`AlreadyAttachedVolume` if the
        volume is attached read-write anywhere or already read-only to
        ``attach_to``. Records no epoch: a reader never writes.
        """
        ...

    def detach_read_only(self, blockdevice_id: str) -> None:
        """Detach *this* instance's read-only attachment (other readers keep theirs).

        Raises :class:`UnknownVolume`, :class:`UnattachedVolume` if this
        instance has none, :class:`BackendError` while its device is in use.
        """
        ...


@runtime_checkable
class QuiescedSnapshotsAPI(Protocol):
    """
    A backend whose snapshot calls back for the instant of the copy (optional).

    :meth:`BlockDeviceAPI.create_snapshot` has the caller freeze a mounted
    filesystem around the whole call, its checks and reservations included. A
    backend with this method calls ``quiesce(copy)`` around the copy alone, so
    the caller may start the freeze at the same time as the call (the kernel's
    freeze waits for RCU grace periods, tens of milliseconds) and the backend's
    checks run meanwhile: the copy is still made only once the filesystem is frozen.
    """

    def create_snapshot_quiesced(
        self,
        blockdevice_id: str,
        snapshot_id: str,
        quiesce: Callable[[Callable[[], Any]], Any],
    ) -> BlockDeviceSnapshot:
        """:meth:`BlockDeviceAPI.create_snapshot`, calling ``quiesce(copy)`` (which returns
        ``copy()``'s result, or raises without calling it) to make the copy; an existing
        snapshot of that id is returned without calling it."""
        ...


def quiesced_snapshots(api: object) -> bool:
    """Whether ``api`` calls back for the instant of a snapshot's copy."""
    return isinstance(api, QuiescedSnapshotsAPI)


def read_only_many(api: object) -> bool:
    """Whether ``api`` can attach a volume read-only to several nodes at once."""
    return isinstance(api, ReadOnlyManyAPI)


@runtime_checkable
class SeveralBackendsAPI(Protocol):
    """
    A node's several backends behind one (:class:`agent.backends.multi.MultiBackend`).

    Checked by capability, not by class, so that a wrapper (the agent's timing
    proxy) that passes these methods through is one too.
    """

    def capacities(self) -> list[Capacity]:
        """Every backend's capacity, the default one first."""
        ...

    def create_volume_on(
        self, backend: str | None, dataset_id: UUID, size: int
    ) -> BlockDeviceVolume:
        """Create the dataset's volume on ``backend`` (``None``: the default one)."""
        ...


def require_unattached(volume: BlockDeviceVolume) -> BlockDeviceVolume:
    """``volume``, or :class:`AlreadyAttachedVolume` if it is attached anywhere (read-only too)."""
    if volume.attached_to is not None:
        raise AlreadyAttachedVolume(
            f"Volume {volume.blockdevice_id} is attached to {volume.attached_to}; detach it first."
        )
    if volume.readers:
        raise AlreadyAttachedVolume(
            f"Volume {volume.blockdevice_id} is attached read-only to "
            f"{', '.join(sorted(volume.readers))}; they must detach it first."
        )
    return volume


def require_readable_by(volume: BlockDeviceVolume, attach_to: str) -> None:
    """:class:`AlreadyAttachedVolume` unless ``attach_to`` may attach ``volume`` read-only:
    it is attached read-write nowhere, and not read-only to ``attach_to`` already."""
    if volume.attached_to is not None:
        raise AlreadyAttachedVolume(
            f"Volume {volume.blockdevice_id} is attached read-write to {volume.attached_to}; "
            "it cannot be attached read-only until it is detached."
        )
    if attach_to in volume.readers:
        raise AlreadyAttachedVolume(
            f"Volume {volume.blockdevice_id} is already attached read-only to {attach_to}."
        )
