"""
The read-only attachment cases of the backend conformance suite (``ReadOnlyMany``).

Mixed into :class:`tests.agent.backends.conformance.BlockDeviceAPIConformance`. A
backend declares whether it can attach one volume read-only to several nodes at
once with :attr:`ReadOnlyConformance.READ_ONLY_MANY` (default ``True``). A backend
that can passes the cases below and overrides :meth:`device_refuses_writes`; one
that cannot (``READ_ONLY_MANY = False``) passes only the declaration case: it has
no read-only methods and its capacity says ``read_only_many: false``, so the
control service refuses readers on it (409).
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

import pytest

from agent.backends.interface import (
    AlreadyAttachedVolume,
    BlockDeviceAPI,
    ReadOnlyManyAPI,
    UnattachedVolume,
    read_only_many,
)

MakeAPI = Callable[[UUID, str], BlockDeviceAPI]


class ReadOnlyConformance:
    """Read-only attachments on several nodes; needs ``api``, ``other`` and ``make_api``."""

    READ_ONLY_MANY = True
    """Whether the backend attaches one volume read-only to several nodes at once."""

    def device_refuses_writes(self, api: BlockDeviceAPI, device: str) -> bool:
        """Whether ``device`` (a read-only attachment on ``api``'s node) refuses writes."""
        raise NotImplementedError

    def __init_subclass__(cls, **kwargs: object) -> None:
        """A backend that declares it cannot has only the declaration case collected
        (not the others skipped: nothing about such a backend is left untested)."""
        super().__init_subclass__(**kwargs)
        if cls.READ_ONLY_MANY:
            return
        for name in vars(ReadOnlyConformance):
            if name.startswith("test_") and name != "test_declares_read_only_many":
                setattr(cls, name, None)

    def _readers(self, api: BlockDeviceAPI) -> ReadOnlyManyAPI:
        assert isinstance(api, ReadOnlyManyAPI)
        return api

    def test_declares_read_only_many(self, api: BlockDeviceAPI) -> None:
        """The capability is declared the same way by the methods and by the capacity."""
        assert read_only_many(api) == self.READ_ONLY_MANY
        assert api.capacity().read_only_many == self.READ_ONLY_MANY

    def test_read_only_on_two_nodes(self, api: BlockDeviceAPI, other: BlockDeviceAPI) -> None:
        """Two nodes attach one volume read-only at once; every node lists both readers."""
        volume = api.create_volume(uuid4(), api.allocation_unit())
        one = self._readers(api).attach_read_only(volume.blockdevice_id, "node-a")
        assert one.readers == frozenset({"node-a"}) and one.attached_to is None
        self._readers(other).attach_read_only(volume.blockdevice_id, "node-b")
        for node in (api, other):
            (listed,) = node.list_volumes()
            assert listed.readers == frozenset({"node-a", "node-b"})
            assert listed.attached_to is None
        assert api.get_device_path(volume.blockdevice_id)
        assert other.get_device_path(volume.blockdevice_id)

    def test_read_only_device_refuses_writes(self, api: BlockDeviceAPI) -> None:
        """A read-only attachment's device refuses writes."""
        volume = api.create_volume(uuid4(), api.allocation_unit())
        self._readers(api).attach_read_only(volume.blockdevice_id, "node-a")
        assert self.device_refuses_writes(api, api.get_device_path(volume.blockdevice_id))

    def test_no_read_write_attach_or_destroy_while_read(
        self, api: BlockDeviceAPI, other: BlockDeviceAPI
    ) -> None:
        """While a node reads the volume, no node attaches it read-write, nor destroys it."""
        volume = api.create_volume(uuid4(), api.allocation_unit())
        self._readers(api).attach_read_only(volume.blockdevice_id, "node-a")
        for node, name in ((api, "node-a"), (other, "node-b")):
            with pytest.raises(AlreadyAttachedVolume):
                node.attach_volume(volume.blockdevice_id, name)
        with pytest.raises(AlreadyAttachedVolume):
            other.destroy_volume(volume.blockdevice_id)
        assert api.list_volumes()[0].readers == frozenset({"node-a"})

    def test_no_read_only_attach_while_attached_read_write(
        self, api: BlockDeviceAPI, other: BlockDeviceAPI
    ) -> None:
        """A volume attached read-write is not attached read-only anywhere."""
        volume = api.create_volume(uuid4(), api.allocation_unit())
        api.attach_volume(volume.blockdevice_id, "node-a")
        with pytest.raises(AlreadyAttachedVolume):
            self._readers(other).attach_read_only(volume.blockdevice_id, "node-b")
        assert api.list_volumes()[0].readers == frozenset()

    def test_read_only_twice_refused(self, api: BlockDeviceAPI) -> None:
        """A node attaching read-only again gets AlreadyAttachedVolume, as for read-write."""
        volume = api.create_volume(uuid4(), api.allocation_unit())
        self._readers(api).attach_read_only(volume.blockdevice_id, "node-a")
        with pytest.raises(AlreadyAttachedVolume):
            self._readers(api).attach_read_only(volume.blockdevice_id, "node-a")

    def test_detach_read_only_keeps_other_readers(
        self, api: BlockDeviceAPI, other: BlockDeviceAPI
    ) -> None:
        """A reader detaching leaves the others theirs; once none reads, read-write works."""
        volume = api.create_volume(uuid4(), api.allocation_unit())
        blockdevice_id = volume.blockdevice_id
        self._readers(api).attach_read_only(blockdevice_id, "node-a")
        self._readers(other).attach_read_only(blockdevice_id, "node-b")
        self._readers(api).detach_read_only(blockdevice_id)
        assert api.list_volumes()[0].readers == frozenset({"node-b"})
        with pytest.raises(UnattachedVolume):
            api.get_device_path(blockdevice_id)
        assert other.get_device_path(blockdevice_id)
        self._readers(other).detach_read_only(blockdevice_id)
        assert api.attach_volume(blockdevice_id, "node-a").attached_to == "node-a"

    def test_detach_read_only_not_attached(self, api: BlockDeviceAPI) -> None:
        """Detaching a read-only attachment this node does not have: UnattachedVolume."""
        volume = api.create_volume(uuid4(), api.allocation_unit())
        with pytest.raises(UnattachedVolume):
            self._readers(api).detach_read_only(volume.blockdevice_id)

    def test_read_only_device_only_on_readers(
        self, make_api: MakeAPI, cluster_id: UUID, api: BlockDeviceAPI
    ) -> None:
        """A node that does not read the volume has no device for it."""
        volume = api.create_volume(uuid4(), api.allocation_unit())
        self._readers(api).attach_read_only(volume.blockdevice_id, "node-a")
        with pytest.raises(UnattachedVolume):
            make_api(cluster_id, "node-c").get_device_path(volume.blockdevice_id)
