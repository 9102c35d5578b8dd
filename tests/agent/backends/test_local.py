"""
The ``local`` backend passes the conformance suite, with its one-node limits declared.

Declared limits: the conformance suite's ``api`` and ``other`` share one pool,
which for this backend means two agents of one node (the suite's cases hold
for them as for the loopback backend). Another node has its own pool, and
:class:`TestLocalLimits` checks what that means: it sees none of this node's
volumes, cannot attach or destroy them, and the capacity says node-local.
"""

from __future__ import annotations

import os
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from agent.backends.interface import BackendError, BlockDeviceAPI, UnknownVolume
from agent.backends.local import LocalBlockDeviceAPI
from agent.backends.registry import make_backend
from tests.agent.backends import test_loopback
from tests.agent.backends.conformance import MakeAPI
from tests.agent.backends.test_loopback import _release

pool = test_loopback.pool  # the loopback suite's fixtures, used here by name
small_pool = test_loopback.small_pool

pytestmark = [
    pytest.mark.functional,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for losetup"),
]


class TestLocalConformance(test_loopback.TestLoopbackConformance):
    """LocalBlockDeviceAPI over one node's pool (the loopback suite and its data hooks)."""

    @pytest.fixture
    def make_small_api(self, small_pool: Path) -> MakeAPI:
        """Local backends of one node over a pool on a 100 MiB tmpfs."""

        def make(cluster_id: UUID, instance_id: str) -> BlockDeviceAPI:
            return LocalBlockDeviceAPI(str(small_pool), cluster_id, instance_id)

        return make

    @pytest.fixture
    def make_api(self, pool: Path) -> MakeAPI:
        """Local backends of one node over one pool."""

        def make(cluster_id: UUID, instance_id: str) -> BlockDeviceAPI:
            return LocalBlockDeviceAPI(str(pool), cluster_id, instance_id)

        return make


class TestLocalLimits:
    """What another node (another pool) can do with this node's local volumes: nothing."""

    @pytest.fixture
    def nodes(self, tmp_path: Path):  # type: ignore[no-untyped-def]
        """Node a and node b, each with its own local pool; loop devices released after."""
        cluster = uuid4()
        a = LocalBlockDeviceAPI(str(tmp_path / "a"), cluster, "node-a")
        b = LocalBlockDeviceAPI(str(tmp_path / "b"), cluster, "node-b")
        try:
            yield a, b
        finally:
            _release(tmp_path)

    def test_capacity_is_local_and_node_local(self, nodes) -> None:  # type: ignore[no-untyped-def]
        """The backend reports itself as ``local`` and not shared."""
        a, _ = nodes
        capacity = a.capacity()
        assert (capacity.backend, capacity.shared) == ("local", False)
        assert capacity.total and capacity.maximum_volume_size

    def test_another_node_never_reaches_a_local_volume(self, nodes) -> None:  # type: ignore[no-untyped-def]
        """Node b lists none of node a's volumes and can neither attach nor destroy one."""
        a, b = nodes
        volume = a.create_volume(uuid4(), a.allocation_unit())
        a.attach_volume(volume.blockdevice_id, "node-a")
        assert b.list_volumes() == []
        with pytest.raises(UnknownVolume):
            b.attach_volume(volume.blockdevice_id, "node-b")
        with pytest.raises(UnknownVolume):
            b.destroy_volume(volume.blockdevice_id)
        assert [v.blockdevice_id for v in a.list_volumes()] == [volume.blockdevice_id]
        a.detach_volume(volume.blockdevice_id)


def test_registry_builds_local_and_needs_a_pool(tmp_path: Path) -> None:
    """``--backend local`` builds a local backend over ``--pool``, and refuses none."""
    built = make_backend("local", cluster_id=uuid4(), instance_id="n1", pool=str(tmp_path))
    assert isinstance(built, LocalBlockDeviceAPI)
    with pytest.raises(BackendError, match="needs --pool"):
        make_backend("local", cluster_id=uuid4(), instance_id="n1")
