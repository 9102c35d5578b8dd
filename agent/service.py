"""
One agent process: what ``shoal agent run`` assembles and runs.

:func:`build_loop` turns :class:`AgentOptions` into a
:class:`~agent.loop.ConvergenceLoop`: the node's persisted identity
(:mod:`agent.identity`), the named backend (:func:`~agent.backends.registry.make_backend`,
instance id = node uuid), the filesystems, a thread pool for every blocking
call, and the API client. :func:`run_agent` runs it under the reactor until
SIGTERM or SIGINT, then stops after the change in flight.

The cluster id names this cluster's volumes in a shared backend. The control
service does not publish one, so it is ``--cluster-id`` (or the environment
variable ``SHOAL_CLUSTER_ID``), else :data:`DEFAULT_CLUSTER_ID`: every agent
of a cluster must use the same one.

Test hook: when the environment variable ``SHOAL_AGENT_KILL_AFTER_CHANGES``
is ``N`` at start, the agent SIGKILLs itself right after its N-th leaf change
(create, attach, mkfs, mount, unmount, detach, destroy) completes, to test
crash safety at every step boundary. Never set it in production.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import structlog
from attrs import evolve, field, frozen
from pyrsistent import PMap, pmap
from twisted.internet.defer import Deferred
from twisted.python.threadpool import ThreadPool

from agent.backends.interface import BlockDeviceAPI
from agent.backends.registry import make_backend
from agent.defaults import DEFAULT_CLUSTER_ID, DEFAULT_MOUNT_ROOT
from agent.executor import Executor
from agent.fs.interface import Filesystems
from agent.identity import (
    DEFAULT_STATE_DIR,
    StateDirLocked,
    boot_id,
    load_or_create_identity,
    lock_state_dir,
    write_mount_root,
)
from agent.kernlog import KmsgLog
from agent.loop import ConvergenceLoop, LoopSettings, NodeFacts, freeze_labels
from agent.metrics import AgentMetrics
from agent.observe import in_threads
from control.client.interface import ShoalClient
from control.errors import Conflict, InvalidRequest
from control.runners import Runner, thread_pool_runner

KILL_AFTER_CHANGES = "SHOAL_AGENT_KILL_AFTER_CHANGES"
THREADS = 8
"""Threads for discovery and changes (changes of different datasets run in parallel)."""
DISCOVERY_THREADS = 5
"""Threads for the independent observations of one discovery (:func:`agent.observe.in_threads`)."""


def _frozen_options(options: Mapping[str, Any]) -> PMap:
    return pmap(options)


@frozen
class AgentOptions:
    """How to run one agent (the options of ``shoal agent run``)."""

    node_name: str
    backend: str = "loopback"
    pool: str | None = None
    mount_root: str = DEFAULT_MOUNT_ROOT
    state_dir: str = DEFAULT_STATE_DIR
    cluster_id: UUID = DEFAULT_CLUSTER_ID
    labels: PMap = field(factory=pmap, converter=freeze_labels)
    host: str | None = None
    era: str | None = None
    heartbeat: float = 5.0
    kill_after_changes: int | None = None
    pool_overcommit: float | None = None
    backend_options: PMap = field(factory=pmap, converter=_frozen_options)
    """Backend-specific options given to its factory (rbd: ``ceph_conf``, ``ceph_client``,
    ``ceph_keyring``, ``ceph_pool``, ``rbd_run_dir``, ``rbd_attach``); unset ones are left out."""
    self_fence: bool = True
    more_backends: tuple[str, ...] = ()
    """Further backends, ``NAME`` or ``NAME=POOL`` each (``--backend`` repeated): the node
    offers them all (:class:`agent.backends.multi.MultiBackend`), ``backend`` the default."""
    metrics_address: str | None = None
    """Serve the agent's metrics as plain HTTP at this HOST:PORT (``None``: not at all)."""
    node_uuid: UUID | None = None
    """The node uuid the agent's certificate is bound to (``shoal ca issue node``), if any."""


def parse_labels(items: list[str] | None) -> dict[str, str]:
    """``k=v`` strings as a dict; raises :class:`InvalidRequest` on a malformed one."""
    labels = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"A label is KEY=VALUE, not {item!r}.")
        labels[key] = value
    return labels


def kill_after_changes(env: Mapping[str, str]) -> int | None:
    """The test hook's N from ``env`` (see the module docstring), or ``None``."""
    raw = env.get(KILL_AFTER_CHANGES)
    if not raw:
        return None
    try:
        count = int(raw)
    except ValueError:
        raise InvalidRequest(f"{KILL_AFTER_CHANGES} must be a whole number, not {raw!r}.") from None
    if count < 1:
        raise InvalidRequest(f"{KILL_AFTER_CHANGES} must be at least 1, not {count}.")
    return count


