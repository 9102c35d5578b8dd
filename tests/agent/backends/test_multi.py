"""Several backends behind one: the conformance suite through the default one, and routing."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage
from agent.backends.interface import BackendError, BlockDeviceAPI, UnknownSnapshot
from agent.backends.multi import MultiBackend
from tests.agent.backends.conformance import SMALL_STORAGE, MakeAPI
from tests.agent.backends.test_fake import TestFakeConformance

MiB = 2**20


class Named(FakeBlockDeviceAPI):
    """A fake backend reporting another name (as ``local`` beside ``loopback``)."""

    def capacity(self):  # type: ignore[no-untyped-def]
        """The fake's capacity, named ``other`` and node-local."""
        from attrs import evolve

        return evolve(super().capacity(), backend="other", shared=False)


def _multi(main: FakeStorage, other: FakeStorage, cluster_id: UUID, node: str) -> MultiBackend:
    return MultiBackend([
        ("fake", FakeBlockDeviceAPI(main, cluster_id, node)),
        ("other", Named(other, cluster_id, node)),
    ])


class TestMultiConformance(TestFakeConformance):
    """A MultiBackend whose default member is a fake backend passes the whole suite."""

    @pytest.fixture
    def make_api(self) -> MakeAPI:
        """MultiBackends sharing one default storage and one other storage."""
        main, other = FakeStorage(), FakeStorage()
        return lambda cluster_id, node: _multi(main, other, cluster_id, node)

    @pytest.fixture
    def make_small_api(self) -> MakeAPI:
        """The same over a small default storage."""
        main, other = FakeStorage(total=SMALL_STORAGE), FakeStorage()
        return lambda cluster_id, node: _multi(main, other, cluster_id, node)

    def _fake(self, api: BlockDeviceAPI) -> FakeBlockDeviceAPI:
        assert isinstance(api, MultiBackend)
        member = api.member(None)
        assert isinstance(member, FakeBlockDeviceAPI)
        return member

    def device_refuses_writes(self, api: BlockDeviceAPI, device: str) -> bool:
        """The default member's answer."""
        return super().device_refuses_writes(self._fake(api), device)

    def vanish_device(self, api: BlockDeviceAPI, blockdevice_id: str) -> None:
        """Lose the device in the default member."""
        super().vanish_device(self._fake(api), blockdevice_id)

    def write_data(
        self, api: BlockDeviceAPI, blockdevice_id: str, offset: int, data: bytes
    ) -> None:
        """Write through the default member."""
        super().write_data(self._fake(api), blockdevice_id, offset, data)

    def read_data(self, api: BlockDeviceAPI, blockdevice_id: str, offset: int, size: int) -> bytes:
        """Read through the default member."""
        return super().read_data(self._fake(api), blockdevice_id, offset, size)


@pytest.fixture
def nodes() -> tuple[MultiBackend, MultiBackend]:
    """Two nodes, each with the shared ``fake`` backend and an ``other`` one."""
    main, other = FakeStorage(), FakeStorage()
    cluster_id = uuid4()
    return _multi(main, other, cluster_id, "a"), _multi(main, other, cluster_id, "b")


def test_each_backend_reports_its_capacity(nodes: tuple[MultiBackend, MultiBackend]) -> None:
    """capacities() names every backend, the default first; capacity() is the default's."""
    a, _ = nodes
    assert [c.backend for c in a.capacities()] == ["fake", "other"]
    assert a.capacity().backend == "fake" and a.capacities()[1].shared is False


def test_volume_on_the_named_backend_is_routed_there(
    nodes: tuple[MultiBackend, MultiBackend],
) -> None:
    """A volume made on ``other`` carries its name; every call on it goes there."""
    a, _ = nodes
    dataset_id = uuid4()
    volume = a.create_volume_on("other", dataset_id, MiB)
    assert volume.blockdevice_id.startswith("other:")
    assert a.member("other").list_volumes()[0].dataset_id == dataset_id
    assert a.member(None).list_volumes() == []
    assert a.list_volumes() == [volume]
    attached = a.attach_volume(volume.blockdevice_id, "a", 1)
    assert attached.blockdevice_id == volume.blockdevice_id and attached.attached_to == "a"
    assert a.get_device_path(volume.blockdevice_id)
    a.detach_volume(volume.blockdevice_id)
    a.destroy_volume(volume.blockdevice_id)
    assert a.list_volumes() == []


def test_default_backend_ids_are_unchanged(nodes: tuple[MultiBackend, MultiBackend]) -> None:
    """The default backend's volumes keep their own ids (an agent gaining a backend)."""
    a, _ = nodes
    volume = a.create_volume_on(None, uuid4(), MiB)
    assert volume == a.member(None).list_volumes()[0]


def test_restore_goes_where_the_snapshot_is(nodes: tuple[MultiBackend, MultiBackend]) -> None:
    """A snapshot of an ``other`` volume is restored on ``other``; an unknown one is refused."""
    a, _ = nodes
    volume = a.create_volume_on("other", uuid4(), MiB)
    snapshot_id = str(uuid4())
    made = a.create_snapshot(volume.blockdevice_id, snapshot_id)
    assert made.blockdevice_id == volume.blockdevice_id
    restored = a.create_volume_from_snapshot(uuid4(), snapshot_id, MiB)
    assert restored.blockdevice_id.startswith("other:")
    with pytest.raises(UnknownSnapshot):
        a.create_volume_from_snapshot(uuid4(), str(uuid4()), MiB)
    a.destroy_snapshot(snapshot_id)
    assert a.list_snapshots() == []


def test_unknown_backend_is_refused_naming_those_it_has(
    nodes: tuple[MultiBackend, MultiBackend],
) -> None:
    """A create on a backend the node lacks says which it has."""
    a, _ = nodes
    with pytest.raises(BackendError, match="no backend 'rbd'; it has fake, other"):
        a.create_volume_on("rbd", uuid4(), MiB)


def test_names_are_unique() -> None:
    """Two members of one name are refused."""
    storage = FakeStorage()
    api = FakeBlockDeviceAPI(storage, uuid4(), "a")
    with pytest.raises(BackendError, match="named once"):
        MultiBackend([("fake", api), ("fake", api)])
