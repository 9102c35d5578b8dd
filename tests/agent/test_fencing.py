"""The agent's fencing decisions (docs/failover.md), pure: epochs, fences, leftovers, lease."""

from uuid import UUID

from attrs import evolve
from hypothesis import given
from hypothesis import strategies as st

from agent.backends.interface import FencedAttachment
from agent.changes import (
    AttachVolume,
    CleanUpFenced,
    CreateVolume,
    DetachVolume,
    FenceVolume,
    MakeFilesystem,
    MountAttached,
    MountFilesystem,
    NoOp,
    Sequentially,
    ShutDownFilesystem,
    UnmountFilesystem,
    Wait,
    actions,
    leaves,
)
from agent.discovery import DiscoveredDataset, DiscoveredState, Leftover, LocalState
from agent.fencing import (
    FENCED,
    SELF_FENCED,
    STALE_EPOCH,
    FenceView,
    Lease,
    dataset_of_mount,
    self_fence_changes,
)
from agent.fs.interface import Mount
from agent.policy import ClusterView, DesiredState, calculate_changes
from control.model import MINIMUM_DATASET_SIZE, AccessMode, Dataset

ME, OTHER = UUID(int=1), UUID(int=2)
HERE, THERE = str(ME), str(OTHER)
ROOT = "/shoal"
D = UUID(int=7)
PATH = f"{ROOT}/{D}"
S = DiscoveredState
SIZE = MINIMUM_DATASET_SIZE

FOUND = {
    S.NON_EXISTENT: None,
    S.UNATTACHED: DiscoveredDataset(D, S.UNATTACHED, "b1", SIZE, epoch=3),
    S.ATTACHED_ELSEWHERE: DiscoveredDataset(D, S.ATTACHED_ELSEWHERE, "b1", SIZE, THERE, epoch=3),
    S.ATTACHED_NO_DEVICE: DiscoveredDataset(D, S.ATTACHED_NO_DEVICE, "b1", SIZE, HERE, epoch=3),
    S.ATTACHED_NO_FILESYSTEM: DiscoveredDataset(
        D, S.ATTACHED_NO_FILESYSTEM, "b1", SIZE, HERE, "/dev/x", epoch=3
    ),
    S.ATTACHED_HERE: DiscoveredDataset(D, S.ATTACHED_HERE, "b1", SIZE, HERE, "/dev/x", epoch=3),
    S.MOUNTED_HERE: DiscoveredDataset(
        D, S.MOUNTED_HERE, "b1", SIZE, HERE, "/dev/x", (PATH,), epoch=3
    ),
    S.MOUNTED_OTHER_PATH: DiscoveredDataset(
        D, S.MOUNTED_OTHER_PATH, "b1", SIZE, HERE, "/dev/x", ("/old",), epoch=3
    ),
    S.READ_ONLY_ELSEWHERE: DiscoveredDataset(
        D, S.READ_ONLY_ELSEWHERE, "b1", SIZE, epoch=3, readers=frozenset({THERE})
    ),
}

RECORDS = {
    DesiredState.MOUNTED_HERE: Dataset(D, ME, SIZE, epoch=3),
    DesiredState.ELSEWHERE: Dataset(D, OTHER, epoch=4),
    DesiredState.DELETED_HERE: Dataset(D, ME, deleted=True, deleted_generation=3, epoch=3),
    DesiredState.DELETED_ELSEWHERE: Dataset(
        D, OTHER, deleted=True, deleted_generation=3, epoch=4
    ),
    DesiredState.READ_ONLY_HERE: Dataset(D, ME, SIZE, epoch=3, access_mode=AccessMode.ROX),
    DesiredState.UNKNOWN: None,
}


