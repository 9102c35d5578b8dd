"""Tests for the snapshot table and the restore, clone, resize and grow cells of the policy."""

from collections.abc import Sequence
from uuid import UUID

from agent.backends.interface import BlockDeviceSnapshot
from agent.changes import (
    CloneVolume,
    CreateSnapshot,
    DestroySnapshot,
    DetachVolume,
    GrowFilesystem,
    MakeFilesystem,
    MountFilesystem,
    NoOp,
    ResizeVolume,
    RestoreVolume,
    Sequentially,
    UnmountFilesystem,
    Wait,
    in_parallel,
    leaves,
)
from agent.discovery import DiscoveredDataset, DiscoveredState, LocalState
from agent.fs.interface import FilesystemInfo
from agent.policy import (
    SNAPSHOT_TRANSITIONS,
    ClusterView,
    SnapshotFound,
    SnapshotWanted,
    calculate_changes,
    freezes_ahead,
    keeps_freezes_ahead,
    may_freeze_ahead,
)
from control.model import (
    RAW,
    AccessMode,
    Capacity,
    Dataset,
    DatasetSnapshot,
    DataSource,
    SourceKind,
)

ME = UUID(int=1)
HERE = "i-here"
ROOT = "/shoal"
SOURCE, NEW, SNAP = UUID(int=7), UUID(int=8), UUID(int=9)
MiB = 2**20
GiB = 1024 * MiB
S = DiscoveredState


def source_found(state: DiscoveredState, size: int = 64 * MiB) -> DiscoveredDataset:
    """The source dataset's volume as discovered in ``state``."""
    attached = {S.ATTACHED_ELSEWHERE: "i-there", S.UNATTACHED: None}.get(state, HERE)
    mounted = state in (S.MOUNTED_HERE, S.MOUNTED_OTHER_PATH)
    return DiscoveredDataset(
        SOURCE,
        state,
        "b-source",
        size,
        attached,
        "/dev/src" if attached == HERE else None,
        (f"{ROOT}/{SOURCE}",) if mounted else (),
        FilesystemInfo("xfs", size) if attached == HERE else None,
    )


def snapshot_record(ready: bool = False, deleted: bool = False) -> DatasetSnapshot:
    """A snapshot of the source dataset this node is in charge of."""
    return DatasetSnapshot(SNAP, "nightly", SOURCE, 1.0, ME, ready=ready, deleted=deleted)


def backend_snapshot(size: int = 64 * MiB) -> BlockDeviceSnapshot:
    """The snapshot as the backend lists it."""
    return BlockDeviceSnapshot(str(SNAP), "b-source", SOURCE, size, UUID(int=0))


def decide(
    desired: list[Dataset],
    found: list[DiscoveredDataset],
    snapshots: Sequence[DatasetSnapshot] = (),
    listed: Sequence[BlockDeviceSnapshot] = (),
    capacity: Capacity | None = None,
):
    """calculate_changes for this node."""
    local = LocalState(
        instance_id=HERE,
        datasets={f.dataset_id: f for f in found},
        snapshots={s.snapshot_id: s for s in listed},
        capacity=capacity,
    )
    return calculate_changes(
        {d.dataset_id: d for d in desired},
        ClusterView(ME),
        local,
        HERE,
        ROOT,
        snapshots=snapshots,
    )


def test_every_cell_of_the_snapshot_table_is_filled():
    """Each wanted state has a transition for each found state."""
    for wanted in SnapshotWanted:
        assert set(SNAPSHOT_TRANSITIONS[wanted]) == set(SnapshotFound), wanted


def test_snapshot_of_mounted_source_freezes_it():
    """A snapshot to make of a volume mounted here is made with its filesystem frozen."""
    changes = decide([], [source_found(S.MOUNTED_HERE)], [snapshot_record()])
    assert changes == CreateSnapshot(SOURCE, str(SNAP), "b-source", f"{ROOT}/{SOURCE}")


