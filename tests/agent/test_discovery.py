"""Tests for discovery, classification and the report rule."""

from uuid import UUID, uuid4

from attrs import evolve

from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage
from agent.backends.interface import BlockDeviceVolume
from agent.discovery import (
    GROW_SLACK,
    DiscoveredDataset,
    DiscoveredState,
    LocalState,
    classify,
    datasets_to_ask_about,
    local_state_to_report,
    mountable,
)
from agent.fs.fake import FakeFilesystems
from agent.fs.interface import FilesystemInfo, Mount
from agent.kernlog import FakeKernelLog
from agent.observe import discover
from control.model import Condition, ConditionKind, Dataset, DatasetState, VolumeStatus

HERE, THERE = "i-here", "i-there"
ME, OTHER = UUID(int=1), UUID(int=2)
CLUSTER = UUID(int=99)
D = UUID(int=7)
ROOT = "/shoal"
PATH = f"{ROOT}/{D}"


def volume(attached_to=None, blockdevice_id="b1", dataset_id=D):
    """A volume of dataset ``D``."""
    return BlockDeviceVolume(blockdevice_id, 64, CLUSTER, dataset_id, attached_to)


def state_of(volumes, devices=None, formatted=(), mounts=(), created=()):
    """Classify raw facts and return the state of dataset ``D``."""
    local = classify(volumes, HERE, devices or {}, frozenset(formatted), mounts, ROOT, created)
    found = local.datasets.get(D)
    return found.state if found else DiscoveredState.NON_EXISTENT


def test_classify_each_state():
    """Each combination of raw facts maps to its discovered state."""
    dev = {"b1": "/dev/x"}
    assert state_of([]) is DiscoveredState.NON_EXISTENT
    assert state_of([volume()]) is DiscoveredState.UNATTACHED
    assert state_of([volume(THERE)]) is DiscoveredState.ATTACHED_ELSEWHERE
    assert state_of([volume(HERE)]) is DiscoveredState.ATTACHED_NO_DEVICE
    assert state_of([volume(HERE)], dev) is DiscoveredState.ATTACHED_NO_FILESYSTEM
    assert state_of([volume(HERE)], dev, ["/dev/x"]) is DiscoveredState.ATTACHED_HERE
    mounted = [Mount("/dev/x", PATH)]
    assert state_of([volume(HERE)], dev, ["/dev/x"], mounted) is DiscoveredState.MOUNTED_HERE
    other = [Mount("/dev/x", "/elsewhere")]
    assert state_of([volume(HERE)], dev, ["/dev/x"], other) is DiscoveredState.MOUNTED_OTHER_PATH


def test_recently_created_volume_counts_when_not_listed():
    """A volume this agent created but the listing lags on is still discovered."""
    assert state_of([], created=[volume()]) is DiscoveredState.UNATTACHED
    assert state_of([volume(THERE)], created=[volume()]) is DiscoveredState.ATTACHED_ELSEWHERE


def test_duplicate_volumes_prefer_the_attached_one():
    """With two volumes for one dataset, the one attached here is the dataset's."""
    local = classify(
        [volume(None, "a"), volume(HERE, "b")], HERE, {"b": "/dev/b"}, frozenset(), [], ROOT
    )
    assert local.datasets[D].blockdevice_id == "b"


def test_discover_against_fakes():
    """discover() observes a mounted volume through the fake backend and filesystems."""
    storage = FakeStorage()
    backend = FakeBlockDeviceAPI(storage, CLUSTER, HERE)
    fs = FakeFilesystems(storage, HERE)
    created = backend.create_volume(D, 64 * 1024 * 1024)
    backend.attach_volume(created.blockdevice_id, HERE)
    device = backend.get_device_path(created.blockdevice_id)
    fs.make_filesystem(device)
    fs.mount(device, PATH)
    local = discover(backend, fs, ROOT, HERE)
    found = local.datasets[D]
    assert (found.state, found.device, found.mount_paths) == (
        DiscoveredState.MOUNTED_HERE,
        device,
        (PATH,),
    )


