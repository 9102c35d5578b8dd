"""The effects of a pass's changes, added to its observation before the next one (pure)."""

from __future__ import annotations

from uuid import UUID, uuid4

from attrs import evolve

from agent.backends.interface import BlockDeviceSnapshot, BlockDeviceVolume
from agent.changes import (
    AttachVolume,
    CreateSnapshot,
    DetachVolume,
    MakeFilesystem,
    MountAttached,
    MountFilesystem,
    Sequentially,
    UnmountFilesystem,
)
from agent.discovery import DiscoveredState, classify, local_state_to_report, with_snapshots
from agent.effects import AttachedMount, after_changes, all_known, reported_after
from agent.fs.interface import FilesystemInfo, Mount
from control.model import DatasetState, VolumeStatus

HERE = "i-here"
ME = UUID(int=1)
CLUSTER = UUID(int=99)
D = UUID(int=7)
ROOT = "/shoal"
PATH = f"{ROOT}/{D}"
DEVICE = "/dev/x"
MiB = 1024 * 1024


def observed(mounts: tuple[Mount, ...] = ()):
    """The observation of dataset ``D``'s volume attached here on ``DEVICE`` with a filesystem."""
    volume = BlockDeviceVolume("b1", 64, CLUSTER, D, HERE)
    return classify([volume], HERE, {"b1": DEVICE}, frozenset({DEVICE}), mounts, ROOT, ())


def snapshot(snapshot_id: str) -> BlockDeviceSnapshot:
    """A snapshot of ``D`` as the backend returns it."""
    return BlockDeviceSnapshot(snapshot_id, "b1", D, 64, CLUSTER)


def test_mounted_filesystem_is_reported_mounted() -> None:
    """A mount done makes the dataset mounted there, as the next observation would show."""
    local = observed()
    assert local.datasets[D].state is DiscoveredState.ATTACHED_HERE
    after = after_changes(local, [(MountFilesystem(D, DEVICE, PATH), None)])
    assert after == observed((Mount(DEVICE, PATH),))
    report = local_state_to_report(after, {}, 1, "era", ME, 0.0)
    assert report.datasets[D] == DatasetState(
        dataset_id=D, status=VolumeStatus.MOUNTED, maximum_size=64, device=DEVICE, path=PATH
    )


def test_mount_of_another_device_adds_nothing() -> None:
    """A mount of a device the pass did not see for the dataset is left to the next pass."""
    local = observed()
    assert after_changes(local, [(MountFilesystem(D, "/dev/y", PATH), None)]) == local
    assert after_changes(local, [(MountFilesystem(uuid4(), DEVICE, PATH), None)]) == local


def test_snapshot_made_is_listed_beside_the_others() -> None:
    """A snapshot made is listed as the backend returned it, the ones observed kept."""
    old, new = str(uuid4()), str(uuid4())
    local = with_snapshots(observed(), [snapshot(old)])
    after = after_changes(local, [(CreateSnapshot(D, new, "b1"), snapshot(new))])
    assert after == with_snapshots(observed(), [snapshot(old), snapshot(new)])


def test_other_changes_add_nothing() -> None:
    """Changes whose effects are not known ahead wait for the next observation."""
    local = observed((Mount(DEVICE, PATH),))
    assert after_changes(local, [(UnmountFilesystem(D, PATH), None)]) == local
    assert after_changes(local, []) == local


def test_volume_attached_and_mounted_is_reported_mounted() -> None:
    """A volume seen unattached, then attached and mounted in the pass, is reported mounted on
    the device the mount returned, at the filesystem's size."""
    volume = BlockDeviceVolume("b1", 64 * MiB, CLUSTER, D, None)
    local = classify([volume], HERE, {}, frozenset(), (), ROOT, ())
    assert local.datasets[D].state is DiscoveredState.UNATTACHED
    mounted = AttachedMount(DEVICE, FilesystemInfo("xfs", 32 * MiB))
    after = after_changes(local, [(MountAttached(D, "b1", PATH, 64 * MiB), mounted)])
    found = after.datasets[D]
    assert (found.state, found.device, found.mount_paths) == (
        DiscoveredState.MOUNTED_HERE, DEVICE, (PATH,)
    )
    report = local_state_to_report(after, {}, 1, "era", ME, 0.0)
    assert report.datasets[D] == DatasetState(
        dataset_id=D, status=VolumeStatus.MOUNTED, maximum_size=32 * MiB, device=DEVICE, path=PATH
    )