def test_snapshot_of_unmounted_source_does_not_freeze():
    """An unmounted or unattached source is snapshotted without a freeze."""
    for state in (S.UNATTACHED, S.ATTACHED_HERE, S.ATTACHED_NO_FILESYSTEM):
        changes = decide([], [source_found(state)], [snapshot_record()])
        assert changes == CreateSnapshot(SOURCE, str(SNAP), "b-source", None), state


def test_snapshot_waits_for_source_elsewhere_or_absent():
    """A source attached to another node (which could freeze it) or absent is waited for."""
    for found in ([source_found(S.ATTACHED_ELSEWHERE)], [source_found(S.ATTACHED_NO_DEVICE)], []):
        changes = decide([], found, [snapshot_record()])
        assert isinstance(changes, Wait) and changes.code == "waiting_for_source"


def test_snapshot_made_is_left_alone():
    """A snapshot the backend lists is not made again, ready or not."""
    for ready in (False, True):
        changes = decide(
            [], [source_found(S.MOUNTED_HERE)], [snapshot_record(ready)], [backend_snapshot()]
        )
        assert changes == NoOp()


def test_lost_ready_snapshot_not_made_again():
    """A ready snapshot missing from the backend is not remade (it would be another instant)."""
    assert decide([], [source_found(S.MOUNTED_HERE)], [snapshot_record(ready=True)]) == NoOp()


def test_deleted_snapshot_destroyed_once():
    """A deleted snapshot still listed is destroyed; once gone nothing more happens."""
    record = snapshot_record(ready=True, deleted=True)
    assert decide([], [], [record], [backend_snapshot()]) == DestroySnapshot(SOURCE, str(SNAP))
    assert decide([], [], [record]) == NoOp()


def test_restore_from_listed_snapshot():
    """A dataset whose source is a listed snapshot is restored, at least the snapshot's size."""
    source = DataSource(SourceKind.SNAPSHOT, SNAP)
    small = Dataset(NEW, ME, maximum_size=64 * MiB, source=source)
    assert decide([small], [], listed=[backend_snapshot(128 * MiB)]) == RestoreVolume(
        NEW, str(SNAP), 128 * MiB
    )
    big = Dataset(NEW, ME, maximum_size=256 * MiB, source=source)
    assert decide([big], [], listed=[backend_snapshot()]) == RestoreVolume(
        NEW, str(SNAP), 256 * MiB
    )
    unsized = Dataset(NEW, ME, source=source)
    assert decide([unsized], [], listed=[backend_snapshot()]) == RestoreVolume(
        NEW, str(SNAP), 64 * MiB
    )


def test_restore_waits_for_snapshot():
    """A restore from a snapshot the backend does not list yet waits, never creates empty."""
    record = Dataset(NEW, ME, source=DataSource(SourceKind.SNAPSHOT, SNAP))
    changes = decide([record], [])
    assert isinstance(changes, Wait) and changes.code == "waiting_for_snapshot"


def test_restore_that_does_not_fit_is_not_tried():
    """A restore larger than the backend can hold is not tried (health reports why)."""
    record = Dataset(NEW, ME, maximum_size=2**40, source=DataSource(SourceKind.SNAPSHOT, SNAP))
    capacity = Capacity(backend="fake", maximum_volume_size=GiB)
    assert decide([record], [], listed=[backend_snapshot()], capacity=capacity) == NoOp()


def test_clone_of_mounted_source_freezes_it():
    """A clone of a dataset mounted here copies it frozen; of an unattached one, unfrozen."""
    record = Dataset(NEW, ME, source=DataSource(SourceKind.DATASET, SOURCE))
    assert decide([record], [source_found(S.MOUNTED_HERE)]) == CloneVolume(
        NEW, "b-source", 64 * MiB, f"{ROOT}/{SOURCE}"
    )
    assert decide([record], [source_found(S.UNATTACHED)]) == CloneVolume(
        NEW, "b-source", 64 * MiB, None
    )


def test_clone_waits_for_source():
    """A clone of a volume attached to another node, or of none, waits."""
    record = Dataset(NEW, ME, source=DataSource(SourceKind.DATASET, SOURCE))
    for found in ([source_found(S.ATTACHED_ELSEWHERE)], []):
        changes = decide([record], found)
        assert isinstance(changes, Wait) and changes.code == "waiting_for_source"


