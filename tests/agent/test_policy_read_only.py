"""The policy's ReadOnlyMany cells: read-only on the primary and every reader, formatted once."""

from uuid import UUID

from attrs import evolve

from agent.backends.interface import BlockDeviceVolume
from agent.changes import (
    AttachVolume,
    CreateVolume,
    DetachVolume,
    MakeFilesystem,
    MountFilesystem,
    NoOp,
    Sequentially,
    Wait,
    sequentially,
)
from agent.discovery import DiscoveredDataset, DiscoveredState, LocalState, classify
from agent.policy import ClusterView, DesiredState, calculate_changes, desired_state
from control.model import (
    MINIMUM_DATASET_SIZE,
    AccessMode,
    Capacity,
    Dataset,
    DataSource,
    SourceKind,
)

ME, PRIMARY, READER = UUID(int=1), UUID(int=2), UUID(int=3)
HERE = str(ME)
ROOT = "/shoal"
D = UUID(int=7)
S = DiscoveredState
SIZE = MINIMUM_DATASET_SIZE
CLUSTER = UUID(int=99)
RESTORED = DataSource(SourceKind.SNAPSHOT, UUID(int=8))


def rox(primary: UUID = ME, readers=frozenset(), source=RESTORED) -> Dataset:
    """A live ReadOnlyMany dataset."""
    return Dataset(D, primary, SIZE, access_mode=AccessMode.ROX, readers=readers, source=source)


def decide(record: Dataset, found: DiscoveredDataset | None) -> object:
    """The change for dataset D on this node."""
    capacity = Capacity("fake", total=2**30, free=2**30, maximum_volume_size=2**30)
    datasets = {} if found is None else {D: found}
    local = LocalState(instance_id=HERE, capacity=capacity, datasets=datasets)
    return calculate_changes({D: record}, ClusterView(ME), local, HERE, ROOT)


def found(state: S, *, read_only: bool = True, readers=frozenset({HERE}), device="/dev/x"):
    """Dataset D's volume as discovered here."""
    return DiscoveredDataset(
        D, state, "b1", SIZE, device=device, read_only=read_only, readers=readers
    )


def test_primary_and_readers_want_it_read_only_here():
    """A ReadOnlyMany dataset is READ_ONLY_HERE on its primary and each reader, else elsewhere."""
    assert desired_state(rox(ME), ME) is DesiredState.READ_ONLY_HERE
    assert desired_state(rox(PRIMARY, frozenset({ME})), ME) is DesiredState.READ_ONLY_HERE
    assert desired_state(rox(PRIMARY, frozenset({READER})), ME) is DesiredState.ELSEWHERE


def test_reader_attaches_read_only_beside_other_readers():
    """Attached read-only elsewhere: this reader attaches read-only too."""
    volume = DiscoveredDataset(D, S.READ_ONLY_ELSEWHERE, "b1", SIZE, readers=frozenset({"x"}))
    assert decide(rox(PRIMARY, frozenset({ME})), volume) == AttachVolume(
        D, "b1", read_only=True
    )


def test_attached_read_only_is_mounted_read_only():
    """A read-only attachment with a filesystem is mounted read-only at the mount point."""
    change = decide(rox(PRIMARY, frozenset({ME})), found(S.ATTACHED_HERE))
    assert change == MountFilesystem(D, "/dev/x", f"{ROOT}/{D}", read_only=True)


def test_reader_waits_for_the_primary_to_create():
    """Only the primary creates (restores) the volume; a reader waits."""
    assert isinstance(decide(rox(PRIMARY, frozenset({ME})), None), Wait)
    assert isinstance(decide(rox(ME, source=None), None), CreateVolume)


def test_new_dataset_primary_formats_read_write_then_returns_to_read_only():
    """An empty new dataset: its primary swaps to a read-write attach, formats, lets go."""
    record = rox(ME, source=None)
    assert decide(record, found(S.ATTACHED_NO_FILESYSTEM)) == sequentially(
        [DetachVolume(D, "b1", read_only=True), AttachVolume(D, "b1", 0)]
    )
    rw = found(S.ATTACHED_NO_FILESYSTEM, read_only=False, readers=frozenset())
    assert decide(record, rw) == MakeFilesystem(D, "/dev/x", "ext4")
    formatted = found(S.ATTACHED_HERE, read_only=False, readers=frozenset())
    assert decide(record, formatted) == DetachVolume(D, "b1")


def test_never_formats_while_another_node_reads():
    """With another reader attached, the primary waits instead of attaching read-write."""
    volume = found(S.ATTACHED_NO_FILESYSTEM, readers=frozenset({HERE, "x"}))
    assert isinstance(decide(rox(ME, source=None), volume), Wait)


def test_reader_without_filesystem_lets_go_and_waits():
    """A reader seeing no filesystem detaches (so the primary can format) and waits."""
    change = decide(rox(PRIMARY, frozenset({ME}), source=None), found(S.ATTACHED_NO_FILESYSTEM))
    assert isinstance(change, Sequentially)
    steps = change.changes
    assert steps[0] == DetachVolume(D, "b1", read_only=True) and isinstance(steps[1], Wait)


def test_removed_reader_unmounts_and_detaches_its_read_only_attachment():
    """A node no longer a reader lets go of its read-only attachment only."""
    mounted = DiscoveredDataset(
        D, S.MOUNTED_HERE, "b1", SIZE, device="/dev/x", mount_paths=(f"{ROOT}/{D}",),
        read_only=True, readers=frozenset({HERE}),
    )
    change = decide(rox(PRIMARY, frozenset({READER})), mounted)
    assert DetachVolume(D, "b1", read_only=True) in change.changes


def test_read_write_dataset_waits_for_readers():
    """A ReadWriteOnce primary never attaches a volume that nodes read."""
    volume = DiscoveredDataset(D, S.READ_ONLY_ELSEWHERE, "b1", SIZE, readers=frozenset({"x"}))
    assert isinstance(decide(Dataset(D, ME, SIZE), volume), Wait)


def test_discovery_tells_read_only_attachments():
    """A volume read here is attached here (read-only); read only elsewhere is its own state."""
    volume = BlockDeviceVolume("b1", SIZE, CLUSTER, D, readers=frozenset({HERE, "x"}))
    local = classify([volume], HERE, {"b1": "/dev/x"}, frozenset({"/dev/x"}), [], ROOT)
    assert local.datasets[D].state is S.ATTACHED_HERE and local.datasets[D].read_only
    local = classify([volume], "y", {}, frozenset(), [], ROOT)
    assert local.datasets[D].state is S.READ_ONLY_ELSEWHERE


def test_create_goes_to_the_dataset_backend_within_its_capacity():
    """On a node with several backends a new volume is made on its dataset's backend, and
    only if that backend has room (another backend's room does not count)."""
    shared = Capacity("loopback", total=2**30, free=2**30, maximum_volume_size=2**30)
    full = Capacity("local", total=2**30, free=0, maximum_volume_size=0, shared=False)
    record = Dataset(D, ME, SIZE, backend="local")
    local = LocalState(instance_id=HERE, capacity=shared, capacities=(shared, full))
    assert calculate_changes({D: record}, ClusterView(ME), local, HERE, ROOT) == NoOp()
    roomy = evolve(full, free=2**30, maximum_volume_size=2**30)
    local = LocalState(instance_id=HERE, capacity=shared, capacities=(shared, roomy))
    change = calculate_changes({D: record}, ClusterView(ME), local, HERE, ROOT)
    assert change == CreateVolume(D, SIZE, "local")