def test_attach_whose_mount_was_left_for_later_adds_nothing() -> None:
    """A mount after an attach that did nothing (no filesystem yet) leaves the observation as
    it was; so does one of another volume."""
    volume = BlockDeviceVolume("b1", 64 * MiB, CLUSTER, D, None)
    local = classify([volume], HERE, {}, frozenset(), (), ROOT, ())
    assert after_changes(local, [(MountAttached(D, "b1", PATH, 64 * MiB), None)]) == local
    other = AttachedMount(DEVICE, FilesystemInfo("ext4", 64 * MiB))
    assert after_changes(local, [(MountAttached(D, "b2", PATH, 64 * MiB), other)]) == local


def test_volume_detached_is_no_longer_reported_attached_here() -> None:
    """A volume detached in the pass is reported as the next observation would show it: no longer
    on this node (so the node it moves to is woken at once); a read-only detach, or one of
    another volume, adds nothing."""
    local = observed()
    after = after_changes(local, [(DetachVolume(D, "b1"), None)])
    unattached = BlockDeviceVolume("b1", 64, CLUSTER, D, None)
    assert after == evolve(local, datasets=classify([unattached], HERE, {}, frozenset(), (),
                                                    ROOT, ()).datasets)
    assert D not in local_state_to_report(after, {}, 1, "era", ME, 0.0).datasets
    assert after_changes(local, [(DetachVolume(D, "b1", read_only=True), None)]) == local
    assert after_changes(local, [(DetachVolume(D, "b2"), None)]) == local


def test_all_known_when_every_action_was_reported_at_once() -> None:
    """A pass that only mounted, or only snapshotted, needs no confirmation at once."""
    mount = MountFilesystem(D, DEVICE, PATH)
    assert all_known(observed(), mount, [(mount, None)])
    made = CreateSnapshot(D, "s1", "b1")
    mounted = observed((Mount(DEVICE, PATH),))
    assert all_known(mounted, made, [(made, snapshot("s1"))])


def test_not_all_known_when_an_action_is_not_or_failed() -> None:
    """Another action (mkfs), a mount the pass did not see, a failed snapshot, or no action at
    all: the next pass follows at once."""
    mount = MountFilesystem(D, DEVICE, PATH)
    both = Sequentially((MakeFilesystem(D, DEVICE), mount))
    assert not all_known(observed(), both, [(mount, None)])
    elsewhere = MountFilesystem(D, "/dev/y", PATH)
    assert not all_known(observed(), elsewhere, [(elsewhere, None)])
    made = CreateSnapshot(D, "s1", "b1")
    assert not all_known(observed(), made, [])
    assert not all_known(observed(), Sequentially(()), [])


def test_attach_and_mount_in_one_pass_is_all_known() -> None:
    """The attach a known MountAttached followed is known with it; an attach whose mount was
    left for later is not."""
    volume = BlockDeviceVolume("b1", 64 * MiB, CLUSTER, D, None)
    local = classify([volume], HERE, {}, frozenset(), (), ROOT, ())
    attach, mount = AttachVolume(D, "b1", 3), MountAttached(D, "b1", PATH, 64 * MiB)
    both = Sequentially((attach, mount))
    mounted = AttachedMount(DEVICE, FilesystemInfo("ext4", 64 * MiB))
    assert all_known(local, both, [(mount, mounted)])
    assert not all_known(local, both, [(mount, None)])


def test_only_a_pass_that_only_snapshots_reports_after_acting() -> None:
    """A pass whose every action is a snapshot reports once, after acting; a pass doing
    anything else, or nothing, reports its observation while it acts."""
    snap = CreateSnapshot(D, "s1", "b1", "/m")
    other = CreateSnapshot(UUID(int=8), "s2", "b2", None)
    assert reported_after(snap)
    assert reported_after(Sequentially([snap, other]))
    assert not reported_after(Sequentially([snap, UnmountFilesystem(D, "/m")]))
    assert not reported_after(Sequentially([]))