def test_clone_for_another_primary_made_where_its_source_is_attached():
    """A clone whose primary is another node is made here, frozen, only while its source is
    mounted or attached here; otherwise this node leaves it to its primary."""
    other = UUID(int=2)
    record = Dataset(NEW, other, source=DataSource(SourceKind.DATASET, SOURCE))
    assert decide([record], [source_found(S.MOUNTED_HERE)]) == CloneVolume(
        NEW, "b-source", 64 * MiB, f"{ROOT}/{SOURCE}"
    )
    assert decide([record], [source_found(S.ATTACHED_HERE)]) == CloneVolume(
        NEW, "b-source", 64 * MiB, None
    )
    for found in ([source_found(S.UNATTACHED)], [source_found(S.ATTACHED_ELSEWHERE)], []):
        assert decide([record], found) == NoOp()
    made = DiscoveredDataset(NEW, S.UNATTACHED, "b-new", 64 * MiB)
    assert decide([record], [source_found(S.MOUNTED_HERE), made]) == NoOp()
    fresh = Dataset(NEW, other)
    assert decide([fresh], [source_found(S.MOUNTED_HERE)]) == NoOp()


def _new(state: DiscoveredState, size: int, fs: FilesystemInfo | None) -> DiscoveredDataset:
    paths = (f"{ROOT}/{NEW}",) if state is S.MOUNTED_HERE else ()
    return DiscoveredDataset(NEW, state, "b-new", size, HERE, "/dev/new", paths, fs)


def test_restored_ext4_grown_offline_before_mount():
    """An ext4 smaller than its (larger) volume is grown before it is mounted."""
    record = Dataset(NEW, ME, maximum_size=GiB)
    small = _new(S.ATTACHED_HERE, GiB, FilesystemInfo("ext4", 64 * MiB))
    assert decide([record], [small]) == GrowFilesystem(NEW, "/dev/new")
    full = _new(S.ATTACHED_HERE, GiB, FilesystemInfo("ext4", GiB))
    assert decide([record], [full]) == MountFilesystem(NEW, "/dev/new", f"{ROOT}/{NEW}")


def test_xfs_mounted_then_grown_online():
    """An xfs smaller than its volume is mounted first, then grown online."""
    record = Dataset(NEW, ME, maximum_size=GiB, filesystem="xfs")
    small = FilesystemInfo("xfs", 64 * MiB)
    assert decide([record], [_new(S.ATTACHED_HERE, GiB, small)]) == MountFilesystem(
        NEW, "/dev/new", f"{ROOT}/{NEW}"
    )
    assert decide([record], [_new(S.MOUNTED_HERE, GiB, small)]) == GrowFilesystem(NEW, "/dev/new")


def test_grown_maximum_size_resizes_mounted_volume():
    """A mounted volume smaller than the dataset's maximum size is grown, then its filesystem."""
    record = Dataset(NEW, ME, maximum_size=2 * GiB, filesystem="xfs")
    full = FilesystemInfo("xfs", GiB)
    assert decide([record], [_new(S.MOUNTED_HERE, GiB, full)]) == ResizeVolume(
        NEW, "b-new", 2 * GiB
    )
    grown = _new(S.MOUNTED_HERE, 2 * GiB, full)
    assert decide([record], [grown]) == GrowFilesystem(NEW, "/dev/new")
    done = _new(S.MOUNTED_HERE, 2 * GiB, FilesystemInfo("xfs", 2 * GiB))
    assert decide([record], [done]) == NoOp()


def test_resize_that_does_not_fit_waits():
    """A growth the backend has no room for is not tried; the dataset says why."""
    record = Dataset(NEW, ME, maximum_size=8 * GiB)
    capacity = Capacity(backend="fake", maximum_volume_size=GiB)
    found = _new(S.MOUNTED_HERE, GiB, FilesystemInfo("ext4", GiB))
    changes = decide([record], [found], capacity=capacity)
    assert isinstance(changes, Wait) and changes.code == "no_space"


