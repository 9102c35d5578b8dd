"""
The plugin's imperative shell: each Docker volume request, carried out.

:class:`VolumeService` reads what it needs from the control service through a
:class:`~control.client.interface.ShoalClient`, asks :mod:`plugin.rules` what
to do, does it, and keeps the mount table (:mod:`plugin.mounts`) on disk.
Requests for one volume name run one at a time, so a Mount and an Unmount of
the same volume never interleave. Every refusal raises a
:class:`~control.errors.ShoalError` whose description is meant for the person
who ran ``docker``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol, TypeVar
from uuid import UUID

import structlog
from attrs import evolve
from twisted.internet.defer import Deferred, DeferredLock, FirstError, gatherResults

from control.client.interface import ShoalClient, StateDataset
from control.client.waiting import WaitBlocked, WaitTimedOut
from control.errors import Conflict, NotFound, ShoalError
from control.model import AccessMode, Dataset, Lease
from control.reactor import ReactorTime
from control.runners import Runner
from control.topology import parse_enum
from plugin import rules
from plugin.common.mounted import wait_mounted
from plugin.hostmounts import MountGuard
from plugin.metrics import PluginMetrics
from plugin.mounts import MountTable
from plugin.names import check_name

T = TypeVar("T")
D = TypeVar("D")



def _uncancellable(d: Deferred[T]) -> Deferred[T]:
    """A Deferred firing with ``d``'s result; cancelling it leaves ``d`` running to the end."""
    outer: Deferred[T] = Deferred()

    def forward(result: Any) -> None:
        if not outer.called:
            outer.callback(result)

    d.addBoth(forward)
    return outer


class MountStore(Protocol):
    """Where the mount table lives: :class:`plugin.mounts.MountFile` or a test double."""

    def load(self) -> MountTable:
        """The current table."""
        ...

    def save(self, table: MountTable) -> None:
        """Persist ``table`` (atomically: a reader sees the old or the new table)."""
        ...