def test_discover_observes_capacity_and_kernel_errors():
    """discover() records the backend's capacity and the kernel's lines for devices here only."""
    storage = FakeStorage(total=256 * 1024 * 1024)
    backend = FakeBlockDeviceAPI(storage, CLUSTER, HERE)
    created = backend.create_volume(D, 64 * 1024 * 1024)
    backend.attach_volume(created.blockdevice_id, HERE)
    device = backend.get_device_path(created.blockdevice_id)
    kernel = FakeKernelLog()
    kernel.log(device, "Buffer I/O error on dev fake")
    kernel.log("/dev/elsewhere", "Buffer I/O error on dev elsewhere")
    local = discover(backend, FakeFilesystems(storage, HERE), ROOT, HERE, kernel_log=kernel)
    assert local.capacity is not None and local.capacity.free == 192 * 1024 * 1024
    assert dict(local.device_errors) == {device: "Buffer I/O error on dev fake"}


def test_discover_treats_missing_device_as_stale():
    """A volume listed as attached here that the backend does not know is ATTACHED_NO_DEVICE."""
    storage = FakeStorage()
    backend = FakeBlockDeviceAPI(storage, CLUSTER, HERE)

    class Stale:
        """The fake backend, but listing a destroyed volume as attached here."""

        def __getattr__(self, name):
            return getattr(backend, name)

        def list_volumes(self):
            return [volume(HERE, "gone")]

    local = discover(Stale(), FakeFilesystems(storage, HERE), ROOT, HERE)
    assert local.datasets[D].state is DiscoveredState.ATTACHED_NO_DEVICE


def found(state, **kw):
    """A discovered dataset ``D`` in ``state``."""
    return DiscoveredDataset(dataset_id=D, state=state, blockdevice_id="b1", size=64, **kw)


def report(found_dataset, primary):
    """What node ME reports for one discovered dataset whose primary is ``primary``."""
    local = LocalState(instance_id=HERE, datasets={D: found_dataset})
    desired = {} if primary is None else {D: Dataset(D, primary, deleted=True)}
    return local_state_to_report(local, desired, 5, "era", ME, 10.0).datasets.get(D)


def test_report_rule():
    """Attached volumes are reported by their holder, others by their dataset's primary."""
    mounted = found(DiscoveredState.MOUNTED_HERE, device="/dev/x", mount_paths=(PATH,))
    assert report(mounted, None) == DatasetState(D, VolumeStatus.MOUNTED, 64, "/dev/x", PATH)
    attached = found(DiscoveredState.ATTACHED_HERE, device="/dev/x")
    assert report(attached, OTHER) == DatasetState(D, VolumeStatus.ATTACHED, 64, "/dev/x")
    assert report(found(DiscoveredState.UNATTACHED), ME) == DatasetState(
        D, VolumeStatus.PRESENT, 64
    )
    assert report(found(DiscoveredState.ATTACHED_ELSEWHERE), ME).status is VolumeStatus.PRESENT
    assert report(found(DiscoveredState.UNATTACHED), OTHER) is None
    assert report(found(DiscoveredState.UNATTACHED), None) is None


def test_report_gives_the_filesystem_size_until_it_is_grown():
    """A mounted volume whose filesystem is not grown yet reports the filesystem's size (what
    its users can fill), so `shoal dataset resize --wait` waits for the grow too."""
    grown = 256 * 2**20
    small = DiscoveredDataset(D, DiscoveredState.MOUNTED_HERE, "b1", grown, device="/dev/x",
                              mount_paths=(PATH,), filesystem=FilesystemInfo("xfs", 64 * 2**20))
    assert report(small, None).maximum_size == 64 * 2**20
    done = evolve(small, filesystem=FilesystemInfo("xfs", grown - 2**20))
    assert report(done, None).maximum_size == grown


