"""
The block-device backend seam (compare Flocker's ``IBlockDeviceAPI``).

A backend stores *volumes*: block devices that exist independently of any
node and can be attached to one node at a time. Every backend passes the
conformance suite in ``tests/agent/backends/conformance.py``.

Calls are blocking; the agent's executor runs them in a thread, never on the
reactor thread.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable
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
    """

    blockdevice_id: str
    size: int
    cluster_id: UUID
    dataset_id: UUID
    attached_to: str | None = None


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

    def attach_volume(self, blockdevice_id: str, attach_to: str) -> BlockDeviceVolume:
        """Attach a volume to the instance ``attach_to``; returns the updated volume.

        Raises :class:`UnknownVolume`, or :class:`AlreadyAttachedVolume` if it
        is attached anywhere (including ``attach_to``).
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
