"""Tests for calculate_changes and the per-dataset transition table."""

from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from agent.changes import (
    AttachVolume,
    CreateVolume,
    DestroyVolume,
    DetachVolume,
    InParallel,
    MakeFilesystem,
    MountAttached,
    MountFilesystem,
    NoOp,
    Sequentially,
    UnmountFilesystem,
    Wait,
    actions,
    leaves,
)
from agent.discovery import (
    MOUNTED_STATES,
    DiscoveredDataset,
    DiscoveredState,
    LocalState,
)
from agent.policy import (
    DATASET_TRANSITIONS,
    ClusterView,
    DesiredState,
    calculate_changes,
)
from control.model import MINIMUM_DATASET_SIZE, AccessMode, Capacity, Dataset, Lease

ME, OTHER = UUID(int=1), UUID(int=2)
HERE = "i-here"
ROOT = "/shoal"
D = UUID(int=7)
PATH = f"{ROOT}/{D}"
S = DiscoveredState

FOUND = {
    S.NON_EXISTENT: None,
    S.UNATTACHED: DiscoveredDataset(D, S.UNATTACHED, "b1", MINIMUM_DATASET_SIZE),
    S.ATTACHED_ELSEWHERE: DiscoveredDataset(
        D, S.ATTACHED_ELSEWHERE, "b1", MINIMUM_DATASET_SIZE, "i-there"
    ),
    S.ATTACHED_NO_DEVICE: DiscoveredDataset(
        D, S.ATTACHED_NO_DEVICE, "b1", MINIMUM_DATASET_SIZE, HERE
    ),
    S.ATTACHED_NO_FILESYSTEM: DiscoveredDataset(
        D, S.ATTACHED_NO_FILESYSTEM, "b1", MINIMUM_DATASET_SIZE, HERE, "/dev/x"
    ),
    S.ATTACHED_HERE: DiscoveredDataset(
        D, S.ATTACHED_HERE, "b1", MINIMUM_DATASET_SIZE, HERE, "/dev/x"
    ),
    S.MOUNTED_HERE: DiscoveredDataset(
        D, S.MOUNTED_HERE, "b1", MINIMUM_DATASET_SIZE, HERE, "/dev/x", (PATH,)
    ),
    S.MOUNTED_OTHER_PATH: DiscoveredDataset(
        D, S.MOUNTED_OTHER_PATH, "b1", MINIMUM_DATASET_SIZE, HERE, "/dev/x", ("/old",)
    ),
    S.READ_ONLY_ELSEWHERE: DiscoveredDataset(
        D, S.READ_ONLY_ELSEWHERE, "b1", MINIMUM_DATASET_SIZE, readers=frozenset({"i-there"})
    ),
}

RECORDS = {
    DesiredState.MOUNTED_HERE: Dataset(D, ME, MINIMUM_DATASET_SIZE),
    DesiredState.ELSEWHERE: Dataset(D, OTHER),
    DesiredState.DELETED_HERE: Dataset(D, ME, deleted=True, deleted_generation=3),
    DesiredState.DELETED_ELSEWHERE: Dataset(D, OTHER, deleted=True, deleted_generation=3),
    DesiredState.READ_ONLY_HERE: Dataset(D, ME, MINIMUM_DATASET_SIZE, access_mode=AccessMode.ROX),
    DesiredState.UNKNOWN: None,
}


def changes_for(want, have, leased=frozenset()):
    """What calculate_changes does for dataset D given a desired and discovered state."""
    record = RECORDS[want]
    desired = {} if record is None else {D: record}
    found = FOUND[have]
    datasets = {} if found is None else {D: found}
    local = LocalState(instance_id=HERE, datasets=datasets)
    return calculate_changes(desired, ClusterView(ME, leased), local, HERE, ROOT)


def test_every_cell_of_the_table_is_filled():
    """Each desired state has a transition for each discovered state."""
    for want in DesiredState:
        assert set(DATASET_TRANSITIONS[want]) == set(DiscoveredState), want


def test_mounted_here_row():
    """A dataset wanted here is created, attached and mounted in one pass (if formatted), then
    formatted and mounted in one pass."""
    want = DesiredState.MOUNTED_HERE
    assert changes_for(want, S.NON_EXISTENT) == CreateVolume(D, MINIMUM_DATASET_SIZE)
    assert changes_for(want, S.UNATTACHED) == Sequentially(
        (AttachVolume(D, "b1"), MountAttached(D, "b1", PATH, MINIMUM_DATASET_SIZE))
    )
    assert isinstance(changes_for(want, S.ATTACHED_ELSEWHERE), Wait)
    assert isinstance(changes_for(want, S.ATTACHED_NO_DEVICE), Wait)
    assert changes_for(want, S.ATTACHED_NO_FILESYSTEM) == Sequentially(
        (MakeFilesystem(D, "/dev/x"), MountFilesystem(D, "/dev/x", PATH))
    )
    assert changes_for(want, S.ATTACHED_HERE) == MountFilesystem(D, "/dev/x", PATH)
    assert changes_for(want, S.MOUNTED_HERE) == NoOp()
    assert changes_for(want, S.MOUNTED_OTHER_PATH) == UnmountFilesystem(D, "/old")