def test_filesystem_made_as_asked():
    """A new volume gets the filesystem its dataset asks for."""
    record = Dataset(NEW, ME, maximum_size=GiB, filesystem="xfs")
    found = DiscoveredDataset(NEW, S.ATTACHED_NO_FILESYSTEM, "b-new", GiB, HERE, "/dev/new")
    assert decide([record], [found]) == Sequentially(
        (MakeFilesystem(NEW, "/dev/new", "xfs"), MountFilesystem(NEW, "/dev/new", f"{ROOT}/{NEW}"))
    )


def ahead(
    local: LocalState | None,
    snapshots: Sequence[DatasetSnapshot] = (),
    desired: Sequence[Dataset] | None = None,
) -> frozenset[str]:
    """freezes_ahead for this node; by default the source is a live dataset of this node."""
    records = [Dataset(SOURCE, ME)] if desired is None else desired
    return freezes_ahead({d.dataset_id: d for d in records}, snapshots, ME, local)


def mounted_here(*found: DiscoveredDataset) -> LocalState:
    """An observation of this node with the source mounted here (and ``found``)."""
    datasets = {f.dataset_id: f for f in (source_found(S.MOUNTED_HERE), *found)}
    return LocalState(instance_id=HERE, datasets=datasets)


def test_freezes_ahead_are_the_mounts_of_snapshots_to_make():
    """Freezes are started ahead only for a snapshot to make (not ready, not deleted, not
    listed yet) of a dataset the previous observation saw mounted here, at its mount."""
    path = f"{ROOT}/{SOURCE}"
    assert ahead(mounted_here(), [snapshot_record()]) == {path}
    assert ahead(None, [snapshot_record()]) == frozenset()
    assert ahead(mounted_here(), [snapshot_record(ready=True)]) == frozenset()
    assert ahead(mounted_here(), [snapshot_record(deleted=True)]) == frozenset()
    listed = LocalState(
        instance_id=HERE,
        datasets={SOURCE: source_found(S.MOUNTED_HERE)},
        snapshots={str(SNAP): backend_snapshot()},
    )
    assert ahead(listed, [snapshot_record()]) == frozenset()
    for state in (S.ATTACHED_HERE, S.ATTACHED_ELSEWHERE, S.UNATTACHED, S.MOUNTED_OTHER_PATH):
        local = LocalState(instance_id=HERE, datasets={SOURCE: source_found(state)})
        assert ahead(local, [snapshot_record()]) == frozenset(), state


def test_nothing_frozen_ahead_of_a_dataset_this_node_is_not_in_charge_of():
    """A snapshot of a dataset moved away, deleted, raw, read-only or not sent in the same
    configuration is not frozen ahead, although the previous observation saw it mounted."""
    other = UUID(int=2)
    for record in (
        Dataset(SOURCE, other),
        Dataset(SOURCE, ME, deleted=True),
        Dataset(SOURCE, ME, filesystem=RAW),
        Dataset(SOURCE, ME, access_mode=AccessMode.ROX),
    ):
        assert ahead(mounted_here(), [snapshot_record()], [record]) == frozenset(), record
    assert ahead(mounted_here(), [snapshot_record()], []) == frozenset()


