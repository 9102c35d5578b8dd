"""
The snapshot, clone and resize part of the backend conformance suite.

Mixed into :class:`tests.agent.backends.conformance.BlockDeviceAPIConformance`,
so every backend passes it. Data is written to and read from *unattached*
volumes through :meth:`SnapshotConformance.write_data` and
:meth:`SnapshotConformance.read_data`, which each backend's test overrides.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

import pytest

from agent.backends.interface import (
    BackendError,
    BlockDeviceAPI,
    BlockDeviceVolume,
    InsufficientCapacity,
    QuiescedSnapshotsAPI,
    UnknownSnapshot,
    UnknownVolume,
    quiesced_snapshots,
)

MiB = 2**20
MakeAPI = Callable[[UUID, str], BlockDeviceAPI]
OFFSET = 4096
"""Where the markers are written in a volume."""
QUIESCE_CASES = (
    "test_quiesced_snapshot_copies_inside_quiesce",
    "test_quiesced_snapshot_idempotent_without_quiesce",
    "test_quiesce_failing_makes_no_snapshot",
)


def _sorted(volumes: list[BlockDeviceVolume]) -> list[BlockDeviceVolume]:
    return sorted(volumes, key=lambda v: v.blockdevice_id)


class SnapshotConformance:
    """Tests of the snapshot, clone and resize promises; needs ``api`` and ``other``.

    A backend that calls back for the instant of a snapshot's copy
    (:class:`~agent.backends.interface.QuiescedSnapshotsAPI`) declares it with
    :attr:`QUIESCED_SNAPSHOTS` and passes the ``quiesce`` cases; one that does not
    passes only the declaration case (the others are not collected).
    """

    QUIESCED_SNAPSHOTS = False
    """Whether the backend has ``create_snapshot_quiesced``."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        """Collect the ``quiesce`` cases only for a backend that declares the method."""
        super().__init_subclass__(**kwargs)
        if not cls.QUIESCED_SNAPSHOTS:
            for name in QUIESCE_CASES:
                setattr(cls, name, None)

    def write_data(
        self, api: BlockDeviceAPI, blockdevice_id: str, offset: int, data: bytes
    ) -> None:
        """Write ``data`` at ``offset`` into an unattached volume."""
        raise NotImplementedError

    def read_data(self, api: BlockDeviceAPI, blockdevice_id: str, offset: int, size: int) -> bytes:
        """Read ``size`` bytes at ``offset`` from an unattached volume."""
        raise NotImplementedError

    def _volume(self, api: BlockDeviceAPI, size: int = 4 * MiB) -> BlockDeviceVolume:
        return api.create_volume(uuid4(), size)

    def _marker(self, api: BlockDeviceAPI, volume: BlockDeviceVolume) -> bytes:
        return self.read_data(api, volume.blockdevice_id, OFFSET, 8)

    def test_snapshot_listed_everywhere(self, api: BlockDeviceAPI, other: BlockDeviceAPI) -> None:
        """A snapshot names its source and size, and every node lists it."""
        volume = self._volume(api)
        snapshot_id = str(uuid4())
        snapshot = api.create_snapshot(volume.blockdevice_id, snapshot_id)
        assert (snapshot.snapshot_id, snapshot.blockdevice_id, snapshot.dataset_id) == (
            snapshot_id,
            volume.blockdevice_id,
            volume.dataset_id,
        )
        assert (snapshot.size, snapshot.cluster_id) == (volume.size, volume.cluster_id)
        assert api.list_snapshots() == [snapshot]
        assert other.list_snapshots() == [snapshot]
        assert api.list_volumes() == [volume]

    def test_snapshot_idempotent(self, api: BlockDeviceAPI) -> None:
        """Creating a snapshot again returns it; the same id with another source is refused."""
        one, two = self._volume(api), self._volume(api)
        snapshot_id = str(uuid4())
        first = api.create_snapshot(one.blockdevice_id, snapshot_id)
        assert api.create_snapshot(one.blockdevice_id, snapshot_id) == first
        with pytest.raises(BackendError):
            api.create_snapshot(two.blockdevice_id, snapshot_id)
        assert api.list_snapshots() == [first]

    def test_snapshot_of_unknown_volume(self, api: BlockDeviceAPI) -> None:
        """A snapshot of a volume that does not exist raises UnknownVolume and makes nothing."""
        with pytest.raises(UnknownVolume):
            api.create_snapshot(str(uuid4()), str(uuid4()))
        assert api.list_snapshots() == []

    def test_snapshot_of_attached_volume(self, api: BlockDeviceAPI) -> None:
        """An attached volume can be snapshotted and stays attached."""
        volume = self._volume(api)
        attached = api.attach_volume(volume.blockdevice_id, "node-a")
        api.create_snapshot(volume.blockdevice_id, str(uuid4()))
        assert api.list_volumes() == [attached]

    def test_destroy_snapshot(self, api: BlockDeviceAPI) -> None:
        """A destroyed snapshot is no longer listed; destroying it again raises UnknownSnapshot."""
        volume = self._volume(api)
        keep = api.create_snapshot(volume.blockdevice_id, str(uuid4()))
        gone = api.create_snapshot(volume.blockdevice_id, str(uuid4()))
        api.destroy_snapshot(gone.snapshot_id)
        assert api.list_snapshots() == [keep]
        with pytest.raises(UnknownSnapshot):
            api.destroy_snapshot(gone.snapshot_id)
        assert api.list_volumes() == [volume]

    def test_snapshots_isolated_by_cluster(self, make_api: MakeAPI, api: BlockDeviceAPI) -> None:
        """Another cluster sees none of this cluster's snapshots."""
        stranger = make_api(uuid4(), "node-a")
        volume = self._volume(api)
        snapshot = api.create_snapshot(volume.blockdevice_id, str(uuid4()))
        assert stranger.list_snapshots() == []
        with pytest.raises(UnknownSnapshot):
            stranger.destroy_snapshot(snapshot.snapshot_id)

    def test_restore_is_point_in_time_and_independent(self, api: BlockDeviceAPI) -> None:
        """A restore has the snapshot's data; later writes on either side stay on that side."""
        source = self._volume(api)
        self.write_data(api, source.blockdevice_id, OFFSET, b"before!!")
        snapshot = api.create_snapshot(source.blockdevice_id, str(uuid4()))
        self.write_data(api, source.blockdevice_id, OFFSET, b"after!!!")
        restored = api.create_volume_from_snapshot(uuid4(), snapshot.snapshot_id, source.size)
        assert self._marker(api, restored) == b"before!!"
        self.write_data(api, restored.blockdevice_id, OFFSET, b"restore!")
        assert self._marker(api, source) == b"after!!!"
        again = api.create_volume_from_snapshot(uuid4(), snapshot.snapshot_id, source.size)
        assert self._marker(api, again) == b"before!!"

    def test_declares_quiesced_snapshots(self, api: BlockDeviceAPI) -> None:
        """The backend has ``create_snapshot_quiesced`` exactly when its test declares it."""
        assert quiesced_snapshots(api) == self.QUIESCED_SNAPSHOTS

    def _quiesced(self, api: BlockDeviceAPI) -> QuiescedSnapshotsAPI:
        assert isinstance(api, QuiescedSnapshotsAPI)
        return api

    def test_quiesced_snapshot_copies_inside_quiesce(self, api: BlockDeviceAPI) -> None:
        """``quiesce`` is called once, and the copy is made inside it: a write before the copy
        (in ``quiesce``) is in the snapshot, one after it is not."""
        quiesced = self._quiesced(api)
        source = self._volume(api)
        self.write_data(api, source.blockdevice_id, OFFSET, b"before!!")
        calls = []

        def quiesce(copy: Callable[[], object]) -> object:
            calls.append(1)
            self.write_data(api, source.blockdevice_id, OFFSET, b"frozen!!")
            made = copy()
            self.write_data(api, source.blockdevice_id, OFFSET, b"thawed!!")
            return made

        snapshot = quiesced.create_snapshot_quiesced(
            source.blockdevice_id, str(uuid4()), quiesce
        )
        assert calls == [1]
        assert api.list_snapshots() == [snapshot]
        restored = api.create_volume_from_snapshot(uuid4(), snapshot.snapshot_id, source.size)
        assert self._marker(api, restored) == b"frozen!!"

    def test_quiesced_snapshot_idempotent_without_quiesce(self, api: BlockDeviceAPI) -> None:
        """An existing snapshot is returned without a call to ``quiesce`` (no freeze needed)."""
        quiesced = self._quiesced(api)
        source = self._volume(api)
        first = api.create_snapshot(source.blockdevice_id, str(uuid4()))

        def quiesce(copy: Callable[[], object]) -> object:
            raise AssertionError("quiesce was called for an existing snapshot")

        again = quiesced.create_snapshot_quiesced(
            source.blockdevice_id, first.snapshot_id, quiesce
        )
        assert again == first

    def test_quiesce_failing_makes_no_snapshot(self, api: BlockDeviceAPI) -> None:
        """A ``quiesce`` that cannot freeze (raises without copying) leaves no snapshot, and
        the same id can be made afterwards."""
        quiesced = self._quiesced(api)
        source = self._volume(api)
        snapshot_id = str(uuid4())

        def quiesce(copy: Callable[[], object]) -> object:
            raise BackendError("cannot freeze")

        with pytest.raises(BackendError, match="cannot freeze"):
            quiesced.create_snapshot_quiesced(source.blockdevice_id, snapshot_id, quiesce)
        assert api.list_snapshots() == []
        made = api.create_snapshot(source.blockdevice_id, snapshot_id)
        assert api.list_snapshots() == [made]

    def test_snapshot_outlives_source(self, api: BlockDeviceAPI) -> None:
        """Destroying the source volume keeps its snapshots, which restore as before."""
        source = self._volume(api)
        self.write_data(api, source.blockdevice_id, OFFSET, b"survives")
        snapshot = api.create_snapshot(source.blockdevice_id, str(uuid4()))
        api.destroy_volume(source.blockdevice_id)
        assert api.list_snapshots() == [snapshot]
        restored = api.create_volume_from_snapshot(uuid4(), snapshot.snapshot_id, snapshot.size)
        assert self._marker(api, restored) == b"survives"

    def test_destroy_snapshot_keeps_restored(self, api: BlockDeviceAPI) -> None:
        """Destroying a snapshot never touches a volume restored from it."""
        source = self._volume(api)
        self.write_data(api, source.blockdevice_id, OFFSET, b"restored")
        snapshot = api.create_snapshot(source.blockdevice_id, str(uuid4()))
        restored = api.create_volume_from_snapshot(uuid4(), snapshot.snapshot_id, source.size)
        api.destroy_snapshot(snapshot.snapshot_id)
        assert restored in api.list_volumes()
        assert self._marker(api, restored) == b"restored"

    def test_restore_returns_unattached_volume(self, api: BlockDeviceAPI) -> None:
        """A restored volume belongs to the new dataset, unattached; idempotent by dataset."""
        source = self._volume(api)
        snapshot = api.create_snapshot(source.blockdevice_id, str(uuid4()))
        dataset_id = uuid4()
        restored = api.create_volume_from_snapshot(dataset_id, snapshot.snapshot_id, source.size)
        assert (restored.dataset_id, restored.attached_to, restored.size) == (
            dataset_id,
            None,
            source.size,
        )
        again = api.create_volume_from_snapshot(dataset_id, snapshot.snapshot_id, 2 * source.size)
        assert again == restored
        assert _sorted(api.list_volumes()) == _sorted([source, restored])

    def test_restore_larger(self, api: BlockDeviceAPI) -> None:
        """A restore may ask for a larger volume (rounded up), which keeps the snapshot's data."""
        source = self._volume(api)
        self.write_data(api, source.blockdevice_id, OFFSET, b"grown...")
        snapshot = api.create_snapshot(source.blockdevice_id, str(uuid4()))
        unit = api.allocation_unit()
        restored = api.create_volume_from_snapshot(
            uuid4(), snapshot.snapshot_id, 2 * source.size + 1
        )
        assert restored.size == 2 * source.size + unit
        assert self._marker(api, restored) == b"grown..."

    def test_restore_smaller_refused(self, api: BlockDeviceAPI) -> None:
        """A restore into a volume smaller than the snapshot is refused and makes nothing."""
        source = self._volume(api)
        snapshot = api.create_snapshot(source.blockdevice_id, str(uuid4()))
        with pytest.raises(BackendError) as refused:
            api.create_volume_from_snapshot(uuid4(), snapshot.snapshot_id, source.size // 2)
        assert str(refused.value)
        assert api.list_volumes() == [source]

    def test_restore_unknown_snapshot(self, api: BlockDeviceAPI) -> None:
        """A restore from a snapshot that does not exist raises UnknownSnapshot."""
        with pytest.raises(UnknownSnapshot):
            api.create_volume_from_snapshot(uuid4(), str(uuid4()), 4 * MiB)
        assert api.list_volumes() == []

    def test_clone_is_independent(self, api: BlockDeviceAPI, other: BlockDeviceAPI) -> None:
        """A clone has its source's data; writes on either side never show on the other."""
        source = self._volume(api)
        self.write_data(api, source.blockdevice_id, OFFSET, b"original")
        clone = other.clone_volume(uuid4(), source.blockdevice_id, source.size)
        assert (clone.size, clone.attached_to) == (source.size, None)
        assert self._marker(api, clone) == b"original"
        self.write_data(api, source.blockdevice_id, OFFSET, b"source!!")
        self.write_data(api, clone.blockdevice_id, OFFSET + 8, b"clone!!!")
        assert self._marker(api, clone) == b"original"
        assert self.read_data(api, source.blockdevice_id, OFFSET + 8, 8) != b"clone!!!"

    def test_clone_idempotent_and_larger(self, api: BlockDeviceAPI) -> None:
        """A clone is idempotent by dataset, may be larger, and never smaller than its source."""
        source = self._volume(api)
        dataset_id = uuid4()
        clone = api.clone_volume(dataset_id, source.blockdevice_id, 2 * source.size)
        assert clone.size == 2 * source.size
        assert api.clone_volume(dataset_id, source.blockdevice_id, source.size) == clone
        with pytest.raises(BackendError):
            api.clone_volume(uuid4(), source.blockdevice_id, source.size // 2)
        assert _sorted(api.list_volumes()) == _sorted([source, clone])

    def test_clone_unknown_source(self, api: BlockDeviceAPI) -> None:
        """A clone of a volume that does not exist raises UnknownVolume."""
        with pytest.raises(UnknownVolume):
            api.clone_volume(uuid4(), str(uuid4()), 4 * MiB)
        assert api.list_volumes() == []

    def test_clone_of_attached_volume(self, api: BlockDeviceAPI) -> None:
        """A volume attached to a node can be cloned; the clone is unattached."""
        source = self._volume(api)
        api.attach_volume(source.blockdevice_id, "node-a")
        clone = api.clone_volume(uuid4(), source.blockdevice_id, source.size)
        assert clone.attached_to is None

    def test_resize_grows(self, api: BlockDeviceAPI, other: BlockDeviceAPI) -> None:
        """A resize grows the volume (rounded up), keeps its data, and every node sees the size."""
        volume = self._volume(api)
        self.write_data(api, volume.blockdevice_id, OFFSET, b"kept!!!!")
        unit = api.allocation_unit()
        grown = api.resize_volume(volume.blockdevice_id, 2 * volume.size + 1)
        assert grown.size == 2 * volume.size + unit
        assert other.list_volumes() == [grown]
        assert self._marker(api, grown) == b"kept!!!!"
        assert api.resize_volume(volume.blockdevice_id, grown.size) == grown

    def test_resize_attached(self, api: BlockDeviceAPI) -> None:
        """An attached volume grows in place and stays attached with the same device."""
        volume = self._volume(api)
        api.attach_volume(volume.blockdevice_id, "node-a")
        device = api.get_device_path(volume.blockdevice_id)
        grown = api.resize_volume(volume.blockdevice_id, 2 * volume.size)
        assert (grown.size, grown.attached_to) == (2 * volume.size, "node-a")
        assert api.get_device_path(volume.blockdevice_id) == device

    def test_shrink_refused(self, api: BlockDeviceAPI) -> None:
        """A smaller size is refused with a message, and the volume keeps its size."""
        volume = self._volume(api)
        with pytest.raises(BackendError) as refused:
            api.resize_volume(volume.blockdevice_id, volume.size // 2)
        assert "shrink" in str(refused.value)
        assert api.list_volumes() == [volume]

    def test_resize_unknown(self, api: BlockDeviceAPI) -> None:
        """Resizing a volume that does not exist raises UnknownVolume."""
        with pytest.raises(UnknownVolume):
            api.resize_volume(str(uuid4()), 4 * MiB)

    # -- capacity -----------------------------------------------------------

    def test_snapshot_method_reported(self, api: BlockDeviceAPI) -> None:
        """The capacity says how the backend makes snapshots."""
        assert api.capacity().snapshot_method

    def test_clone_beyond_capacity(self, make_small_api: MakeAPI) -> None:
        """A clone or restore that does not fit is refused and nothing is created."""
        api = make_small_api(uuid4(), "node-a")
        source = api.create_volume(uuid4(), 8 * MiB)
        snapshot = api.create_snapshot(source.blockdevice_id, str(uuid4()))
        with pytest.raises(InsufficientCapacity):
            api.clone_volume(uuid4(), source.blockdevice_id, 200 * MiB)
        with pytest.raises(InsufficientCapacity):
            api.create_volume_from_snapshot(uuid4(), snapshot.snapshot_id, 200 * MiB)
        assert api.list_volumes() == [source]

    def test_resize_beyond_capacity(self, make_small_api: MakeAPI) -> None:
        """A growth that does not fit is refused and the volume keeps its size."""
        api = make_small_api(uuid4(), "node-a")
        volume = api.create_volume(uuid4(), 8 * MiB)
        with pytest.raises(InsufficientCapacity):
            api.resize_volume(volume.blockdevice_id, 200 * MiB)
        assert api.list_volumes() == [volume]

    def test_restored_volumes_use_capacity(self, make_small_api: MakeAPI) -> None:
        """Volumes made from snapshots count towards capacity like any volume: they stop fitting."""
        api = make_small_api(uuid4(), "node-a")
        source = api.create_volume(uuid4(), 30 * MiB)
        self.write_data(api, source.blockdevice_id, 0, b"x" * MiB)
        snapshot = api.create_snapshot(source.blockdevice_id, str(uuid4()))
        with pytest.raises(InsufficientCapacity):
            for _ in range(5):
                api.create_volume_from_snapshot(uuid4(), snapshot.snapshot_id, 30 * MiB)
