"""
An eventually consistent view of a backend, as cloud APIs give.

:class:`EventuallyConsistentBlockDeviceAPI` forwards every call to the backend
it wraps, but after each change (create, destroy, attach, detach) its
``list_volumes`` keeps answering the view from before the change for ``lag``
more calls. The convergence loop must still converge against it. Volumes made
from a snapshot or a clone, resizes and fences lag the same way; snapshot
listings and fenced leftovers are forwarded as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from uuid import UUID

from attrs import define, field

from agent.backends.interface import (
    BlockDeviceAPI,
    BlockDeviceSnapshot,
    BlockDeviceVolume,
    FencedAttachment,
    ReadOnlyManyAPI,
)
from control.model import Capacity

T = TypeVar("T")


@define
class EventuallyConsistentBlockDeviceAPI:
    """
    Wrap ``wrapped`` so that ``list_volumes`` lags ``lag`` calls behind each change.

    The stale view is the listing from just before the oldest change not yet
    visible; every further change restarts the countdown (as a busy cloud API
    would). Calls that fail or change nothing (creating an existing volume)
    leave the view alone. Only changes made through this wrapper start a
    countdown.
    """

    wrapped: BlockDeviceAPI
    lag: int
    _stale: list[BlockDeviceVolume] = field(factory=list, init=False)
    _remaining: int = field(default=0, init=False)

    def _change(self, action: Callable[[], T]) -> T:
        """Run ``action``; if it changed the listing, hide the change for ``lag`` listings."""
        if self.lag <= 0:
            return action()
        before = self.wrapped.list_volumes()
        result = action()
        if self.wrapped.list_volumes() != before:
            if self._remaining == 0:
                self._stale = before
            self._remaining = self.lag
        return result

    def allocation_unit(self) -> int:
        """The wrapped backend's allocation unit."""
        return self.wrapped.allocation_unit()

    def compute_instance_id(self) -> str:
        """The wrapped backend's instance id."""
        return self.wrapped.compute_instance_id()

    def capacity(self) -> Capacity:
        """The wrapped backend's capacity."""
        return self.wrapped.capacity()

    def create_volume(self, dataset_id: UUID, size: int) -> BlockDeviceVolume:
        """Create through the wrapped backend; listings lag behind."""
        return self._change(lambda: self.wrapped.create_volume(dataset_id, size))

    def destroy_volume(self, blockdevice_id: str) -> None:
        """Destroy through the wrapped backend; listings lag behind."""
        self._change(lambda: self.wrapped.destroy_volume(blockdevice_id))

    def attach_volume(
        self, blockdevice_id: str, attach_to: str, epoch: int = 0
    ) -> BlockDeviceVolume:
        """Attach through the wrapped backend; listings lag behind."""
        return self._change(lambda: self.wrapped.attach_volume(blockdevice_id, attach_to, epoch))

    def attach_read_only(self, blockdevice_id: str, attach_to: str) -> BlockDeviceVolume:
        """Attach read-only through the wrapped backend (it must be able to); listings lag."""
        wrapped = self.wrapped
        assert isinstance(wrapped, ReadOnlyManyAPI)
        return self._change(lambda: wrapped.attach_read_only(blockdevice_id, attach_to))

    def detach_read_only(self, blockdevice_id: str) -> None:
        """Detach this instance's read-only attachment through the wrapped backend."""
        wrapped = self.wrapped
        assert isinstance(wrapped, ReadOnlyManyAPI)
        self._change(lambda: wrapped.detach_read_only(blockdevice_id))

    def fence(self, blockdevice_id: str, node: str) -> None:
        """Fence through the wrapped backend; listings lag behind."""
        self._change(lambda: self.wrapped.fence(blockdevice_id, node))

    def fenced_leftovers(self) -> list[FencedAttachment]:
        """The wrapped backend's leftovers (local, so never stale)."""
        return self.wrapped.fenced_leftovers()

    def clean_up_fenced(self, leftover: FencedAttachment) -> None:
        """Clean up through the wrapped backend."""
        self.wrapped.clean_up_fenced(leftover)

    def detach_volume(self, blockdevice_id: str) -> None:
        """Detach through the wrapped backend; listings lag behind."""
        self._change(lambda: self.wrapped.detach_volume(blockdevice_id))

    def list_volumes(self) -> list[BlockDeviceVolume]:
        """The stale view for ``lag`` calls after a change, then the wrapped backend's."""
        if self._remaining > 0:
            self._remaining -= 1
            return list(self._stale)
        return self.wrapped.list_volumes()

    def get_device_path(self, blockdevice_id: str) -> str:
        """The wrapped backend's device path (devices are local, so never stale)."""
        return self.wrapped.get_device_path(blockdevice_id)

    def create_snapshot(self, blockdevice_id: str, snapshot_id: str) -> BlockDeviceSnapshot:
        """Snapshot through the wrapped backend."""
        return self.wrapped.create_snapshot(blockdevice_id, snapshot_id)

    def list_snapshots(self) -> list[BlockDeviceSnapshot]:
        """The wrapped backend's snapshots."""
        return self.wrapped.list_snapshots()

    def destroy_snapshot(self, snapshot_id: str) -> None:
        """Destroy a snapshot through the wrapped backend."""
        self.wrapped.destroy_snapshot(snapshot_id)

    def create_volume_from_snapshot(
        self, dataset_id: UUID, snapshot_id: str, size: int
    ) -> BlockDeviceVolume:
        """Restore through the wrapped backend; listings lag behind."""
        return self._change(
            lambda: self.wrapped.create_volume_from_snapshot(dataset_id, snapshot_id, size)
        )

    def clone_volume(
        self, dataset_id: UUID, source_blockdevice_id: str, size: int
    ) -> BlockDeviceVolume:
        """Clone through the wrapped backend; listings lag behind."""
        return self._change(
            lambda: self.wrapped.clone_volume(dataset_id, source_blockdevice_id, size)
        )

    def resize_volume(self, blockdevice_id: str, size: int) -> BlockDeviceVolume:
        """Resize through the wrapped backend; listings lag behind."""
        return self._change(lambda: self.wrapped.resize_volume(blockdevice_id, size))
