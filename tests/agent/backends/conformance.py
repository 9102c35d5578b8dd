"""
The conformance suite every :class:`~agent.backends.interface.BlockDeviceAPI` passes.

Subclass :class:`BlockDeviceAPIConformance` in a ``Test...`` class that
provides a ``make_api`` fixture: a callable ``make_api(cluster_id,
instance_id)`` returning a backend, where all backends made in one test share
the same storage. Override :meth:`~BlockDeviceAPIConformance.vanish_device` to
make an attached volume's device disappear behind the backend's back. The
fence cases (issue 11) need the data hooks ``write_data``/``read_data`` of the
snapshot cases; that writes stop on a fenced node is each backend's own
functional test. The capacity tests also need a ``make_small_api`` fixture: like ``make_api``, over
a storage of :data:`SMALL_STORAGE` bytes. The snapshot, clone and resize
cases live in :mod:`tests.agent.backends.snapshot_conformance` (mixed in here),
whose data hooks each backend's test overrides; the read-only attachments
(``ReadOnlyMany``) in :mod:`tests.agent.backends.read_only_conformance`, with the
capability flag ``READ_ONLY_MANY`` and the hook ``device_refuses_writes``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID, uuid4

import pytest

from agent.backends.interface import (
    AlreadyAttachedVolume,
    BlockDeviceAPI,
    BlockDeviceVolume,
    InsufficientCapacity,
    StaleEpoch,
    UnattachedVolume,
    UnknownVolume,
)
from tests.agent.backends.read_only_conformance import ReadOnlyConformance
from tests.agent.backends.snapshot_conformance import SnapshotConformance

MakeAPI = Callable[[UUID, str], BlockDeviceAPI]
MiB = 2**20
SMALL_STORAGE = 100 * MiB
"""The size of the storage behind ``make_small_api`` (a 100 MiB pool)."""
HUGE = 9223372036854774784
"""A size the API once accepted and no backend can create (2**63 - 1024)."""


class BlockDeviceAPIConformance(SnapshotConformance, ReadOnlyConformance):
    """Tests of the ``BlockDeviceAPI`` contract; needs a ``make_api`` fixture."""

    def vanish_device(self, api: BlockDeviceAPI, blockdevice_id: str) -> None:
        """Make the device of an attached volume disappear, keeping the attachment record."""
        raise NotImplementedError

    @pytest.fixture
    def cluster_id(self) -> UUID:
        """The cluster of ``api`` and ``other``."""
        return uuid4()

    @pytest.fixture
    def api(self, make_api: MakeAPI, cluster_id: UUID) -> BlockDeviceAPI:
        """A backend on node ``node-a``."""
        return make_api(cluster_id, "node-a")

    @pytest.fixture
    def other(self, make_api: MakeAPI, cluster_id: UUID) -> BlockDeviceAPI:
        """A backend on node ``node-b`` sharing storage and cluster with ``api``."""
        return make_api(cluster_id, "node-b")

    def _created(self, api: BlockDeviceAPI) -> BlockDeviceVolume:
        return api.create_volume(uuid4(), api.allocation_unit())

    def test_provides_interface(self, api: BlockDeviceAPI) -> None:
        """The backend satisfies the protocol and reports its own instance id."""
        assert isinstance(api, BlockDeviceAPI)
        assert api.compute_instance_id() == "node-a"

    def test_starts_empty(self, api: BlockDeviceAPI) -> None:
        """A new cluster has no volumes."""
        assert api.list_volumes() == []

    def test_create_returns_unattached_volume(self, api: BlockDeviceAPI, cluster_id: UUID) -> None:
        """A created volume belongs to the cluster and dataset, unattached, and is listed."""
        dataset_id = uuid4()
        volume = api.create_volume(dataset_id, api.allocation_unit())
        assert (volume.cluster_id, volume.dataset_id, volume.attached_to) == (
            cluster_id,
            dataset_id,
            None,
        )
        assert volume.size == api.allocation_unit()
        assert api.list_volumes() == [volume]

    def test_size_rounded_up(self, api: BlockDeviceAPI) -> None:
        """A size that is not a multiple of the allocation unit is rounded up."""
        unit = api.allocation_unit()
        volume = api.create_volume(uuid4(), 2 * unit + 1)
        assert volume.size == 3 * unit

    def test_create_idempotent_by_dataset(self, api: BlockDeviceAPI) -> None:
        """Creating again for the same dataset returns the first volume, whatever the size."""
        dataset_id = uuid4()
        first = api.create_volume(dataset_id, api.allocation_unit())
        again = api.create_volume(dataset_id, 5 * api.allocation_unit())
        assert again == first
        assert api.list_volumes() == [first]

    def test_create_from_two_nodes(self, api: BlockDeviceAPI, other: BlockDeviceAPI) -> None:
        """Two nodes creating a volume for one dataset end with one volume."""
        dataset_id = uuid4()
        first = api.create_volume(dataset_id, api.allocation_unit())
        assert other.create_volume(dataset_id, api.allocation_unit()) == first
        assert other.list_volumes() == [first]

    def test_create_race(self, make_api: MakeAPI, cluster_id: UUID) -> None:
        """Nodes racing to create one dataset's volume all get the same single volume."""
        apis = [make_api(cluster_id, f"node-{i}") for i in range(8)]
        dataset_id = uuid4()
        with ThreadPoolExecutor(len(apis)) as pool:
            results = list(pool.map(lambda a: a.create_volume(dataset_id, 3 * 2**20), apis))
        assert len(set(results)) == 1
        assert apis[0].list_volumes() == [results[0]]

    def test_distinct_datasets_distinct_volumes(self, api: BlockDeviceAPI) -> None:
        """Each dataset gets its own volume."""
        one, two = self._created(api), self._created(api)
        assert one.blockdevice_id != two.blockdevice_id
        assert sorted(api.list_volumes(), key=lambda v: v.blockdevice_id) == sorted(
            [one, two], key=lambda v: v.blockdevice_id
        )

    def test_attach(self, api: BlockDeviceAPI, other: BlockDeviceAPI) -> None:
        """An attached volume is reported attached to that instance, on every node."""
        volume = self._created(api)
        attached = api.attach_volume(volume.blockdevice_id, "node-a")
        assert attached.attached_to == "node-a"
        assert attached.blockdevice_id == volume.blockdevice_id
        assert api.list_volumes() == [attached]
        assert other.list_volumes() == [attached]

    def test_attach_unknown(self, api: BlockDeviceAPI) -> None:
        """Attaching a volume that does not exist raises UnknownVolume."""
        with pytest.raises(UnknownVolume):
            api.attach_volume(str(uuid4()), "node-a")

    def test_attach_twice_here(self, api: BlockDeviceAPI) -> None:
        """Attaching a volume already attached here is refused."""
        volume = self._created(api)
        api.attach_volume(volume.blockdevice_id, "node-a")
        with pytest.raises(AlreadyAttachedVolume):
            api.attach_volume(volume.blockdevice_id, "node-a")

    def test_attach_attached_elsewhere(self, api: BlockDeviceAPI, other: BlockDeviceAPI) -> None:
        """A volume attached to another node cannot be attached here."""
        volume = self._created(api)
        api.attach_volume(volume.blockdevice_id, "node-a")
        with pytest.raises(AlreadyAttachedVolume):
            other.attach_volume(volume.blockdevice_id, "node-b")
        assert other.list_volumes()[0].attached_to == "node-a"

    def test_attach_race(self, make_api: MakeAPI, cluster_id: UUID) -> None:
        """Of several nodes racing to attach one volume, exactly one wins."""
        apis = [make_api(cluster_id, f"node-{i}") for i in range(6)]
        volume = self._created(apis[0])

        def attach(api: BlockDeviceAPI) -> str | None:
            try:
                return api.attach_volume(
                    volume.blockdevice_id, api.compute_instance_id()
                ).attached_to
            except AlreadyAttachedVolume:
                return None

        with ThreadPoolExecutor(len(apis)) as pool:
            winners = [w for w in pool.map(attach, apis) if w is not None]
        assert len(winners) == 1
        assert apis[0].list_volumes()[0].attached_to == winners[0]

    def test_detach(self, api: BlockDeviceAPI) -> None:
        """A detached volume is unattached again."""
        volume = self._created(api)
        api.attach_volume(volume.blockdevice_id, "node-a")
        api.detach_volume(volume.blockdevice_id)
        assert api.list_volumes() == [volume]

    def test_detach_unattached(self, api: BlockDeviceAPI) -> None:
        """Detaching an unattached volume raises UnattachedVolume."""
        volume = self._created(api)
        with pytest.raises(UnattachedVolume):
            api.detach_volume(volume.blockdevice_id)

    def test_detach_unknown(self, api: BlockDeviceAPI) -> None:
        """Detaching a volume that does not exist raises UnknownVolume."""
        with pytest.raises(UnknownVolume):
            api.detach_volume(str(uuid4()))

    def test_move(self, api: BlockDeviceAPI, other: BlockDeviceAPI) -> None:
        """A volume detached from one node can be attached to another and used there."""
        volume = self._created(api)
        api.attach_volume(volume.blockdevice_id, "node-a")
        api.detach_volume(volume.blockdevice_id)
        moved = other.attach_volume(volume.blockdevice_id, "node-b")
        assert moved.attached_to == "node-b"
        assert other.get_device_path(volume.blockdevice_id)
        with pytest.raises(UnattachedVolume):
            api.get_device_path(volume.blockdevice_id)

    def test_destroy(self, api: BlockDeviceAPI) -> None:
        """A destroyed volume is no longer listed."""
        keep, gone = self._created(api), self._created(api)
        api.destroy_volume(gone.blockdevice_id)
        assert api.list_volumes() == [keep]

    def test_destroy_unknown(self, api: BlockDeviceAPI) -> None:
        """Destroying a volume that does not exist raises UnknownVolume."""
        volume = self._created(api)
        api.destroy_volume(volume.blockdevice_id)
        with pytest.raises(UnknownVolume):
            api.destroy_volume(volume.blockdevice_id)

    def test_destroy_attached(self, api: BlockDeviceAPI) -> None:
        """An attached volume cannot be destroyed."""
        volume = self._created(api)
        attached = api.attach_volume(volume.blockdevice_id, "node-a")
        with pytest.raises(AlreadyAttachedVolume):
            api.destroy_volume(volume.blockdevice_id)
        assert api.list_volumes() == [attached]

    def test_device_path(self, api: BlockDeviceAPI) -> None:
        """Volumes attached here have distinct, stable device paths."""
        one, two = self._created(api), self._created(api)
        api.attach_volume(one.blockdevice_id, "node-a")
        api.attach_volume(two.blockdevice_id, "node-a")
        path = api.get_device_path(one.blockdevice_id)
        assert path.startswith("/dev/")
        assert path != api.get_device_path(two.blockdevice_id)
        assert api.get_device_path(one.blockdevice_id) == path

    def test_device_path_unattached(self, api: BlockDeviceAPI) -> None:
        """An unattached volume has no device path."""
        volume = self._created(api)
        with pytest.raises(UnattachedVolume):
            api.get_device_path(volume.blockdevice_id)

    def test_device_path_unknown(self, api: BlockDeviceAPI) -> None:
        """A volume that does not exist has no device path."""
        with pytest.raises(UnknownVolume):
            api.get_device_path(str(uuid4()))

    def test_device_path_only_here(self, api: BlockDeviceAPI, other: BlockDeviceAPI) -> None:
        """A volume attached to another node has no device path here."""
        volume = self._created(api)
        api.attach_volume(volume.blockdevice_id, "node-a")
        with pytest.raises(UnattachedVolume):
            other.get_device_path(volume.blockdevice_id)

    def test_clusters_isolated(self, make_api: MakeAPI, api: BlockDeviceAPI) -> None:
        """Two clusters sharing storage see only their own volumes, even for one dataset id."""
        stranger = make_api(uuid4(), "node-a")
        dataset_id = uuid4()
        mine = api.create_volume(dataset_id, api.allocation_unit())
        theirs = stranger.create_volume(dataset_id, api.allocation_unit())
        assert theirs.cluster_id != mine.cluster_id
        assert api.list_volumes() == [mine]
        assert stranger.list_volumes() == [theirs]
        stranger.destroy_volume(theirs.blockdevice_id)
        assert api.list_volumes() == [mine]

    def test_other_cluster_volume_unknown(self, make_api: MakeAPI, api: BlockDeviceAPI) -> None:
        """Another cluster's volume is unknown here."""
        stranger = make_api(uuid4(), "node-a")
        volume = self._created(api)
        with pytest.raises(UnknownVolume):
            stranger.attach_volume(volume.blockdevice_id, "node-a")

    def test_vanished_device_still_attached(self, api: BlockDeviceAPI) -> None:
        """A volume whose device vanished is still listed as attached."""
        volume = self._created(api)
        attached = api.attach_volume(volume.blockdevice_id, "node-a")
        self.vanish_device(api, volume.blockdevice_id)
        assert api.list_volumes() == [attached]

    def test_vanished_device_restored(self, api: BlockDeviceAPI) -> None:
        """``get_device_path`` restores a vanished device."""
        volume = self._created(api)
        api.attach_volume(volume.blockdevice_id, "node-a")
        self.vanish_device(api, volume.blockdevice_id)
        path = api.get_device_path(volume.blockdevice_id)
        assert api.get_device_path(volume.blockdevice_id) == path

    def test_vanished_device_detach(self, api: BlockDeviceAPI, other: BlockDeviceAPI) -> None:
        """Detaching a volume whose device vanished clears the attachment."""
        volume = self._created(api)
        api.attach_volume(volume.blockdevice_id, "node-a")
        self.vanish_device(api, volume.blockdevice_id)
        api.detach_volume(volume.blockdevice_id)
        assert api.list_volumes() == [volume]
        assert other.attach_volume(volume.blockdevice_id, "node-b").attached_to == "node-b"

    # -- epochs and fencing (issue 11) ---------------------------------------

    def test_new_volume_epoch_zero(self, api: BlockDeviceAPI) -> None:
        """A new volume has epoch 0, and an attach without an epoch keeps it."""
        volume = self._created(api)
        assert volume.epoch == 0
        assert api.attach_volume(volume.blockdevice_id, "node-a").epoch == 0

    def test_epoch_recorded(self, api: BlockDeviceAPI, other: BlockDeviceAPI) -> None:
        """An attach records its epoch, listed on every node and kept across a detach."""
        volume = self._created(api)
        attached = api.attach_volume(volume.blockdevice_id, "node-a", epoch=3)
        assert (attached.epoch, attached.attached_to) == (3, "node-a")
        assert other.list_volumes() == [attached]
        api.detach_volume(volume.blockdevice_id)
        assert other.list_volumes()[0].epoch == 3
        assert other.attach_volume(volume.blockdevice_id, "node-b", epoch=3).epoch == 3
        other.detach_volume(volume.blockdevice_id)
        assert other.attach_volume(volume.blockdevice_id, "node-b", epoch=7).epoch == 7

    def test_stale_epoch_refused(self, api: BlockDeviceAPI, other: BlockDeviceAPI) -> None:
        """An attach with an older epoch raises StaleEpoch and changes nothing."""
        volume = self._created(api)
        api.attach_volume(volume.blockdevice_id, "node-a", epoch=5)
        api.detach_volume(volume.blockdevice_id)
        before = api.list_volumes()
        with pytest.raises(StaleEpoch):
            other.attach_volume(volume.blockdevice_id, "node-b", epoch=4)
        assert api.list_volumes() == before
        assert before[0].epoch == 5 and before[0].attached_to is None

    def test_stale_epoch_refused_while_attached(
        self, api: BlockDeviceAPI, other: BlockDeviceAPI
    ) -> None:
        """A stale attach of a volume attached elsewhere says it is stale (not merely busy)."""
        volume = self._created(api)
        attached = other.attach_volume(volume.blockdevice_id, "node-b", epoch=2)
        with pytest.raises(StaleEpoch):
            api.attach_volume(volume.blockdevice_id, "node-a", epoch=1)
        assert api.list_volumes() == [attached]

    def test_fence_detaches(self, api: BlockDeviceAPI, other: BlockDeviceAPI) -> None:
        """A fenced volume is unattached, attachable by another node, gone for the fenced one."""
        volume = self._created(api)
        api.attach_volume(volume.blockdevice_id, "node-a", epoch=1)
        api.get_device_path(volume.blockdevice_id)
        other.fence(volume.blockdevice_id, "node-a")
        listed = other.list_volumes()[0]
        assert (listed.attached_to, listed.epoch) == (None, 1)
        moved = other.attach_volume(volume.blockdevice_id, "node-b", epoch=2)
        assert (moved.attached_to, moved.epoch) == ("node-b", 2)
        assert other.get_device_path(volume.blockdevice_id).startswith("/dev/")
        with pytest.raises(UnattachedVolume):
            api.get_device_path(volume.blockdevice_id)

    def test_fence_idempotent(self, api: BlockDeviceAPI, other: BlockDeviceAPI) -> None:
        """Fencing twice is the same as once, also after the volume moved on."""
        volume = self._created(api)
        api.attach_volume(volume.blockdevice_id, "node-a")
        other.fence(volume.blockdevice_id, "node-a")
        other.fence(volume.blockdevice_id, "node-a")
        assert other.list_volumes()[0].attached_to is None
        attached = other.attach_volume(volume.blockdevice_id, "node-b", epoch=1)
        other.fence(volume.blockdevice_id, "node-a")
        assert other.list_volumes() == [attached]
        assert len(api.fenced_leftovers()) == 1

    def test_fence_elsewhere_noop(self, api: BlockDeviceAPI, other: BlockDeviceAPI) -> None:
        """Fencing a node from a volume attached to another node, or to none, changes nothing."""
        attached = other.attach_volume(self._created(api).blockdevice_id, "node-b")
        unattached = self._created(api)
        api.fence(attached.blockdevice_id, "node-a")
        api.fence(unattached.blockdevice_id, "node-a")
        assert sorted(api.list_volumes(), key=lambda v: v.blockdevice_id) == sorted(
            [attached, unattached], key=lambda v: v.blockdevice_id
        )
        assert other.get_device_path(attached.blockdevice_id).startswith("/dev/")
        assert api.fenced_leftovers() == [] and other.fenced_leftovers() == []

    def test_fence_unknown(self, api: BlockDeviceAPI) -> None:
        """Fencing a volume that does not exist raises UnknownVolume."""
        with pytest.raises(UnknownVolume):
            api.fence(str(uuid4()), "node-a")

    def test_leftovers_on_fenced_node_only(
        self, api: BlockDeviceAPI, other: BlockDeviceAPI
    ) -> None:
        """The fenced node lists its leftover (its old device, if any); other nodes list none."""
        volume = self._created(api)
        api.attach_volume(volume.blockdevice_id, "node-a")
        device = api.get_device_path(volume.blockdevice_id)
        other.fence(volume.blockdevice_id, "node-a")
        leftovers = api.fenced_leftovers()
        assert [leftover.blockdevice_id for leftover in leftovers] == [volume.blockdevice_id]
        assert leftovers[0].device_path in (None, device)
        assert leftovers[0].detail
        assert other.fenced_leftovers() == []

    def test_clean_up_keeps_data_and_new_attachment(
        self, api: BlockDeviceAPI, other: BlockDeviceAPI
    ) -> None:
        """Cleaning a leftover keeps the data and the new node's attachment; it is idempotent."""
        volume = self._created(api)
        self.write_data(api, volume.blockdevice_id, 4096, b"before the fence")
        api.attach_volume(volume.blockdevice_id, "node-a", epoch=1)
        other.fence(volume.blockdevice_id, "node-a")
        moved = other.attach_volume(volume.blockdevice_id, "node-b", epoch=2)
        device = other.get_device_path(volume.blockdevice_id)
        (leftover,) = api.fenced_leftovers()
        api.clean_up_fenced(leftover)
        api.clean_up_fenced(leftover)
        assert api.fenced_leftovers() == []
        assert other.list_volumes() == [moved]
        assert other.get_device_path(volume.blockdevice_id) == device
        other.detach_volume(volume.blockdevice_id)
        assert self.read_data(other, volume.blockdevice_id, 4096, 16) == b"before the fence"

    def test_fenced_node_stale_after_failover(
        self, api: BlockDeviceAPI, other: BlockDeviceAPI
    ) -> None:
        """After a fence and a move, the fenced node's old epoch can never attach again."""
        volume = self._created(api)
        api.attach_volume(volume.blockdevice_id, "node-a", epoch=1)
        other.fence(volume.blockdevice_id, "node-a")
        other.attach_volume(volume.blockdevice_id, "node-b", epoch=2)
        other.detach_volume(volume.blockdevice_id)
        with pytest.raises(StaleEpoch):
            api.attach_volume(volume.blockdevice_id, "node-a", epoch=1)
        assert api.list_volumes()[0].attached_to is None

    # -- capacity -----------------------------------------------------------

    def test_capacity_reported(self, api: BlockDeviceAPI) -> None:
        """The backend names itself and reports a largest volume that is a whole number of units."""
        capacity = api.capacity()
        assert capacity.backend
        assert capacity.maximum_volume_size is not None
        assert capacity.maximum_volume_size % api.allocation_unit() == 0
        if capacity.total is not None:
            assert capacity.free is not None and 0 <= capacity.free <= capacity.total

    def test_huge_size_refused(self, api: BlockDeviceAPI) -> None:
        """A size no storage can hold is refused as too large, not with an arithmetic error."""
        with pytest.raises(InsufficientCapacity) as refused:
            api.create_volume(uuid4(), HUGE)
        assert refused.value.reason == "too_large"
        assert refused.value.requested >= HUGE
        assert api.list_volumes() == []

    def test_beyond_maximum_refused(self, api: BlockDeviceAPI) -> None:
        """A volume one unit larger than the reported maximum is refused and nothing is created."""
        maximum = api.capacity().maximum_volume_size
        assert maximum is not None
        with pytest.raises(InsufficientCapacity) as refused:
            api.create_volume(uuid4(), maximum + api.allocation_unit())
        assert refused.value.available <= maximum
        assert api.list_volumes() == []

    def test_small_storage_capacity(self, make_small_api: MakeAPI) -> None:
        """A small storage reports its size and, empty, fits a volume of most of it."""
        capacity = make_small_api(uuid4(), "node-a").capacity()
        assert capacity.total is not None and capacity.total <= SMALL_STORAGE
        assert capacity.maximum_volume_size is not None
        assert SMALL_STORAGE // 2 <= capacity.maximum_volume_size <= SMALL_STORAGE

    def test_no_create_beyond_capacity(self, make_small_api: MakeAPI) -> None:
        """Volumes are accepted only while they fit: together they never exceed the storage."""
        api = make_small_api(uuid4(), "node-a")
        created = [api.create_volume(uuid4(), 40 * MiB) for _ in range(2)]
        with pytest.raises(InsufficientCapacity) as refused:
            api.create_volume(uuid4(), 40 * MiB)
        assert refused.value.reason == "no_space"
        assert "MiB" in str(refused.value) or "bytes" in str(refused.value)
        assert sorted(api.list_volumes(), key=lambda v: v.blockdevice_id) == sorted(
            created, key=lambda v: v.blockdevice_id
        )

    def test_larger_than_storage_too_large(self, make_small_api: MakeAPI) -> None:
        """A volume larger than the whole storage is too large, not merely out of space."""
        api = make_small_api(uuid4(), "node-a")
        with pytest.raises(InsufficientCapacity) as refused:
            api.create_volume(uuid4(), 2 * SMALL_STORAGE)
        assert refused.value.reason == "too_large"

    def test_create_uses_capacity(self, make_small_api: MakeAPI) -> None:
        """Creating a volume lowers the largest volume that fits by at least its size."""
        api = make_small_api(uuid4(), "node-a")
        before = api.capacity().maximum_volume_size
        assert before is not None
        api.create_volume(uuid4(), 32 * MiB)
        after = api.capacity().maximum_volume_size
        assert after is not None and after <= before - 32 * MiB

    def test_destroy_frees_capacity(self, make_small_api: MakeAPI) -> None:
        """Destroying a volume makes its space available again."""
        api = make_small_api(uuid4(), "node-a")
        before = api.capacity().maximum_volume_size
        volume = api.create_volume(uuid4(), 32 * MiB)
        api.destroy_volume(volume.blockdevice_id)
        assert api.capacity().maximum_volume_size == before
