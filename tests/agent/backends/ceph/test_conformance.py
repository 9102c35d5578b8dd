"""The rbd backend passes the whole backend conformance suite on a real Ceph cluster."""

from __future__ import annotations

import subprocess
from typing import Any
from uuid import UUID

import pytest

from agent.backends.interface import BlockDeviceAPI
from agent.backends.rbd import bindings, naming
from agent.backends.rbd.backend import RbdBlockDeviceAPI
from tests.agent.backends.ceph.conftest import MakeRbd
from tests.agent.backends.conformance import BlockDeviceAPIConformance, MakeAPI

pytestmark = [pytest.mark.functional, pytest.mark.root]


def _image_io(api: BlockDeviceAPI, blockdevice_id: str, action: Any) -> Any:
    """Run ``action(image)`` on the volume's RBD image, opened by its own backend's session."""
    assert isinstance(api, RbdBlockDeviceAPI)
    _, rbd = bindings.load()
    name = naming.volume_image(api.cluster_id, UUID(blockdevice_id))

    def run(ioctx: Any) -> Any:
        with rbd.Image(ioctx, name) as image:
            return action(image)

    return api.session.run(run)


class TestRbdConformance(BlockDeviceAPIConformance):
    """RbdBlockDeviceAPI (rbd-fuse and loop devices) on the session's Ceph cluster."""

    QUIESCED_SNAPSHOTS = True

    READ_ONLY_MANY = False
    """Not yet: a reader's rbd-fuse or krbd mapping would be a second watcher, which the
    one-writer rules refuse (docs/backends.md); readers on rbd are refused (409)."""

    @pytest.fixture
    def make_api(self, make_rbd: MakeRbd) -> MakeAPI:
        """rbd backends on the pool ``rbd``."""
        return lambda cluster_id, instance_id: make_rbd(cluster_id, instance_id)

    @pytest.fixture
    def make_small_api(self, make_rbd: MakeRbd, small_pool: str) -> MakeAPI:
        """rbd backends on a pool with a 100 MiB quota."""
        return lambda cluster_id, instance_id: make_rbd(cluster_id, instance_id, small_pool)

    def vanish_device(self, api: BlockDeviceAPI, blockdevice_id: str) -> None:
        """Detach the loop device behind the backend's back (rbd-fuse keeps running)."""
        subprocess.run(["losetup", "-d", api.get_device_path(blockdevice_id)], check=True)

    def write_data(
        self, api: BlockDeviceAPI, blockdevice_id: str, offset: int, data: bytes
    ) -> None:
        """Write through librbd."""
        _image_io(api, blockdevice_id, lambda image: image.write(data, offset))

    def read_data(self, api: BlockDeviceAPI, blockdevice_id: str, offset: int, size: int) -> bytes:
        """Read through librbd."""
        return bytes(_image_io(api, blockdevice_id, lambda image: image.read(offset, size)))