def decide(
    record: Dataset | None,
    found: DiscoveredDataset | None,
    fence: FenceView = FenceView(),
    leased: frozenset[UUID] = frozenset(),
    leftovers: tuple[Leftover, ...] = (),
):
    """calculate_changes for dataset D on node ME."""
    desired = {} if record is None else {D: record}
    local = LocalState(HERE, {} if found is None else {D: found}, leftovers=leftovers)
    view = ClusterView(ME, leased_here=leased, fence=fence)
    return calculate_changes(desired, view, local, HERE, ROOT)


# -- epochs -------------------------------------------------------------------


def test_attach_carries_the_epoch():
    """The primary attaches an unattached volume with its dataset's epoch (then mounts it)."""
    record = evolve(RECORDS[DesiredState.MOUNTED_HERE], epoch=5)
    attach, _mount = decide(record, FOUND[S.UNATTACHED]).changes
    assert attach == AttachVolume(D, "b1", 5)


def test_stale_epoch_never_attaches():
    """A volume the backend saw at a newer epoch is not attached: the configuration is stale."""
    record = evolve(RECORDS[DesiredState.MOUNTED_HERE], epoch=2)
    for state in (S.UNATTACHED, S.ATTACHED_ELSEWHERE):
        change = decide(record, FOUND[state], FenceView(fenced_nodes=frozenset({THERE})))
        assert isinstance(change, Wait) and change.code == STALE_EPOCH
        assert "epoch 3" in change.reason and "epoch 2" in change.reason


# -- a new primary and a fenced holder ---------------------------------------------


def test_fenced_holder_is_fenced_then_attached():
    """A volume attached to a fenced node is fenced in the backend, then attached (and mounted)
    here."""
    view = FenceView(fenced_nodes=frozenset({THERE}))
    change = decide(RECORDS[DesiredState.MOUNTED_HERE], FOUND[S.ATTACHED_ELSEWHERE], view)
    assert isinstance(change, Sequentially)
    fence, then = change.changes
    assert isinstance(then, Sequentially)
    attach, mount = then.changes
    assert isinstance(mount, MountAttached) and mount.blockdevice_id == "b1"
    assert isinstance(fence, FenceVolume)
    assert (fence.blockdevice_id, fence.node) == ("b1", THERE)
    assert THERE in fence.reason and "fenced" in fence.reason
    assert attach == AttachVolume(D, "b1", 3)


def test_unfenced_holder_is_waited_for():
    """A volume attached to a node that is not fenced is waited for, never fenced."""
    view = FenceView(fenced_nodes=frozenset({"someone-else"}))
    change = decide(RECORDS[DesiredState.MOUNTED_HERE], FOUND[S.ATTACHED_ELSEWHERE], view)
    assert isinstance(change, Wait) and change.code == "waiting_for_node"


def test_deleted_dataset_held_by_fenced_node_is_fenced():
    """The primary of a deleted dataset fences a fenced holder (its destroy comes next)."""
    view = FenceView(fenced_nodes=frozenset({THERE}))
    change = decide(RECORDS[DesiredState.DELETED_HERE], FOUND[S.ATTACHED_ELSEWHERE], view)
    assert isinstance(change, FenceVolume) and change.node == THERE


def test_fenced_node_fences_nobody():
    """A node that is itself fenced does not take a fenced node's volume."""
    view = FenceView(fenced=True, fenced_nodes=frozenset({HERE, THERE}))
    change = decide(RECORDS[DesiredState.MOUNTED_HERE], FOUND[S.ATTACHED_ELSEWHERE], view)
    assert actions(change) == []


# -- a fenced node --------------------------------------------------------------


def test_fenced_node_attaches_and_mounts_nothing():
    """A fenced node holds every dataset it would create, attach, format or mount, saying so."""
    view = FenceView(fenced=True)
    record = RECORDS[DesiredState.MOUNTED_HERE]
    for state in (S.NON_EXISTENT, S.UNATTACHED, S.ATTACHED_NO_FILESYSTEM, S.ATTACHED_HERE):
        change = decide(record, FOUND[state], view)
        assert isinstance(change, Wait) and change.code == FENCED, state
        assert "fenced by the control service" in change.reason