def test_nothing_frozen_ahead_when_the_pass_may_unmount_anything():
    """When any dataset seen mounted here is to be let go (moved away, deleted elsewhere or
    here, or mounted away from its mount point), no freeze at all is started ahead, not even
    of the snapshot's own dataset, which stays."""
    other, node = UUID(int=3), UUID(int=2)
    found = DiscoveredDataset(
        other, S.MOUNTED_HERE, "b-other", 64 * MiB, HERE, "/dev/other", (f"{ROOT}/{other}",)
    )
    path = f"{ROOT}/{SOURCE}"
    staying = [Dataset(SOURCE, ME), Dataset(other, ME)]
    assert ahead(mounted_here(found), [snapshot_record()], staying) == {path}
    unknown = [Dataset(SOURCE, ME)]  # a volume the node was sent nothing of is never touched
    assert ahead(mounted_here(found), [snapshot_record()], unknown) == {path}
    for record in (
        Dataset(other, node),
        Dataset(other, node, deleted=True),
        Dataset(other, ME, deleted=True),
        Dataset(other, ME, filesystem=RAW),
    ):
        desired = [Dataset(SOURCE, ME), record]
        assert ahead(mounted_here(found), [snapshot_record()], desired) == frozenset(), record
    elsewhere = DiscoveredDataset(
        other, S.MOUNTED_OTHER_PATH, "b-other", 64 * MiB, HERE, "/dev/other", ("/mnt/x",)
    )
    assert ahead(mounted_here(elsewhere), [snapshot_record()], staying) == frozenset()


def test_only_a_pass_of_snapshots_keeps_its_freezes_ahead():
    """Freezes ahead are kept while acting only when every action is a snapshot; an unmount,
    a detach or any other action (with snapshots or not) runs with none held."""
    make = CreateSnapshot(SOURCE, str(SNAP), "b-source", f"{ROOT}/{SOURCE}")
    unmount = UnmountFilesystem(NEW, f"{ROOT}/{NEW}")
    assert keeps_freezes_ahead(make)
    assert keeps_freezes_ahead(in_parallel([make, NoOp(), Wait(NEW, "w", "waiting")]))
    assert not keeps_freezes_ahead(NoOp())
    assert not keeps_freezes_ahead(in_parallel([make, unmount]))
    assert not keeps_freezes_ahead(in_parallel([make, DetachVolume(NEW, "b-new")]))
    assert not keeps_freezes_ahead(in_parallel([make, DestroySnapshot(SOURCE, "other")]))


def test_no_snapshot_in_a_pass_that_acts_on_its_dataset():
    """A snapshot of a dataset the pass lets go of (unmount, detach) waits for the next pass:
    the copy would race the unmount; it is made once nothing acts on the dataset."""
    moved = Dataset(SOURCE, UUID(int=2))
    changes = decide([moved], [source_found(S.MOUNTED_HERE)], [snapshot_record()])
    made = [c for c in leaves(changes) if isinstance(c, CreateSnapshot)]
    waits = [c for c in leaves(changes) if isinstance(c, Wait)]
    assert made == []
    assert [w.dataset_id for w in waits] == [SOURCE]
    assert any(isinstance(c, UnmountFilesystem) for c in leaves(changes))
    staying = decide([Dataset(SOURCE, ME)], [source_found(S.MOUNTED_HERE)], [snapshot_record()])
    assert staying == CreateSnapshot(SOURCE, str(SNAP), "b-source", f"{ROOT}/{SOURCE}")


def test_a_freeze_ahead_is_possible_only_with_a_filesystem_mounted_here():
    """Only an observation with a filesystem mounted here (at its mount point) allows one."""
    assert may_freeze_ahead(mounted_here())
    assert not may_freeze_ahead(None)
    for state in (S.ATTACHED_HERE, S.UNATTACHED, S.MOUNTED_OTHER_PATH):
        local = LocalState(instance_id=HERE, datasets={SOURCE: source_found(state)})
        assert not may_freeze_ahead(local), state


def test_a_growth_does_not_hold_back_a_snapshot_of_its_dataset():
    """A pass growing a mounted filesystem still makes a snapshot asked of it (only attaching,
    mounting and letting go hold one back)."""
    small = DiscoveredDataset(
        SOURCE, S.MOUNTED_HERE, "b-source", GiB, HERE, "/dev/src", (f"{ROOT}/{SOURCE}",),
        FilesystemInfo("xfs", 64 * MiB),
    )
    changes = decide([Dataset(SOURCE, ME)], [small], [snapshot_record()])
    assert set(leaves(changes)) == {
        GrowFilesystem(SOURCE, "/dev/src"),
        CreateSnapshot(SOURCE, str(SNAP), "b-source", f"{ROOT}/{SOURCE}"),
    }