def test_elsewhere_row():
    """A dataset wanted on another node is unmounted and detached in one pass, then left alone."""
    want = DesiredState.ELSEWHERE
    assert changes_for(want, S.MOUNTED_HERE) == Sequentially(
        (UnmountFilesystem(D, PATH), DetachVolume(D, "b1"))
    )
    assert changes_for(want, S.ATTACHED_HERE) == DetachVolume(D, "b1")
    assert changes_for(want, S.UNATTACHED) == NoOp()
    assert changes_for(want, S.ATTACHED_ELSEWHERE) == NoOp()


def test_deleted_here_row():
    """The primary of a deleted dataset destroys its volume once unattached."""
    want = DesiredState.DELETED_HERE
    assert changes_for(want, S.UNATTACHED) == DestroyVolume(D, "b1")
    assert changes_for(want, S.MOUNTED_HERE) == Sequentially(
        (UnmountFilesystem(D, PATH), DetachVolume(D, "b1"))
    )
    assert changes_for(want, S.ATTACHED_HERE) == DetachVolume(D, "b1")
    assert isinstance(changes_for(want, S.ATTACHED_ELSEWHERE), Wait)
    assert changes_for(want, S.NON_EXISTENT) == NoOp()


def test_deleted_elsewhere_lets_go_but_never_destroys():
    """A node that is not the deleted dataset's primary detaches it and leaves it."""
    want = DesiredState.DELETED_ELSEWHERE
    assert changes_for(want, S.ATTACHED_HERE) == DetachVolume(D, "b1")
    assert changes_for(want, S.UNATTACHED) == NoOp()


def test_lease_held_here_keeps_the_dataset():
    """A node holding a lease does not unmount or detach the dataset."""
    assert isinstance(changes_for(DesiredState.ELSEWHERE, S.MOUNTED_HERE, {D}), Wait)
    assert isinstance(changes_for(DesiredState.ELSEWHERE, S.ATTACHED_HERE, {D}), Wait)


def test_cluster_view_from_leases():
    """Only this node's unexpired leases count."""
    leases = [Lease(D, ME, 20.0), Lease(UUID(int=8), ME, 5.0), Lease(UUID(int=9), OTHER)]
    assert ClusterView.from_leases(ME, leases, 10.0) == ClusterView(ME, frozenset({D}))


def test_many_datasets_are_handled_in_parallel_in_id_order():
    """Independent datasets give one InParallel of their changes, ordered by id."""
    first, second = UUID(int=20), UUID(int=10)
    desired = {first: Dataset(first, ME), second: Dataset(second, ME)}
    local = LocalState(instance_id=HERE)
    tree = calculate_changes(desired, ClusterView(ME), local, HERE, ROOT, default_size=99)
    assert tree == InParallel([CreateVolume(second, 99), CreateVolume(first, 99)])


def test_no_create_that_the_backend_says_cannot_fit():
    """A volume larger than the reported largest volume is not created; one that fits is."""
    small, big = UUID(int=30), UUID(int=31)
    desired = {small: Dataset(small, ME, 64 * 2**20), big: Dataset(big, ME, 2**40)}
    capacity = Capacity("fake", total=2**30, free=2**30, maximum_volume_size=2**30)
    local = LocalState(instance_id=HERE, capacity=capacity)
    tree = calculate_changes(desired, ClusterView(ME), local, HERE, ROOT)
    assert tree == CreateVolume(small, 64 * 2**20)


# -- safety, over every cell and lease -----------------------------------------

cells = st.tuples(
    st.sampled_from(list(DesiredState)), st.sampled_from(list(DiscoveredState)), st.booleans()
)


def leaves_of(want, have, leased):
    """The leaves calculate_changes returns for one cell."""
    return list(leaves(changes_for(want, have, frozenset({D}) if leased else frozenset())))


@given(cells)
def test_only_deleted_volumes_are_destroyed(cell):
    """A volume whose dataset is not deleted (here) is never destroyed."""
    want, have, leased = cell
    if any(isinstance(c, DestroyVolume) for c in leaves_of(want, have, leased)):
        assert want is DesiredState.DELETED_HERE and have is S.UNATTACHED