def test_fenced_node_keeps_a_mount_still_primary_here():
    """A dataset still primary on the fenced node stays as it is (nothing else may hold it)."""
    change = decide(RECORDS[DesiredState.MOUNTED_HERE], FOUND[S.MOUNTED_HERE], FenceView(True))
    assert change == NoOp()


def test_fenced_node_lets_go_even_when_leased():
    """A fenced node shuts down, unmounts lazily and detaches a dataset primary elsewhere."""
    change = decide(
        RECORDS[DesiredState.ELSEWHERE],
        FOUND[S.MOUNTED_HERE],
        FenceView(fenced=True),
        leased=frozenset({D}),
    )
    assert isinstance(change, Sequentially)
    shutdown, unmount, detach = change.changes
    assert isinstance(shutdown, ShutDownFilesystem) and shutdown.path == PATH
    assert unmount == UnmountFilesystem(D, PATH, lazy=True)
    assert detach == DetachVolume(D, "b1")


def test_unfenced_node_keeps_its_lease():
    """Without a fence, a leased dataset primary elsewhere is kept (the lease rule)."""
    change = decide(
        RECORDS[DesiredState.ELSEWHERE], FOUND[S.MOUNTED_HERE], leased=frozenset({D})
    )
    assert isinstance(change, Wait) and change.code == "leased"


# -- a self-fenced node ------------------------------------------------------


def test_self_fenced_node_mounts_nothing():
    """After its lease ran out, a node mounts, formats and attaches nothing; mounts stay."""
    view = FenceView(self_fenced=True)
    record = RECORDS[DesiredState.MOUNTED_HERE]
    for state in (S.UNATTACHED, S.ATTACHED_NO_FILESYSTEM, S.ATTACHED_HERE):
        change = decide(record, FOUND[state], view)
        assert isinstance(change, Wait) and change.code == SELF_FENCED
    assert decide(record, FOUND[S.MOUNTED_HERE], view) == NoOp()


def test_self_fence_changes_cover_every_own_mount():
    """A self-fence shuts down and lazily unmounts every mount under the root, nothing else."""
    other = UUID(int=9)
    mounts = [
        Mount("/dev/a", PATH),
        Mount("/dev/b", f"{ROOT}/{other}"),
        Mount("/dev/c", "/elsewhere/x"),
        Mount("/dev/d", f"{ROOT}/not-a-dataset"),
    ]
    change = self_fence_changes(mounts, ROOT, "lease ran out")
    paths = [leaf.path for leaf in leaves(change) if isinstance(leaf, ShutDownFilesystem)]
    assert sorted(paths) == sorted([PATH, f"{ROOT}/{other}", f"{ROOT}/not-a-dataset"])
    unmounts = [leaf for leaf in leaves(change) if isinstance(leaf, UnmountFilesystem)]
    assert all(u.lazy for u in unmounts) and len(unmounts) == 3
    assert UnmountFilesystem(D, PATH, lazy=True) in unmounts
    assert self_fence_changes([], ROOT, "x") == NoOp()


def test_dataset_of_mount():
    """Only ``<root>/<uuid>`` names a dataset."""
    assert dataset_of_mount(ROOT, PATH + "/") == D
    assert dataset_of_mount(ROOT, f"{ROOT}/x") is None
    assert dataset_of_mount(ROOT, f"/other/{D}") is None


# -- leftovers ---------------------------------------------------------------


def test_leftovers_shut_down_unmounted_and_cleaned_up():
    """A fenced leftover's mount is shut down and unmounted, then the leftover cleaned up."""
    attachment = FencedAttachment("b1", "/dev/loop9", "read-only loop device /dev/loop9")
    leftover = Leftover(attachment, D, (PATH,))
    change = decide(None, None, leftovers=(leftover,))
    assert change == Sequentially(
        [
            ShutDownFilesystem(D, PATH, "its volume was fenced away from this node"),
            UnmountFilesystem(D, PATH, lazy=True),
            CleanUpFenced(D, attachment),
        ]
    )