def test_report_carries_generation_era_and_time():
    """The report says which generation, era and time its observation belongs to."""
    state = local_state_to_report(LocalState(instance_id=HERE), {}, 5, "era-2", ME, 10.0)
    assert (state.node_uuid, state.generation, state.era, state.reported_at) == (
        ME,
        5,
        "era-2",
        10.0,
    )


def test_report_carries_discovery_conditions_then_the_loop_s():
    """Conditions discovery found and those the loop remembers both reach the report."""
    pool_low = Condition(None, ConditionKind.ERROR, "pool_low", "pool almost full", 1.0)
    failing = Condition(D, ConditionKind.ERROR, "too_large", "create failed", 2.0, "create")
    local = LocalState(instance_id=HERE, conditions=(pool_low,))
    state = local_state_to_report(local, {}, 5, "era", ME, 10.0, conditions=(failing,))
    assert state.conditions == (pool_low, failing)


def test_datasets_to_ask_about_are_those_attached_here():
    """The agent asks for the records of volumes attached to it, not of the others."""
    other = uuid4()
    local = LocalState(
        instance_id=HERE,
        datasets={
            D: found(DiscoveredState.MOUNTED_HERE, mount_paths=(PATH,)),
            other: DiscoveredDataset(other, DiscoveredState.UNATTACHED),
        },
    )
    assert datasets_to_ask_about(local) == frozenset({D})


def test_unknown_volumes_are_asked_about_then_reported_orphans():
    """A volume here or unattached with no record is asked about, and reported if none exists."""
    mine, lost, far = UUID(int=10), UUID(int=11), UUID(int=12)
    volumes = [
        volume(HERE, "b-mine", mine),
        volume(None, "b-lost", lost),
        volume(THERE, "b-far", far),
    ]
    local = classify(volumes, HERE, {}, frozenset(), (), ROOT)
    desired = {mine: Dataset(dataset_id=mine, primary=ME)}
    assert datasets_to_ask_about(local, desired) == frozenset({mine, lost})
    first = local_state_to_report(local, desired, 5, "era", ME, 10.0)
    assert first.orphans == ()
    asked = frozenset({mine, lost})
    report = local_state_to_report(local, desired, 5, "era", ME, 10.0, asked=asked)
    assert [(o.blockdevice_id, o.dataset_id, o.size) for o in report.orphans] == [
        ("b-lost", lost, 64)
    ]
    found_record = {**desired, lost: Dataset(dataset_id=lost, primary=OTHER, deleted=True)}
    assert local_state_to_report(local, found_record, 5, "era", ME, 10.0, asked).orphans == ()


def test_questions_about_unknown_volumes_are_bounded():
    """At most ORPHAN_QUESTIONS unknown datasets are asked about in one pass."""
    from agent.discovery import ORPHAN_QUESTIONS

    volumes = [volume(None, f"b{i:04d}", UUID(int=1000 + i)) for i in range(ORPHAN_QUESTIONS + 5)]
    local = classify(volumes, HERE, {}, frozenset(), (), ROOT)
    asked = datasets_to_ask_about(local, {})
    assert asked == {UUID(int=1000 + i) for i in range(ORPHAN_QUESTIONS)}


def test_mountable_right_after_attach():
    """A just-attached device is mounted at once only with a known filesystem, and not an ext4
    that must grow offline first (an xfs grows once mounted)."""
    size = 64 * 1024 * 1024
    assert not mountable(None, size)
    assert mountable(FilesystemInfo("ext4", size), size)
    assert mountable(FilesystemInfo("ext4", size - GROW_SLACK), size)
    assert not mountable(FilesystemInfo("ext4", size - GROW_SLACK - 1), size)
    assert mountable(FilesystemInfo("xfs", size // 2), size)
    assert mountable(FilesystemInfo("ext4", size // 2), None)
