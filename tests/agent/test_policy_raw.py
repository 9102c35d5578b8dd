"""Tests for raw (block-mode) datasets in calculate_changes: never formatted or mounted."""

from attrs import evolve
from hypothesis import given
from hypothesis import strategies as st

from agent.changes import (
    AttachVolume,
    CreateVolume,
    DetachVolume,
    GrowFilesystem,
    MakeFilesystem,
    MountAttached,
    MountFilesystem,
    NoOp,
    ResizeVolume,
    UnmountFilesystem,
    Wait,
    leaves,
)
from agent.discovery import DiscoveredState, LocalState, local_state_to_report
from agent.fencing import FenceView
from agent.fs.interface import FilesystemInfo
from agent.policy import RAW_HERE, ClusterView, calculate_changes
from control.model import MINIMUM_DATASET_SIZE, RAW, Dataset, VolumeStatus
from tests.agent.test_policy import FOUND, HERE, ME, OTHER, PATH, ROOT, D

S = DiscoveredState
RAW_HERE_RECORD = Dataset(D, ME, MINIMUM_DATASET_SIZE, filesystem=RAW)


def raw_changes(have, record=RAW_HERE_RECORD, found=None):
    """What calculate_changes does for the raw dataset D found in state ``have``."""
    found = FOUND[have] if found is None else found
    local = LocalState(instance_id=HERE, datasets={} if found is None else {D: found})
    return calculate_changes({D: record}, ClusterView(ME), local, HERE, ROOT)


def test_raw_row_is_complete():
    """The raw row has a transition for each discovered state."""
    assert set(RAW_HERE) == set(DiscoveredState)


def test_raw_dataset_is_created_attached_and_left_unformatted():
    """A raw dataset is created and attached like any other, then kept as a bare device."""
    assert raw_changes(S.NON_EXISTENT) == CreateVolume(D, MINIMUM_DATASET_SIZE)
    assert raw_changes(S.UNATTACHED) == AttachVolume(D, "b1")
    assert raw_changes(S.ATTACHED_NO_FILESYSTEM) == NoOp()
    assert raw_changes(S.ATTACHED_HERE) == NoOp()
    assert isinstance(raw_changes(S.ATTACHED_NO_DEVICE), Wait)


def test_raw_dataset_mounted_at_the_agent_mount_point_is_unmounted():
    """A mount of a raw dataset at the agent's mount point is undone; other mounts are left."""
    assert raw_changes(S.MOUNTED_HERE) == UnmountFilesystem(D, PATH)
    assert raw_changes(S.MOUNTED_OTHER_PATH) == NoOp()


def test_raw_dataset_grows_its_volume_never_a_filesystem():
    """A raw dataset asked larger grows the volume only, even with a small filesystem on it."""
    bigger = evolve(RAW_HERE_RECORD, maximum_size=2 * MINIMUM_DATASET_SIZE)
    small_fs = evolve(FOUND[S.ATTACHED_HERE], filesystem=FilesystemInfo("ext4", 2**20))
    assert raw_changes(S.ATTACHED_HERE, bigger, small_fs) == ResizeVolume(
        D, "b1", 2 * MINIMUM_DATASET_SIZE
    )
    assert raw_changes(S.ATTACHED_HERE, RAW_HERE_RECORD, small_fs) == NoOp()


def test_raw_dataset_elsewhere_is_detached():
    """A raw dataset whose primary moved away is detached from here."""
    moved = evolve(RAW_HERE_RECORD, primary=OTHER)
    assert raw_changes(S.ATTACHED_NO_FILESYSTEM, moved) == DetachVolume(D, "b1")


def test_raw_attached_dataset_reports_its_device():
    """The report of a raw dataset attached here is ATTACHED with the device path, no mount."""
    local = LocalState(instance_id=HERE, datasets={D: FOUND[S.ATTACHED_NO_FILESYSTEM]})
    report = local_state_to_report(local, {D: RAW_HERE_RECORD}, 1, None, ME, 0.0)
    state = report.datasets[D]
    assert (state.status, state.device, state.path) == (VolumeStatus.ATTACHED, "/dev/x", None)


@given(st.sampled_from(list(DiscoveredState)), st.booleans(), st.booleans())
def test_raw_dataset_is_never_formatted_or_mounted(have, leased, holder_fenced):
    """No cell formats, mounts or grows a filesystem of a raw dataset wanted here (nor mounts it
    after attaching it, when its holder is fenced too)."""
    local_found = FOUND[have]
    local = LocalState(instance_id=HERE, datasets={} if local_found is None else {D: local_found})
    fence = FenceView(fenced_nodes=frozenset({"i-there"} if holder_fenced else ()))
    view = ClusterView(ME, frozenset({D}) if leased else frozenset(), fence)
    tree = calculate_changes({D: RAW_HERE_RECORD}, view, local, HERE, ROOT)
    kinds = (MakeFilesystem, MountFilesystem, MountAttached, GrowFilesystem)
    assert not any(isinstance(leaf, kinds) for leaf in leaves(tree))
