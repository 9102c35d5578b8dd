"""Snapshot id records on rbd: what a crash between the record and the snapshot leaves, and
that destroying a snapshot frees its id."""

from __future__ import annotations

from uuid import uuid4

import pytest

from agent.backends.interface import BackendError, UnknownSnapshot
from agent.backends.rbd import snapids
from agent.backends.rbd.backend import RbdBlockDeviceAPI
from tests.agent.backends.ceph.conftest import MakeRbd

pytestmark = [pytest.mark.functional, pytest.mark.root]

MiB = 2**20


@pytest.fixture
def api(make_rbd: MakeRbd) -> RbdBlockDeviceAPI:
    """One node of a new cluster."""
    return make_rbd(uuid4(), "host-a")


def _leave_record(api: RbdBlockDeviceAPI, snapshot_id: str, blockdevice_id: str) -> None:
    """What a crash right after recording the id, before the RBD snapshot, leaves."""
    api.session.run(lambda io: snapids.take(io, api.cluster_id, snapshot_id, blockdevice_id))


def test_retry_after_crash_completes(api: RbdBlockDeviceAPI) -> None:
    """A record without its snapshot holds the id for its volume: a retry there makes the
    snapshot, and another volume is still refused."""
    one = api.create_volume(uuid4(), 8 * MiB)
    two = api.create_volume(uuid4(), 8 * MiB)
    snapshot_id = str(uuid4())
    _leave_record(api, snapshot_id, one.blockdevice_id)
    with pytest.raises(BackendError, match=one.blockdevice_id):
        api.create_snapshot(two.blockdevice_id, snapshot_id)
    made = api.create_snapshot(one.blockdevice_id, snapshot_id)
    assert api.list_snapshots() == [made]


def test_destroy_frees_the_id(api: RbdBlockDeviceAPI) -> None:
    """Once a snapshot is destroyed its id may be taken of another volume."""
    one = api.create_volume(uuid4(), 8 * MiB)
    two = api.create_volume(uuid4(), 8 * MiB)
    snapshot_id = str(uuid4())
    api.create_snapshot(one.blockdevice_id, snapshot_id)
    api.destroy_snapshot(snapshot_id)
    again = api.create_snapshot(two.blockdevice_id, snapshot_id)
    assert api.list_snapshots() == [again]


def test_destroy_of_a_leftover_record(api: RbdBlockDeviceAPI) -> None:
    """Destroying a snapshot id that only a crash's record holds says it is unknown and frees
    the id."""
    one = api.create_volume(uuid4(), 8 * MiB)
    two = api.create_volume(uuid4(), 8 * MiB)
    snapshot_id = str(uuid4())
    _leave_record(api, snapshot_id, one.blockdevice_id)
    with pytest.raises(UnknownSnapshot):
        api.destroy_snapshot(snapshot_id)
    assert api.create_snapshot(two.blockdevice_id, snapshot_id).blockdevice_id == (
        two.blockdevice_id
    )