class VolumeService:
    """Docker volume operations for the node ``node()`` returns, over ``client``.

    ``node`` returns this node's uuid (read from the local agent's identity)
    or raises a :class:`ShoalError` explaining why it is not known yet.
    ``guard`` checks every reported mount path on this node before it is
    handed out (:mod:`plugin.hostmounts`): Mount and Path refuse an untrusted
    one, Get and List show it as not mounted here.
    """

    def __init__(
        self,
        client: ShoalClient,
        node: Callable[[], UUID],
        clock: ReactorTime,
        mounts: MountStore,
        guard: MountGuard,
        default_size: int | None = None,
        mount_timeout: float = 110.0,
        logger: Any = None,
        *,
        run_blocking: Runner,
        metrics: PluginMetrics | None = None,
    ) -> None:
        self._client = client
        self._node = node
        self._clock = clock
        self._mounts = mounts
        self._guard = guard
        self._table = mounts.load()
        self.default_size = default_size
        self.mount_timeout = mount_timeout
        self._locks: dict[str, DeferredLock] = {}
        self._saving = DeferredLock()
        self._run_blocking = run_blocking
        self.metrics = PluginMetrics() if metrics is None else metrics
        self._log = logger if logger is not None else structlog.get_logger("shoal.plugin")

    @property
    def table(self) -> MountTable:
        """The current mount table (as persisted)."""
        return self._table

    # -- plumbing -------------------------------------------------------------------

    async def _update(self, change: Callable[[MountTable], MountTable]) -> None:
        """Apply ``change`` to the table and persist it (in a thread) before returning.

        The in-memory table changes at once so later changes build on it; the
        saves run one at a time in call order, so the file ends as the newest table.
        """
        table = change(self._table)
        if table == self._table:
            return
        self._table = table
        await self._saving.run(self._run_blocking, self._mounts.save, table)

    async def _serialised(self, name: str, work: Callable[[], Awaitable[T]]) -> T:
        lock = self._locks.setdefault(name, DeferredLock())
        await lock.acquire()
        try:
            return await work()
        finally:
            lock.release()
            if not lock.locked and not lock.waiting:
                self._locks.pop(name, None)

    async def _volume(self, name: str) -> tuple[str, Dataset]:
        listing = await self._client.list_datasets()
        dataset = rules.find_volume(listing.datasets, name)
        if dataset is None:
            raise NotFound(rules.no_such_volume(name))
        return listing.tag, dataset

    async def _decide(self, decide: Callable[[dict[UUID, str]], D | rules.Refused]) -> D:
        """``decide``'s answer; a refusal is raised as a Conflict naming the nodes involved.

        Node names are only fetched to explain a refusal, never on the way to a yes.
        """
        decision = decide({})
        if not isinstance(decision, rules.Refused):
            return decision
        refused = decide(await self._node_names())
        raise Conflict(refused.message if isinstance(refused, rules.Refused) else decision.message)

    async def _node_names(self) -> dict[UUID, str]:
        try:
            nodes = await self._client.list_nodes()
            return {info.node.uuid: info.node.display_name for info in nodes}
        except ShoalError:
            return {}

    async def _release_unused(self, name: str, strict: bool) -> None:
        """Release the lease held for ``name`` if nobody here uses it any more."""
        dataset_id = self._table.to_release().get(name)
        if dataset_id is None:
            return
        try:
            lease = rules.lease_for(await self._client.list_leases(), dataset_id)
            if lease is not None and lease.node_uuid == self._node():
                await self._client.release_lease(dataset_id)
            else:  # a ReadOnlyMany reader (nothing to do for any other dataset)
                await self._client.remove_reader(dataset_id, self._node())
        except NotFound:
            pass
        except ShoalError as e:
            self._log.warning("lease_release_failed", volume=name, reason=e.description)
            if strict:
                raise ShoalError(
                    f"Volume {name!r} is no longer used here, but its lease could not be "
                    f"released: {e.description} The plugin retries when it next starts."
                ) from e
            return
        await self._update(lambda t: t.released(name))
        self._log.info("lease_released", volume=name, dataset_id=str(dataset_id))

    # -- Create ---------------------------------------------------------------------

    async def create(self, name: str, opts: object) -> None:
        """Create volume ``name`` on this node, or accept one that already exists."""
        check_name(name)
        options = rules.parse_create_options(opts, self.default_size)
        await self._serialised(name, lambda: self._create(name, options))

    async def _create(self, name: str, options: rules.CreateOptions) -> None:
        node = self._node()
        listing = await self._client.list_datasets()
        existing = rules.find_volume(listing.datasets, name)
        if existing is None:
            try:
                created = await self._create_new(name, options, node, listing.datasets)
            except Conflict:
                # The service keeps names unique: another node created it first.
                existing = rules.find_volume((await self._client.list_datasets()).datasets, name)
                if existing is None:
                    raise
            else:
                self._log.info("created", volume=name, dataset_id=str(created.dataset_id))
                return
        rules.check_existing(name, existing, options)

    async def _create_new(
        self, name: str, options: rules.CreateOptions, node: UUID, datasets: list[Dataset]
    ) -> Dataset:
        """Create the dataset: new on this node, a restore here, or a clone where its
        source is (which can freeze it; the first Mount moves it here)."""
        metadata = rules.create_metadata(name)
        if options.from_snapshot is None and options.clone_of is None:
            if options.placed_by_class:
                return await self._client.create_shoal_dataset(
                    None, options.size, metadata, filesystem=options.filesystem,
                    storage_class=options.storage_class,
                    access_mode=_access_mode(options.access_mode),
                )
            if options.filesystem is None:
                return await self._client.create_dataset(node, options.size, metadata)
            return await self._client.create_shoal_dataset(
                node, options.size, metadata, filesystem=options.filesystem
            )
        snapshots = [] if options.from_snapshot is None else await self._client.list_snapshots()
        source = rules.source_of(options, datasets, snapshots)
        assert source is not None
        primary = node if options.from_snapshot is not None else None
        return await self._client.create_shoal_dataset(
            primary, options.size, metadata, filesystem=options.filesystem, source=source,
            storage_class=options.storage_class, access_mode=_access_mode(options.access_mode),
        )

    # -- Mount / Unmount ------------------------------------------------------------

    async def mount(self, name: str, mount_id: str) -> str:
        """Make volume ``name`` available here for ``mount_id``; return its mount path."""
        check_name(name)
        return await self._serialised(name, lambda: self._mount(name, str(mount_id)))

    async def _mount(self, name: str, mount_id: str) -> str:
        node = self._node()
        _, dataset = await self._volume(name)
        users = self._table.users.get(name, ())
        if users and mount_id not in users:  # a second consumer here: is it allowed?
            mode = await self._access_mode(node, dataset.dataset_id)
            refused = rules.single_consumer(name, mode, users, mount_id)
            if refused is not None:
                raise Conflict(refused.message)
        lease = rules.lease_for(await self._client.list_leases(), dataset.dataset_id)
        mode = AccessMode.RWO
        if dataset.bound and dataset.primary != node:  # read here, or move here?
            mode = await self._access_mode(node, dataset.dataset_id)
        decision = await self._decide(
            partial(rules.decide_mount, name, dataset, lease, node, mode=mode)
        )
        try:
            # Recorded before it is taken: a crash in between leaves an entry the
            # next start drops (no lease held), never a lease nobody releases.
            await self._update(lambda t: t.leased(name, dataset.dataset_id))
            if decision.acquire:
                await self._client.acquire_lease(dataset.dataset_id, node, None)
            if decision.move:
                await self._client.move_dataset(dataset.dataset_id, node)
                self._log.info("moving", volume=name, origin=str(dataset.primary))
            if decision.read:
                await self._client.add_reader(dataset.dataset_id, node)
                self._log.info("reading", volume=name, primary=str(dataset.primary))
            path = await self._timed_wait(name, dataset.dataset_id, node, own=decision.read)
            await self._run_blocking(self._guard.verify, dataset.dataset_id, path)
        except BaseException:
            await self._release_unused(name, strict=False)
            raise
        await self._update(lambda t: t.mounted(name, mount_id))
        users = self._table.count(name)
        self._log.info("mounted", volume=name, id=mount_id, path=path, users=users)
        return path

    async def _access_mode(self, node: UUID, dataset_id: UUID) -> AccessMode:
        """The dataset's access mode, as the agents' route tells it (the v1 routes do not)."""
        configuration = await self._client.node_configuration(node, [dataset_id])
        found = next((d for d in configuration.datasets if d.dataset_id == dataset_id), None)
        return AccessMode.RWO if found is None else found.access_mode

    async def _timed_wait(self, name: str, dataset_id: UUID, node: UUID, own: bool = False) -> str:
        """:meth:`_wait_mounted`, its duration recorded in the metrics."""
        started = self._clock.seconds()
        mounted = False
        try:
            path = await self._wait_mounted(name, dataset_id, node, own)
            mounted = True
            return path
        finally:
            self.metrics.waited(self._clock.seconds() - started, mounted)

    async def _wait_mounted(
        self, name: str, dataset_id: UUID, node: UUID, own: bool = False
    ) -> str:
        """Wait, woken by the watch, until the volume is reported mounted on ``node``
        (``own``: as that node alone reports it, for a ReadOnlyMany reader).

        Gives up at once when an agent reports an error that cannot clear
        without a change (the shared loop of :mod:`control.client.waiting`).
        """

        try:
            return await wait_mounted(
                self._client, self._clock, dataset_id, node, self.mount_timeout, own=own
            )
        except WaitTimedOut:
            states = await self._client.list_state_datasets()
            state = rules.state_for(states, dataset_id)
            waiting = rules.mount_progress(state, node, await self._node_names())
            assert isinstance(waiting, rules.Waiting)
            raise ShoalError(
                rules.mount_timeout_message(name, dataset_id, self.mount_timeout, waiting)
            ) from None
        except WaitBlocked as e:
            names = await self._node_names()
            raise ShoalError(rules.mount_blocked_message(name, e.blocked, names)) from None

    async def unmount(self, name: str, mount_id: str) -> None:
        """Forget ``mount_id``'s use of ``name``; release the lease at the last one.

        A caller that hangs up (Podman after its 5 s) does not cancel it: an
        Unmount the engine gave up on is never sent again, so it must finish.
        """
        check_name(name)
        work = self._serialised(name, lambda: self._unmount(name, str(mount_id)))
        await _uncancellable(Deferred.fromCoroutine(work))

    async def _unmount(self, name: str, mount_id: str) -> None:
        await self._update(lambda t: t.unmounted(name, mount_id))
        self._log.info("unmounted", volume=name, id=mount_id, users=self._table.count(name))
        await self._release_unused(name, strict=True)

    async def release_unused(self) -> None:
        """Release every lease the plugin holds for a volume nobody here uses (at start)."""
        for name in sorted(self._table.to_release()):
            await self._serialised(name, partial(self._release_unused, name, strict=False))

    # -- Remove ---------------------------------------------------------------------

    async def remove(self, name: str) -> None:
        """Delete volume ``name``, unless a container anywhere uses it."""
        check_name(name)
        await self._serialised(name, lambda: self._remove(name))

    async def _remove(self, name: str) -> None:
        node = self._node()
        _, dataset = await self._volume(name)
        lease = rules.lease_for(await self._client.list_leases(), dataset.dataset_id)
        count = self._table.count(name)
        decision = await self._decide(partial(rules.decide_remove, name, lease, count, node))
        if decision.release:
            with contextlib.suppress(NotFound):
                await self._client.release_lease(dataset.dataset_id)
        await self._update(lambda t: t.released(name))
        await self._client.delete_dataset(dataset.dataset_id)
        self._log.info("removed", volume=name, dataset_id=str(dataset.dataset_id))

    # -- Get / List / Path ----------------------------------------------------------

    def _trusted(self, states: list[StateDataset]) -> list[StateDataset]:
        """``states``, each path reported on this node that ``guard`` distrusts removed."""
        node = self._node()
        return [
            evolve(state, path=None)
            if state.primary == node
            and state.path is not None
            and not self._guard.trusted(state.dataset_id, state.path)
            else state
            for state in states
        ]

    async def _observe(self) -> tuple[list[Dataset], list[Lease], list[StateDataset]]:
        """The datasets, leases and reported states, untrusted paths removed."""
        datasets, leases, states = await self._observe_untrusted()
        return datasets, leases, self._trusted(states)

    async def _observe_untrusted(
        self,
    ) -> tuple[list[Dataset], list[Lease], list[StateDataset]]:
        reads: list[Deferred[Any]] = [
            self._client.list_datasets(),
            self._client.list_leases(),
            self._client.list_state_datasets(),
            self._client.list_state_datasets(self._node()),
        ]
        try:
            listing, leases, states, here = await gatherResults(reads, consumeErrors=True)
        except FirstError as e:
            e.subFailure.raiseException()
        return listing.datasets, leases, rules.with_own_states(states, here, self._node())

    async def get(self, name: str) -> dict[str, object]:
        """Volume ``name`` as ``VolumeDriver.Get`` reports it."""
        check_name(name)
        node = self._node()
        datasets, leases, states = await self._observe()
        dataset = rules.find_volume(datasets, name)
        if dataset is None:
            raise NotFound(rules.no_such_volume(name))
        return rules.volume_json(
            name,
            dataset,
            rules.state_for(states, dataset.dataset_id),
            rules.lease_for(leases, dataset.dataset_id),
            node,
        )

    async def path(self, name: str) -> str:
        """Where volume ``name`` is mounted on this node, or ``""`` if it is not.

        A path the control service reports is checked on this node first
        (``guard``): one that fails is refused, never answered.
        """
        check_name(name)
        node = self._node()
        datasets, _, states = await self._observe_untrusted()
        dataset = rules.find_volume(datasets, name)
        if dataset is None:
            raise NotFound(rules.no_such_volume(name))
        path = rules.local_mountpoint(rules.state_for(states, dataset.dataset_id), node)
        if path:
            await self._run_blocking(self._guard.verify, dataset.dataset_id, path)
        return path

    async def list(self) -> list[dict[str, str]]:
        """Every volume, with its mount path on this node where it has one."""
        node = self._node()
        datasets, _, states = await self._observe()
        return rules.list_json(datasets, states, node)


def _access_mode(text: str | None) -> str | None:
    """An access mode option (``RWO`` or ``ReadWriteOnce``) as the API names it."""
    return None if text is None else parse_enum(AccessMode, text, "The access-mode option").value