@given(cells)
def test_unknown_datasets_are_never_touched(cell):
    """Without a record, no action is taken on a volume."""
    want, have, leased = cell
    if want is DesiredState.UNKNOWN:
        assert actions(changes_for(want, have)) == []


@given(cells)
def test_mkfs_only_without_filesystem(cell):
    """MakeFilesystem is produced only for a device found without a filesystem."""
    want, have, leased = cell
    if any(isinstance(c, MakeFilesystem) for c in leaves_of(want, have, leased)):
        assert have is S.ATTACHED_NO_FILESYSTEM


@given(cells)
def test_never_detach_while_mounted_or_unconfirmed(cell):
    """A detach runs only in sequence after unmounting, and never without a confirmed device."""
    want, have, leased = cell
    tree = changes_for(want, have, frozenset({D}) if leased else frozenset())
    steps = list(leaves(tree))
    detaches = [i for i, c in enumerate(steps) if isinstance(c, DetachVolume)]
    if not detaches:
        return
    assert have is not S.ATTACHED_NO_DEVICE
    if have in MOUNTED_STATES:
        unmounts = [i for i, c in enumerate(steps) if isinstance(c, UnmountFilesystem)]
        assert isinstance(tree, Sequentially)
        assert unmounts and max(unmounts) < min(detaches)


@given(cells)
def test_never_attach_what_another_node_holds(cell):
    """A read-write attach only of an unattached volume (or, for a new ReadOnlyMany dataset's
    primary, right after detaching its own read-only attachment to format it); a read-only
    attach only beside other readers, never of a volume attached read-write."""
    want, have, leased = cell
    steps = leaves_of(want, have, leased)
    for i, c in enumerate(steps):
        if isinstance(c, AttachVolume) and c.read_only:
            assert want is DesiredState.READ_ONLY_HERE
            assert have in (S.UNATTACHED, S.READ_ONLY_ELSEWHERE)
        elif isinstance(c, AttachVolume):
            assert have is S.UNATTACHED or (
                want is DesiredState.READ_ONLY_HERE
                and have is S.ATTACHED_NO_FILESYSTEM
                and isinstance(steps[i - 1], DetachVolume)
            )


@given(cells)
def test_read_only_many_is_never_mounted_read_write(cell):
    """Every mount of a ReadOnlyMany dataset is read-only, and only its mounts are."""
    want, have, leased = cell
    for c in leaves_of(want, have, leased):
        if isinstance(c, MountFilesystem):
            assert c.read_only == (want is DesiredState.READ_ONLY_HERE)
        if isinstance(c, MountAttached):  # a read-write mount
            assert want is not DesiredState.READ_ONLY_HERE


@given(cells)
def test_create_only_when_none_exists(cell):
    """CreateVolume is produced only when discovery shows no volume for the dataset."""
    want, have, leased = cell
    if any(isinstance(c, CreateVolume) for c in leaves_of(want, have, leased)):
        assert have is S.NON_EXISTENT
        assert want in (DesiredState.MOUNTED_HERE, DesiredState.READ_ONLY_HERE)


@given(cells)
def test_leased_datasets_are_kept(cell):
    """With a lease held here, a live dataset is never unmounted or detached away."""
    want, have, leased = cell
    if leased and want is DesiredState.ELSEWHERE:
        kinds = {type(c) for c in leaves_of(want, have, leased)}
        assert not kinds & {UnmountFilesystem, DetachVolume}


def test_attach_then_mount_mounts_the_volume_it_attached():
    """The mount made with an attach names the attached volume, the mount point and its size."""
    found = DiscoveredDataset(D, S.UNATTACHED, "b9", 5 * MINIMUM_DATASET_SIZE)
    local = LocalState(instance_id=HERE, datasets={D: found})
    change = calculate_changes({D: RECORDS[DesiredState.MOUNTED_HERE]}, ClusterView(ME), local,
                               HERE, ROOT)
    assert change == Sequentially(
        (AttachVolume(D, "b9"), MountAttached(D, "b9", PATH, 5 * MINIMUM_DATASET_SIZE))
    )


def test_attach_is_never_followed_by_a_format():
    """However a volume is attached, the same pass never formats it: only discovery finds a
    device without a filesystem."""
    for want in (DesiredState.MOUNTED_HERE, DesiredState.READ_ONLY_HERE):
        for have in (S.UNATTACHED, S.ATTACHED_ELSEWHERE, S.READ_ONLY_ELSEWHERE):
            change = changes_for(want, have)
            kinds = [type(a) for a in actions(change)]
            if AttachVolume in kinds:
                assert MakeFilesystem not in kinds, (want, have)