def killing_runner(runner: Runner, count: int, kill: Callable[[], None]) -> Runner:
    """``runner``, calling ``kill`` (in the worker thread) right after the ``count``-th call."""
    done = [0]

    def counted(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        result = f(*args, **kwargs)
        done[0] += 1
        if done[0] == count:
            kill()
        return result

    def run(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
        return runner(counted, f, *args, **kwargs)

    return run


def _sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _make_backend(options: AgentOptions, instance_id: str) -> BlockDeviceAPI:
    """The node's backend, or (``--backend`` repeated) its backends behind one."""
    first = _make_one_backend(options, instance_id)
    if not options.more_backends:
        return first
    from agent.backends.multi import MultiBackend

    members = [(options.backend, first)]
    for spec in options.more_backends:
        name, _, pool = spec.partition("=")
        if not pool and name in ("loopback", "local"):
            raise InvalidRequest(
                f"--backend {name} besides --backend {options.backend} needs its own pool: "
                f"--backend {name}=DIR."
            )
        more = evolve(options, backend=name, pool=pool or None, more_backends=())
        members.append((name, _make_one_backend(more, instance_id)))
    return MultiBackend(members)


def _make_one_backend(options: AgentOptions, instance_id: str) -> BlockDeviceAPI:
    extra: dict[str, Any] = dict(options.backend_options)
    if options.pool_overcommit is not None:
        extra["overcommit"] = options.pool_overcommit
    if options.pool is not None:
        extra["pool"] = os.path.abspath(options.pool)
    elif options.backend == "loopback":
        raise InvalidRequest("--backend loopback needs --pool DIR (the shared volume pool).")
    return make_backend(
        options.backend, cluster_id=options.cluster_id, instance_id=instance_id, **extra
    )


def _filesystems(backend: BlockDeviceAPI, mount_root: str) -> Filesystems:
    """Real filesystems (only mounts under the mount root count), or the fake's own."""
    storage = getattr(backend, "storage", None)
    if storage is not None:
        from agent.fs.fake import FakeFilesystems

        return FakeFilesystems(storage, backend.compute_instance_id())
    from agent.fs.real import RealFilesystems

    return RealFilesystems(under=mount_root)


def build_loop(
    options: AgentOptions,
    client: ShoalClient,
    reactor: Any,
    runner: Runner,
    metrics: AgentMetrics | None = None,
) -> ConvergenceLoop:
    """The agent's loop, its identity loaded (or created) from the state directory; its
    backend and filesystem calls, changes and passes recorded in ``metrics`` (or new ones)."""
    metrics = AgentMetrics(time.monotonic) if metrics is None else metrics
    identity = load_or_create_identity(
        options.state_dir, options.node_name, bound=options.node_uuid
    )
    instance_id = str(identity.uuid)
    backend = metrics.timed_backend(_make_backend(options, instance_id))
    os.makedirs(options.mount_root, exist_ok=True)
    # The kernel's mount table names real paths: so must the mount root the
    # agent registers (reported paths must lie below it) and the plugin trusts.
    mount_root = os.path.realpath(options.mount_root)
    write_mount_root(options.state_dir, mount_root)
    change_runner = runner
    if options.kill_after_changes is not None:
        change_runner = killing_runner(runner, options.kill_after_changes, _sigkill_self)
    filesystems = metrics.timed_filesystems(_filesystems(backend, mount_root))
    executor = Executor(backend, filesystems, change_runner, on_change=metrics.changed)
    executor.thaw_leftovers()  # what a killed agent left frozen (see agent.fs.freezer)
    era = options.era if options.era is not None else boot_id()
    labels = {"name": identity.name, **options.labels}
    facts = NodeFacts(identity.uuid, options.host or socket.gethostname(), era, labels)
    settings = LoopSettings(
        mount_root=mount_root, heartbeat=options.heartbeat, self_fence=options.self_fence
    )
    return ConvergenceLoop(
        client,
        reactor,
        facts,
        executor,
        settings,
        random=random.Random().random,
        run_blocking=runner,
        monotonic=time.monotonic,
        kernel_log=None if getattr(backend, "storage", None) is not None else KmsgLog(),
        metrics=metrics,
        together=in_threads(ThreadPoolExecutor(DISCOVERY_THREADS, "shoal-discover")),
        heartbeat_jitter=random.Random().random,
    )


def serve_metrics(
    reactor: Any, address: str, metrics: AgentMetrics, runner: Runner, failed: Any
) -> None:
    """Serve ``metrics`` as plain HTTP at ``address`` (``--metrics-address``)."""
    from control.metrics_http import listen_metrics

    listen_metrics(
        reactor, address, metrics.registry, runner,
        structlog.get_logger("shoal.agent"), "agent.metrics_listening",
    ).addErrback(failed)


def run_agent(
    options: AgentOptions, make_client: Callable[[Any], ShoalClient], reactor: Any = None
) -> int:
    """Run one agent until SIGTERM/SIGINT (blocking; runs the reactor); returns the exit status."""
    if options.metrics_address is not None:
        from control.metrics_http import parse_address

        parse_address(options.metrics_address)  # refused before anything starts
    try:
        lock = lock_state_dir(options.state_dir)
    except StateDirLocked as e:
        raise Conflict(str(e)) from None
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    pool = ThreadPool(minthreads=1, maxthreads=THREADS, name="shoal-agent")
    client = make_client(reactor)
    runner = thread_pool_runner(reactor, pool)
    metrics = AgentMetrics(time.monotonic)
    loop = build_loop(options, client, reactor, runner, metrics)
    log = structlog.get_logger("shoal.agent")
    status = [0]

    def crashed(failure: Any) -> None:
        status[0] = 1
        log.critical("agent.exiting", error=str(failure.value))
        if reactor.running:
            reactor.stop()

    def stop() -> Deferred[Any]:
        d = loop.stop()
        close = getattr(client, "close", None)
        if close is not None:
            d.addBoth(lambda _: close())
        return d

    def begin() -> None:
        pool.start()
        log.info(
            "agent.starting",
            node=str(loop.node.node_uuid),
            name=options.node_name,
            backend=options.backend,
            cluster_id=str(options.cluster_id),
            mount_root=loop.settings.mount_root,
            kill_after_changes=options.kill_after_changes,
        )
        loop.start().addErrback(crashed)
        if options.metrics_address is not None:
            serve_metrics(reactor, options.metrics_address, metrics, runner, crashed)

    reactor.callWhenRunning(begin)
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    reactor.addSystemEventTrigger("after", "shutdown", pool.stop)
    try:
        reactor.run()
    finally:
        os.close(lock)
    return status[0]