def test_unmounted_leftover_only_cleaned_up():
    """A leftover nothing mounts is cleaned up at once."""
    attachment = FencedAttachment("b1", None, "the record")
    assert decide(None, None, leftovers=(Leftover(attachment),)) == CleanUpFenced(
        None, attachment
    )


# -- properties over every cell ----------------------------------------------------

views = st.builds(
    FenceView,
    fenced=st.booleans(),
    fenced_nodes=st.frozensets(st.sampled_from([HERE, THERE, "x"])),
    self_fenced=st.booleans(),
)
cells = st.tuples(
    st.sampled_from(list(DesiredState)),
    st.sampled_from(list(DiscoveredState)),
    views,
    st.integers(0, 6),
    st.booleans(),
)


def _decide_cell(want, have, view, epoch, leased):
    record = RECORDS[want]
    if record is not None:
        record = evolve(record, epoch=epoch)
    return decide(record, FOUND[have], view, leased=frozenset({D}) if leased else frozenset())


@given(cells)
def test_holding_node_never_attaches_formats_or_mounts(cell):
    """A fenced or self-fenced node never creates, attaches, formats, mounts or fences."""
    if not cell[2].holding:
        return
    done = actions(_decide_cell(*cell))
    forbidden = (
        CreateVolume, AttachVolume, MakeFilesystem, MountFilesystem, MountAttached, FenceVolume
    )
    assert not [a for a in done if isinstance(a, forbidden)]


@given(cells)
def test_attach_only_with_the_record_epoch_never_stale(cell):
    """Every attach carries the record's epoch, and none happens below the backend's epoch."""
    want, have, _, epoch, _ = cell
    for action in actions(_decide_cell(*cell)):
        if isinstance(action, AttachVolume) and not action.read_only:
            assert action.epoch == epoch
            assert epoch >= FOUND[have].epoch


@given(cells)
def test_only_fenced_holders_are_fenced(cell):
    """A backend fence names the volume's holder, a fenced node other than this one."""
    _, have, view, _, _ = cell
    for action in actions(_decide_cell(*cell)):
        if isinstance(action, FenceVolume):
            assert action.node == FOUND[have].attached_to
            assert action.node in view.fenced_nodes and action.node != HERE


@given(cells)
def test_shutdown_only_when_fenced(cell):
    """Without a fence (and no leftovers), no filesystem is shut down or lazily unmounted."""
    _, _, view, _, _ = cell
    lazy = [
        a
        for a in actions(_decide_cell(*cell))
        if isinstance(a, ShutDownFilesystem)
        or (isinstance(a, UnmountFilesystem) and a.lazy)
    ]
    assert not lazy or view.fenced


# -- the lease ---------------------------------------------------------------


def test_lease_runs_from_the_latest_send():
    """The lease runs from the latest send that succeeded, for the length the service gave."""
    lease = Lease().with_length(5.0)
    assert lease.expires_at() is None and not lease.expired(1e9)
    lease = lease.renewed(10.0).renewed(8.0)
    assert lease.renewed_at == 10.0 and lease.expires_at() == 15.0
    assert not lease.expired(14.99) and lease.expired(15.0)
    assert lease.with_length(None).length == 5.0


@given(st.lists(st.floats(0, 1e6), min_size=1), st.floats(0.1, 100))
def test_lease_expiry_is_monotone(sends, length):
    """Renewals never move the lease's end earlier, whatever order the answers come in."""
    lease = Lease(length=length)
    end = float("-inf")
    for sent in sends:
        lease = lease.renewed(sent)
        current = lease.expires_at()
        assert current is not None and current >= end
        end = current
    assert end == max(sends) + length

