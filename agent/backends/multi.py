"""
Several backends behind one :class:`~agent.backends.interface.BlockDeviceAPI`: a node
offering, say, a shared pool and a pool on its own disk (``--backend loopback
--backend local=/var/lib/shoal/local``).

:class:`MultiBackend` routes every call to one member by the blockdevice id: the
first (default) member's ids are its own, unchanged, so an agent that gains a
second backend keeps the ids it reported; every other member's ids carry its
name, ``local:<id>``. A new volume goes to the backend its dataset names
(:meth:`MultiBackend.create_volume_on`, from :attr:`control.model.Dataset.backend`),
else to the default one; restores go where the snapshot is, clones where the
source is, snapshots where the volume is. :meth:`MultiBackend.capacities` reports
each member's capacity, the default one first, so the control service places
by backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from attrs import evolve

from agent.backends.interface import (
    BackendError,
    BlockDeviceAPI,
    BlockDeviceSnapshot,
    BlockDeviceVolume,
    FencedAttachment,
    QuiescedSnapshotsAPI,
    ReadOnlyManyAPI,
    UnknownSnapshot,
)
from control.model import Capacity

T = TypeVar("T")
SEPARATOR = ":"


class MultiBackend:
    """The backends ``members`` (name, backend) of one node; the first is the default."""

    def __init__(self, members: Sequence[tuple[str, BlockDeviceAPI]]) -> None:
        if not members:
            raise BackendError("A node needs at least one backend.")
        names = [name for name, _ in members]
        if len(set(names)) != len(names):
            raise BackendError(f"Each backend may be named once, not {', '.join(names)}.")
        self.members = tuple(members)
        self.default = names[0]
        self._by_name = dict(members)

    # -- routing ----------------------------------------------------------------

    def names(self) -> list[str]:
        """The backends' names, the default one first."""
        return [name for name, _ in self.members]

    def member(self, name: str | None) -> BlockDeviceAPI:
        """The backend named ``name`` (``None``: the default); :class:`BackendError` if none."""
        found = self._by_name.get(name or self.default)
        if found is None:
            raise BackendError(
                f"This node has no backend {name!r}; it has {', '.join(self.names())}. "
                "Place the dataset on a node that reports it."
            )
        return found

    def _outer(self, name: str, blockdevice_id: str) -> str:
        return blockdevice_id if name == self.default else f"{name}{SEPARATOR}{blockdevice_id}"

    def split(self, blockdevice_id: str) -> tuple[str, str]:
        """``(backend name, the member's own id)`` of a blockdevice id of this node."""
        name, sep, inner = blockdevice_id.partition(SEPARATOR)
        if sep and name in self._by_name and name != self.default:
            return name, inner
        return self.default, blockdevice_id

    def _route(self, blockdevice_id: str) -> tuple[str, BlockDeviceAPI, str]:
        name, inner = self.split(blockdevice_id)
        return name, self._by_name[name], inner

    def _volume(self, name: str, volume: BlockDeviceVolume) -> BlockDeviceVolume:
        return evolve(volume, blockdevice_id=self._outer(name, volume.blockdevice_id))

    def _snapshot(self, name: str, snapshot: BlockDeviceSnapshot) -> BlockDeviceSnapshot:
        return evolve(snapshot, blockdevice_id=self._outer(name, snapshot.blockdevice_id))

    def _on(self, blockdevice_id: str, call: Callable[[BlockDeviceAPI, str], T]) -> T:
        _, api, inner = self._route(blockdevice_id)
        return call(api, inner)

    def _made(
        self, blockdevice_id: str, call: Callable[[BlockDeviceAPI, str], BlockDeviceVolume]
    ) -> BlockDeviceVolume:
        name, api, inner = self._route(blockdevice_id)
        return self._volume(name, call(api, inner))

    # -- the interface ------------------------------------------------------------

    def allocation_unit(self) -> int:
        """The default backend's allocation unit."""
        return self.member(None).allocation_unit()

    def compute_instance_id(self) -> str:
        """This node's instance id (every member's)."""
        return self.member(None).compute_instance_id()

    def capacity(self) -> Capacity:
        """The default backend's capacity."""
        return self.member(None).capacity()

    def capacities(self) -> list[Capacity]:
        """Every backend's capacity, the default one first."""
        return [api.capacity() for _, api in self.members]

    def create_volume(self, dataset_id: UUID, size: int) -> BlockDeviceVolume:
        """Create on the default backend."""
        return self.create_volume_on(None, dataset_id, size)

    def create_volume_on(
        self, backend: str | None, dataset_id: UUID, size: int
    ) -> BlockDeviceVolume:
        """Create the dataset's volume on ``backend`` (``None``: the default one)."""
        name = backend or self.default
        return self._volume(name, self.member(name).create_volume(dataset_id, size))

    def destroy_volume(self, blockdevice_id: str) -> None:
        """Destroy on the volume's backend."""
        self._on(blockdevice_id, lambda api, inner: api.destroy_volume(inner))

    def attach_volume(
        self, blockdevice_id: str, attach_to: str, epoch: int = 0
    ) -> BlockDeviceVolume:
        """Attach on the volume's backend."""
        return self._made(
            blockdevice_id, lambda api, inner: api.attach_volume(inner, attach_to, epoch)
        )

    def attach_read_only(self, blockdevice_id: str, attach_to: str) -> BlockDeviceVolume:
        """Attach read-only on the volume's backend, if it can."""
        name, api, inner = self._route(blockdevice_id)
        return self._volume(name, _read_only(name, api).attach_read_only(inner, attach_to))

    def detach_read_only(self, blockdevice_id: str) -> None:
        """Detach this node's read-only attachment on the volume's backend."""
        name, api, inner = self._route(blockdevice_id)
        _read_only(name, api).detach_read_only(inner)

    def fence(self, blockdevice_id: str, node: str) -> None:
        """Fence on the volume's backend."""
        self._on(blockdevice_id, lambda api, inner: api.fence(inner, node))

    def fenced_leftovers(self) -> list[FencedAttachment]:
        """Every backend's leftovers, with this node's blockdevice ids."""
        return [
            evolve(leftover, blockdevice_id=self._outer(name, leftover.blockdevice_id))
            for name, api in self.members
            for leftover in api.fenced_leftovers()
        ]

    def clean_up_fenced(self, leftover: FencedAttachment) -> None:
        """Clean up on the leftover's backend."""
        _, api, inner = self._route(leftover.blockdevice_id)
        api.clean_up_fenced(evolve(leftover, blockdevice_id=inner))

    def detach_volume(self, blockdevice_id: str) -> None:
        """Detach on the volume's backend."""
        self._on(blockdevice_id, lambda api, inner: api.detach_volume(inner))

    def list_volumes(self) -> list[BlockDeviceVolume]:
        """Every backend's volumes, with this node's blockdevice ids."""
        return [
            self._volume(name, volume)
            for name, api in self.members
            for volume in api.list_volumes()
        ]

    def get_device_path(self, blockdevice_id: str) -> str:
        """The device on the volume's backend."""
        return self._on(blockdevice_id, lambda api, inner: api.get_device_path(inner))

    def create_snapshot(self, blockdevice_id: str, snapshot_id: str) -> BlockDeviceSnapshot:
        """Snapshot on the volume's backend."""
        name, api, inner = self._route(blockdevice_id)
        return self._snapshot(name, api.create_snapshot(inner, snapshot_id))

    def create_snapshot_quiesced(
        self,
        blockdevice_id: str,
        snapshot_id: str,
        quiesce: Callable[[Callable[[], Any]], Any],
    ) -> BlockDeviceSnapshot:
        """Snapshot on the volume's backend, ``quiesce`` around its copy if it calls back for
        it, else around its whole call."""
        name, api, inner = self._route(blockdevice_id)
        if isinstance(api, QuiescedSnapshotsAPI):
            made = api.create_snapshot_quiesced(inner, snapshot_id, quiesce)
        else:
            made = quiesce(lambda: api.create_snapshot(inner, snapshot_id))
        return self._snapshot(name, made)

    def list_snapshots(self) -> list[BlockDeviceSnapshot]:
        """Every backend's snapshots (snapshot ids are the control service's, unchanged)."""
        return [
            self._snapshot(name, snapshot)
            for name, api in self.members
            for snapshot in api.list_snapshots()
        ]

    def _holding(self, snapshot_id: str) -> tuple[str, BlockDeviceAPI]:
        for name, api in self.members:
            if any(s.snapshot_id == snapshot_id for s in api.list_snapshots()):
                return name, api
        raise UnknownSnapshot(f"No backend of this node has snapshot {snapshot_id}.")

    def destroy_snapshot(self, snapshot_id: str) -> None:
        """Destroy the snapshot on the backend that has it."""
        self._holding(snapshot_id)[1].destroy_snapshot(snapshot_id)

    def create_volume_from_snapshot(
        self, dataset_id: UUID, snapshot_id: str, size: int
    ) -> BlockDeviceVolume:
        """Restore on the backend that has the snapshot."""
        name, api = self._holding(snapshot_id)
        return self._volume(name, api.create_volume_from_snapshot(dataset_id, snapshot_id, size))

    def clone_volume(
        self, dataset_id: UUID, source_blockdevice_id: str, size: int
    ) -> BlockDeviceVolume:
        """Clone on the source's backend."""
        return self._made(
            source_blockdevice_id, lambda api, inner: api.clone_volume(dataset_id, inner, size)
        )

    def resize_volume(self, blockdevice_id: str, size: int) -> BlockDeviceVolume:
        """Resize on the volume's backend."""
        return self._made(blockdevice_id, lambda api, inner: api.resize_volume(inner, size))


def _read_only(name: str, api: BlockDeviceAPI) -> ReadOnlyManyAPI:
    if not isinstance(api, ReadOnlyManyAPI):
        raise BackendError(
            f"This node's {name} backend cannot attach a volume read-only to several nodes "
            "(ReadOnlyMany)."
        )
    return api
