"""
Run a change tree: the one place where the agent's decisions become I/O.

Every backend or filesystem call is blocking, so :class:`Executor` hands each
to an injected runner (a thread pool in production, as for
:class:`control.store.threaded.ThreadedStore`; :func:`synchronous_runner` in
tests) and returns a ``Deferred``. :class:`~agent.changes.Sequentially` stops
at its first failure; :class:`~agent.changes.InParallel` runs every branch
and fails afterwards if any failed. A failure fails the run with
:class:`ChangeFailed`: there is no retry inside an action, the next pass of
the loop observes again and decides again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from uuid import UUID

import structlog
from attrs import asdict
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.python.failure import Failure

from agent.backends.interface import (
    BackendError,
    BlockDeviceAPI,
    BlockDeviceVolume,
    QuiescedSnapshotsAPI,
    ReadOnlyManyAPI,
    SeveralBackendsAPI,
    UnattachedVolume,
    UnknownVolume,
)
from agent.changes import (
    AttachVolume,
    Change,
    CleanUpFenced,
    CloneVolume,
    CreateSnapshot,
    CreateVolume,
    DestroySnapshot,
    DestroyVolume,
    DetachVolume,
    FenceVolume,
    GrowFilesystem,
    InParallel,
    MakeFilesystem,
    MountAttached,
    MountFilesystem,
    NoOp,
    ResizeVolume,
    RestoreVolume,
    Sequentially,
    ShutDownFilesystem,
    UnmountFilesystem,
    Wait,
)
from agent.discovery import mountable
from agent.effects import KNOWN_EFFECTS, AttachedMount
from agent.freezing import FreezeAhead
from agent.fs.interface import DeviceInUse, FilesystemError, Filesystems
from control.runners import Runner

__all__ = ["FENCING", "ChangeFailed", "Executor", "describe"]

FENCING: dict[type, str] = {
    FenceVolume: "agent.fence.volume",
    ShutDownFilesystem: "agent.fence.shutdown",
    CleanUpFenced: "agent.fence.cleaned_up",
}
"""The log event of each fencing action once done (``docs/failover.md``): what and why."""

T = TypeVar("T")


def describe(change: Change) -> dict[str, Any]:
    """A change as flat log fields: ``change`` (its kind) plus its attributes as text."""
    fields = {key: str(value) for key, value in asdict(change, recurse=False).items()}
    return {"change": type(change).__name__, **fields}


class ChangeFailed(Exception):
    """One or more changes of a run failed; ``failures`` pairs each change with its error."""

    def __init__(self, failures: list[tuple[Change, BaseException]]) -> None:
        self.failures = tuple(failures)
        lines = [
            f"{describe(change)['change']} {_brief(change)} failed: {type(error).__name__}: {error}"
            for change, error in self.failures
        ]
        super().__init__(
            f"{len(lines)} change(s) failed; the next pass will observe and retry: "
            + "; ".join(lines)
        )


def _brief(change: Change) -> str:
    fields = describe(change)
    fields.pop("change")
    return ", ".join(f"{k}={v}" for k, v in fields.items())


def _failures_of(failure: Failure, change: Change) -> list[tuple[Change, BaseException]]:
    error = failure.value
    if isinstance(error, ChangeFailed):
        return list(error.failures)
    return [(change, error if error is not None else Exception(str(failure)))]


class Executor:
    """Run change trees against one node's backend and filesystems."""

    def __init__(
        self,
        backend: BlockDeviceAPI,
        filesystems: Filesystems,
        runner: Runner,
        logger: Any = None,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.backend = backend
        self.filesystems = filesystems
        self._run = runner
        self._on_change = on_change
        self._log = logger if logger is not None else structlog.get_logger("shoal.agent")
        self._created: dict[UUID, BlockDeviceVolume] = {}
        self._effects: list[tuple[Change, object]] = []
        self._ahead: dict[str, FreezeAhead] = {}
        self._actions: dict[type, Callable[[Any], object]] = {
            CreateVolume: self._create,
            AttachVolume: self._attach,
            MakeFilesystem: lambda c: filesystems.make_filesystem(c.device, c.filesystem),
            MountFilesystem: lambda c: filesystems.mount(c.device, c.path, c.read_only),
            MountAttached: self._mount_attached,
            UnmountFilesystem: lambda c: filesystems.unmount(c.path, lazy=c.lazy),
            DetachVolume: self._detach,
            DestroyVolume: lambda c: backend.destroy_volume(c.blockdevice_id),
            CreateSnapshot: self._snapshot,
            DestroySnapshot: lambda c: backend.destroy_snapshot(c.snapshot_id),
            RestoreVolume: lambda c: backend.create_volume_from_snapshot(
                c.dataset_id, c.snapshot_id, c.size
            ),
            CloneVolume: self._clone,
            ResizeVolume: lambda c: backend.resize_volume(c.blockdevice_id, c.size),
            GrowFilesystem: lambda c: filesystems.grow_filesystem(c.device),
            FenceVolume: lambda c: backend.fence(c.blockdevice_id, c.node),
            ShutDownFilesystem: lambda c: filesystems.shutdown(c.path),
            CleanUpFenced: lambda c: backend.clean_up_fenced(c.leftover),
        }

    def _frozen(self, path: str | None, action: Callable[[], T]) -> T:
        """Run ``action``, with the filesystem at ``path`` frozen around it if ``path`` is set."""
        if path is None:
            return action()
        return self.filesystems.while_frozen(path, action)

    def freeze_ahead(self, paths: Iterable[str]) -> None:
        """Start freezing the filesystems at ``paths`` now, for snapshots this pass may make.

        A :class:`CreateSnapshot` freezing one of them uses its freeze (the copy
        is still made only once it is frozen); :meth:`release_ahead` thaws the
        others, copying nothing. Does not block.
        """
        for path in paths:
            if path not in self._ahead:
                ahead = FreezeAhead(self.filesystems, path)
                self._ahead[path] = ahead
                ahead.start()
                self._log.info("agent.freeze_ahead", path=path)

    def has_freezes_ahead(self) -> bool:
        """Whether a freeze started by :meth:`freeze_ahead` waits for its release."""
        return bool(self._ahead)

    def release_ahead(self) -> list[str]:
        """Thaw the freezes started by :meth:`freeze_ahead` and not used; returns their paths.

        Blocks until each is thawed: call it off the reactor thread.
        """
        unused, self._ahead = self._ahead, {}
        for ahead in unused.values():
            ahead.release()
        return sorted(unused)

    def _snapshot(self, change: CreateSnapshot) -> object:
        """Snapshot the volume, its filesystem frozen for the copy if it is mounted here.

        A backend that calls back for the instant of the copy gets a freeze started at
        the same time as its call (:class:`~agent.freezing.FreezeAhead`), or earlier by
        :meth:`freeze_ahead`.
        """
        backend = self.backend
        ahead = self._ahead.pop(change.freeze_path, None) if change.freeze_path else None
        if ahead is not None:
            with ahead as quiesce:
                if isinstance(backend, QuiescedSnapshotsAPI):
                    return backend.create_snapshot_quiesced(
                        change.blockdevice_id, change.snapshot_id, quiesce
                    )
                return quiesce(
                    lambda: backend.create_snapshot(change.blockdevice_id, change.snapshot_id)
                )
        if change.freeze_path is not None and isinstance(backend, QuiescedSnapshotsAPI):
            with FreezeAhead(self.filesystems, change.freeze_path) as quiesce:
                return backend.create_snapshot_quiesced(
                    change.blockdevice_id, change.snapshot_id, quiesce
                )
        return self._frozen(
            change.freeze_path,
            lambda: self.backend.create_snapshot(change.blockdevice_id, change.snapshot_id),
        )

    def _clone(self, change: CloneVolume) -> object:
        """Clone the volume, its filesystem frozen for the copy if it is mounted here."""
        return self._frozen(
            change.freeze_path,
            lambda: self.backend.clone_volume(
                change.dataset_id, change.source_blockdevice_id, change.size
            ),
        )

    def thaw_leftovers(self) -> list[str]:
        """Thaw every filesystem mounted by this agent; returns the paths it tried.

        Called at start-up: a freeze is held by a child process that thaws
        when the agent dies, and this catches anything that still escaped.
        """
        paths = []
        for mount in self.filesystems.mounts():
            paths.append(mount.path)
            try:
                self.filesystems.thaw(mount.path)
            except Exception as e:  # one stuck mount must not stop the agent starting
                self._log.warning("agent.thaw.failed", path=mount.path, error=str(e))
        return paths

    def _create(self, change: CreateVolume) -> BlockDeviceVolume:
        """Create on the change's backend when the node runs several, else on its one."""
        if isinstance(self.backend, SeveralBackendsAPI):
            return self.backend.create_volume_on(change.backend, change.dataset_id, change.size)
        return self.backend.create_volume(change.dataset_id, change.size)

    def _attach(self, change: AttachVolume) -> BlockDeviceVolume:
        """Attach read-write at the change's epoch, or read-only beside other readers."""
        here = self.backend.compute_instance_id()
        if not change.read_only:
            return self.backend.attach_volume(change.blockdevice_id, here, change.epoch)
        return self._read_only_many().attach_read_only(change.blockdevice_id, here)

    def _read_only_many(self) -> ReadOnlyManyAPI:
        """The backend as one that attaches read-only on many nodes, else a clear refusal."""
        if not isinstance(self.backend, ReadOnlyManyAPI):
            raise BackendError(
                "This node's backend cannot attach a volume read-only to several nodes "
                "(ReadOnlyMany): use a class on a backend that can (loopback)."
            )
        return self.backend

    def _mount_attached(self, change: MountAttached) -> AttachedMount | None:
        """Mount the device the attach before made, if it holds a filesystem ready to mount
        (:func:`agent.discovery.mountable`); else nothing (``None``): the next pass observes
        it and formats or grows it first. Never formats."""
        try:
            device = self.backend.get_device_path(change.blockdevice_id)
            info = self.filesystems.filesystem_info(device)
        except (UnattachedVolume, UnknownVolume, FilesystemError) as e:
            self._log.info("agent.mount_attached.later", reason=str(e), **describe(change))
            return None
        if info is None or not mountable(info, change.size):
            self._log.info("agent.mount_attached.later", device=device, **describe(change))
            return None
        self.filesystems.mount(device, change.path)
        return AttachedMount(device, info)

    def _detach(self, change: DetachVolume) -> None:
        """Detach, having confirmed that the volume is attached to this node.

        ``detach_volume`` detaches from whichever node has the volume; a
        stale listing must never make this node detach another node's volume,
        so ``get_device_path`` (which raises
        :class:`~agent.backends.interface.UnattachedVolume` unless it is
        attached here) is asked first. Nor is a volume detached while its device node is
        bind-mounted somewhere (a CSI block volume a pod uses): :class:`DeviceInUse`, retried.
        """
        device = self.backend.get_device_path(change.blockdevice_id)
        bound = self.filesystems.device_bound_at(device)
        if bound:
            raise DeviceInUse(
                f"Volume {change.blockdevice_id} of dataset {change.dataset_id} is not detached: "
                f"its device {device} is still bind-mounted at {', '.join(bound)} (a raw block "
                "volume a pod uses). Unpublish it there first (NodeUnpublishVolume, or stop the "
                "pod); the detach is retried."
            )
        if change.read_only:
            self._read_only_many().detach_read_only(change.blockdevice_id)
        else:
            self.backend.detach_volume(change.blockdevice_id)

    @property
    def recently_created(self) -> tuple[BlockDeviceVolume, ...]:
        """Volumes created here that no listing has shown yet (pass them to ``discover``)."""
        return tuple(self._created.values())

    def observed(self, listing: Iterable[BlockDeviceVolume]) -> None:
        """Forget the creations that ``listing`` (a backend listing) now shows."""
        for volume in listing:
            self._created.pop(volume.dataset_id, None)

    def effects(self) -> tuple[tuple[Change, object], ...]:
        """The changes with known effects (:data:`agent.effects.KNOWN_EFFECTS`) done since the
        last call, each with what its action returned (each given once)."""
        done, self._effects = tuple(self._effects), []
        return done

    def _record(self, change: Change, result: object) -> None:
        made = (CreateVolume, RestoreVolume, CloneVolume)
        if isinstance(change, made) and isinstance(result, BlockDeviceVolume):
            self._created[change.dataset_id] = result

        if isinstance(change, KNOWN_EFFECTS):
            self._effects.append((change, result))
        elif isinstance(change, DestroyVolume):
            self._created.pop(change.dataset_id, None)

    def run(self, change: Change) -> Deferred:
        """Run ``change``; fires with ``None``, or fails with :class:`ChangeFailed`."""
        if isinstance(change, Sequentially):
            return self._sequentially(list(change.changes))
        if isinstance(change, InParallel):
            return self._in_parallel(list(change.changes))
        if isinstance(change, NoOp):
            return succeed(None)
        if isinstance(change, Wait):
            self._log.info("agent.waiting", **describe(change))
            return succeed(None)
        return self._leaf(change)

    def _leaf(self, change: Change) -> Deferred:
        action = self._actions[type(change)]
        d = self._run(action, change)

        def done(result: object) -> None:
            self._record(change, result)
            self._count(change, True)
            self._log.info("agent.change.done", **describe(change))
            if type(change) in FENCING:
                self._log.warning(FENCING[type(change)], **describe(change))

        def failed(failure: Failure) -> Failure:
            self._count(change, False)
            self._log.warning(
                "agent.change.failed",
                error=f"{type(failure.value).__name__}: {failure.value}",
                **describe(change),
            )
            return Failure(ChangeFailed(_failures_of(failure, change)))

        d.addCallbacks(done, failed)
        return d

    def _count(self, change: Change, ok: bool) -> None:
        """Tell ``on_change`` (the metrics) the kind and result of an executed change."""
        if self._on_change is not None:
            self._on_change(type(change).__name__, ok)

    def _sequentially(self, changes: list[Change]) -> Deferred:
        d: Deferred = succeed(None)
        for change in changes:
            d.addCallback(self._then, change)
        return d

    def _then(self, _previous: object, change: Change) -> Deferred:
        return self.run(change)

    def _in_parallel(self, changes: list[Change]) -> Deferred:
        started = [self.run(change) for change in changes]

        def gather(results: list[tuple[bool, Any]]) -> None:
            failures: list[tuple[Change, BaseException]] = []
            for change, (ok, value) in zip(changes, results, strict=True):
                if not ok:
                    failures.extend(_failures_of(value, change))
            if failures:
                raise ChangeFailed(failures)

        return DeferredList(started, consumeErrors=True).addCallback(gather)
