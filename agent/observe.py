"""
Observe one node: all of a pass's I/O, handed to the pure :func:`~agent.discovery.classify`.

:func:`discover` asks the backend and the filesystems what exists on this node
and returns the frozen :class:`~agent.discovery.LocalState` snapshot that the
pure code (:mod:`agent.discovery`, :mod:`agent.policy`) works on. The
observations that do not depend on each other may be made at once
(:func:`in_threads`): on a network backend each one mostly waits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, wait
from typing import Any

from attrs import evolve

from agent.backends.interface import (
    BackendError,
    BlockDeviceAPI,
    BlockDeviceVolume,
    SeveralBackendsAPI,
    UnattachedVolume,
    UnknownVolume,
)
from agent.discovery import (
    LocalState,
    attached_here,
    classify,
    with_filesystems,
    with_leftovers,
    with_snapshots,
)
from agent.fs.interface import FilesystemError, FilesystemInfo, Filesystems
from agent.health import steady
from agent.kernlog import KernelLog
from control.model import Capacity


class Classified:
    """The last discovery's raw observations and the :class:`LocalState` sorted from them.

    One per agent (its loop holds it); :func:`discover` still makes every observation each
    pass, and only the pure sorting of them (:func:`~agent.discovery.classify` and the
    ``with_*`` steps, ~half an idle pass's CPU at 100 datasets) is reused while they equal
    the last ones. Not shared between threads: one discovery at a time.
    """

    def __init__(self) -> None:
        self.observed: tuple[Any, ...] | None = None
        self.local: LocalState | None = None

    def sorted_out(self, observed: tuple[Any, ...], sort: Callable[[], LocalState]) -> LocalState:
        """The last state if ``observed`` equals the last observations, else ``sort()``."""
        if self.local is None or observed != self.observed:
            self.local = sort()
            self.observed = observed
        return self.local


Together = Callable[[Sequence[Callable[[], Any]]], list[Any]]
"""Make calls that do not depend on each other; their results in the same order."""


def one_by_one(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Make the calls one after the other, on this thread."""
    return [call() for call in calls]


def in_threads(pool: Executor) -> Together:
    """Make the calls at once on ``pool``'s threads (the blocking waits of a network backend
    overlap); raises the first failed call's error once all are done."""

    def together(calls: Sequence[Callable[[], Any]]) -> list[Any]:
        futures = [pool.submit(call) for call in calls]
        wait(futures)
        return [future.result() for future in futures]

    return together


def _device_of(backend: BlockDeviceAPI, blockdevice_id: str) -> str | None:
    try:
        return backend.get_device_path(blockdevice_id)
    except (UnattachedVolume, UnknownVolume):  # a stale listing: not (or no longer) here
        return None


def _has_filesystem(filesystems: Filesystems, device: str) -> bool:
    try:
        return filesystems.has_filesystem(device)
    except FilesystemError:
        return False


def _filesystem_info(filesystems: Filesystems, device: str) -> FilesystemInfo | None:
    try:
        return filesystems.filesystem_info(device)
    except FilesystemError:
        return None


def _capacity(backend: BlockDeviceAPI) -> Capacity | None:
    try:
        return steady(backend.capacity())
    except (BackendError, OSError):  # unknown capacity: creates are tried and may fail
        return None


def discover(
    backend: BlockDeviceAPI,
    filesystems: Filesystems,
    mount_root: str,
    node_instance_id: str,
    recently_created: Iterable[BlockDeviceVolume] = (),
    kernel_log: KernelLog | None = None,
    together: Together | None = None,
    classified: Classified | None = None,
) -> LocalState:
    """
    Observe the node (all of a pass's I/O) and return one frozen snapshot.

    ``recently_created`` is :attr:`agent.executor.Executor.recently_created`
    (see :func:`classify`).

    A volume attached here whose device cannot be restored is reported as
    :attr:`DiscoveredState.ATTACHED_NO_DEVICE`. Backend errors other than
    that propagate: the pass fails and the next one observes again.
    ``kernel_log`` (if given) is asked for errors of the devices attached here.
    The backend's fenced leftovers of this node come with their mounts here.
    ``together`` makes the five independent observations (volumes, mounts,
    snapshots, leftovers, capacity); by default one after the other. ``classified`` (if
    given) is the agent's last discovery: the pure sorting of the observations is reused
    when they equal its own (:class:`Classified`).
    """
    together = together or one_by_one
    volumes, mounts, snapshots, leftovers, capacity = together(
        [
            backend.list_volumes,
            filesystems.mounts,
            backend.list_snapshots,
            backend.fenced_leftovers,
            lambda: _capacity(backend),
        ]
    )
    devices: dict[str, str] = {}
    for volume in volumes:
        if attached_here(volume, node_instance_id):
            device = _device_of(backend, volume.blockdevice_id)
            if device is not None:
                devices[volume.blockdevice_id] = device
    mounted = {mount.device for mount in mounts}
    # A mounted device has a filesystem: only probe (blkid costs ~5 ms) the others.
    formatted = frozenset(
        d for d in devices.values() if d in mounted or _has_filesystem(filesystems, d)
    )
    infos = {d: info for d in formatted if (info := _filesystem_info(filesystems, d))}
    errors = kernel_log.errors(devices.values()) if kernel_log is not None else {}
    capacities: tuple[Capacity, ...] = ()
    if isinstance(backend, SeveralBackendsAPI):
        capacities = tuple(c for c in map(steady, _all_capacities(backend)) if c is not None)
    created = tuple(recently_created)
    observed = (tuple(volumes), node_instance_id, devices, formatted, tuple(mounts),
                mount_root, created, infos, tuple(snapshots), tuple(leftovers),
                capacity, errors, capacities)

    def sort() -> LocalState:
        local = classify(volumes, node_instance_id, devices, formatted, mounts, mount_root,
                         created)
        local = with_snapshots(with_filesystems(local, infos), snapshots)
        local = with_leftovers(local, leftovers, mounts)
        return evolve(local, capacity=capacity, device_errors=errors, capacities=capacities)

    return sort() if classified is None else classified.sorted_out(observed, sort)


def _all_capacities(backend: SeveralBackendsAPI) -> list[Capacity]:
    try:
        return backend.capacities()
    except (BackendError, OSError):
        return []
