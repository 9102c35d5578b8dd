"""
The control service process: store + thread pool + REST API + listener.

``run_control_service`` is what ``shoal control serve`` runs. It upgrades the
database in place, serves the API over HTTPS with mutual TLS when given a TLS
directory, and over plain HTTP only when bound to loopback (or when the
operator insists).
"""

from __future__ import annotations

import ipaddress
import os
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import structlog
from attrs import frozen
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from control import collector
from control.errors import InvalidRequest, Unavailable
from control.events import DEFAULT_MAX_AGE, DEFAULT_PER_DATASET, EventRetention
from control.logs import configure_logging

if TYPE_CHECKING:
    from control.api.channel import ConnectionLimits, LimitedSite
    from control.api.denylist import Denylist
    from control.api.metrics import ControlMetrics

DEFAULT_PORT = 4523
REVOCATION_REFRESH = 5.0
"""Seconds between reloads of the revoked certificates (made through other replicas)."""
DEFAULT_DATABASE_DIR = "/var/lib/shoal"


@frozen
class ServiceOptions:
    """How to run one control service."""

    port: int = DEFAULT_PORT
    host: str = "127.0.0.1"
    database: str | None = None
    tls_dir: str | None = None
    node_timeout: float = 30.0
    allow_insecure: bool = False
    database_threads: int = 8
    events_per_dataset: int = DEFAULT_PER_DATASET
    events_max_age: float = DEFAULT_MAX_AGE
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 60.0
    max_connections: int | None = None
    max_connections_per_address: int = 128
    failover_grace: float = 10.0
    metrics_address: str | None = None
    """Also serve ``/metrics`` as plain HTTP at this HOST:PORT (loopback unless
    ``allow_insecure``); it is always served on the API's own port too."""
    watch_floor: float | None = None
    """Seconds between reads of the counters while anyone watches (default: 1 on SQLite,
    5 on PostgreSQL, where other replicas' writes are heard by LISTEN/NOTIFY)."""


def default_database_url(directory: str = DEFAULT_DATABASE_DIR) -> str:
    """The SQLite file the service uses when no ``--database`` is given."""
    return f"sqlite:///{os.path.join(os.path.abspath(directory), 'control.db')}"


def hold_sqlite_file(path: str) -> int:
    """Hold ``<path>.lock`` for the life of this process: one control service per SQLite file.

    Raises :class:`InvalidRequest` naming the other service's pid if it runs.
    Several replicas need PostgreSQL (docs/operations.md, "High availability").
    """
    from control.pidlock import LockHeld, hold_lock

    try:
        return hold_lock(os.path.abspath(path) + ".lock")
    except LockHeld as held:
        raise InvalidRequest(
            f"Another control service (pid {held.holder}) already serves the SQLite database "
            f"{path}. SQLite serves one control process only: stop that one, or, to run several "
            "replicas, put the cluster on PostgreSQL (--database postgresql+psycopg://...; "
            "docs/operations.md, 'High availability')."
        ) from None


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listener_safety(options: ServiceOptions) -> None:
    """Refuse plain HTTP on a non-loopback address unless explicitly allowed."""
    if options.tls_dir is None and not is_loopback(options.host) and not options.allow_insecure:
        raise InvalidRequest(
            f"Refusing to serve plain HTTP on {options.host}: anyone on the network could change "
            "the cluster. Give --tls-dir (see `shoal ca init`), bind to 127.0.0.1, or pass "
            "--allow-insecure if you really mean it."
        )
    if options.metrics_address is not None:
        from control.metrics_http import parse_address

        host, _ = parse_address(options.metrics_address)
        if not is_loopback(host) and not options.allow_insecure:
            raise InvalidRequest(
                f"Refusing to serve the metrics as plain HTTP on {host}: give a loopback "
                "--metrics-address (such as 127.0.0.1:9523), scrape /metrics on the API's port "
                "with a client certificate, or pass --allow-insecure if you really mean it."
            )


def server_endpoint(reactor: Any, options: ServiceOptions, denylist: Denylist | None = None) -> Any:
    """TCP, or TLS requiring client certificates signed by the cluster CA and not
    revoked (in ``denylist``), with a deep listen queue (:mod:`control.listening`).

    Reads the TLS files at once, so a missing one is refused before anything starts.
    """
    from control.listening import ServiceEndpoint

    if options.tls_dir is None:
        return ServiceEndpoint(reactor, options.port, options.host)
    from control.ca import server_tls_options

    revoked = None if denylist is None else denylist.revoked
    return ServiceEndpoint(
        reactor, options.port, options.host, server_tls_options(options.tls_dir, revoked)
    )


def connection_limits(options: ServiceOptions) -> ConnectionLimits:
    """The deadlines and connection limits the options ask for.

    Without ``max_connections``, the cap is the process's file-descriptor
    limit less a headroom, so that the service can always open its database
    and answer the clients (agents among them) it has let in.
    """
    from control.api.channel import ConnectionLimits, default_max_connections

    maximum = options.max_connections
    return ConnectionLimits(
        header_timeout=options.header_timeout,
        body_timeout=options.body_timeout,
        idle_timeout=options.idle_timeout,
        max_connections=default_max_connections() if maximum is None else maximum,
        max_per_address=options.max_connections_per_address,
    )


def is_postgres(database: str) -> bool:
    """Whether the SQLAlchemy URL ``database`` names PostgreSQL (replicas are possible)."""
    return database.startswith("postgresql")


def start_election(reactor: Any, database: str) -> Any:
    """The leadership of this replica: an election on PostgreSQL, else the sole leader.

    The election's session runs on a thread pool of its own (one thread), so
    that a busy database pool never delays the leader's checks.
    """
    from control.election import ElectionSettings
    from control.leader import Elector, PostgresLockSession, SoleLeader
    from control.runners import thread_pool_runner

    if not is_postgres(database):
        return SoleLeader()
    threads = ThreadPool(minthreads=1, maxthreads=1, name="shoal-leader")
    settings = ElectionSettings()
    session = PostgresLockSession(database, timeout=settings.timeout)
    elector = Elector(session, thread_pool_runner(reactor, threads), reactor, settings)
    reactor.callWhenRunning(threads.start)
    reactor.callWhenRunning(elector.start)
    reactor.addSystemEventTrigger("before", "shutdown", elector.stop)
    reactor.addSystemEventTrigger("after", "shutdown", threads.stop)
    return elector


def flush_heartbeats(reactor: Any, store: Any, runner: Any, interval: float) -> None:
    """Write the heartbeats the store keeps in memory every ``interval`` seconds, and
    once more at shutdown (:mod:`control.store.seen`)."""
    from twisted.internet.task import LoopingCall

    log = structlog.get_logger("shoal.control")

    def flush() -> Any:
        d = runner(store.flush_seen)
        d.addErrback(lambda f: log.warning("heartbeats.flush_failed", error=f.getErrorMessage()))
        return d

    loop = LoopingCall(flush)
    loop.clock = reactor
    reactor.callWhenRunning(loop.start, interval, now=False)

    def stop() -> Any:
        if loop.running:
            loop.stop()
        return flush()

    reactor.addSystemEventTrigger("before", "shutdown", stop)


def listen_for_changes(reactor: Any, database: str, notifier: Any) -> None:
    """On PostgreSQL, wake watchers when another replica commits (LISTEN/NOTIFY)."""
    if not is_postgres(database):
        return
    from control.store.listener import ChangeListener

    listener = ChangeListener(database, notifier.check, reactor.callFromThread)
    reactor.callWhenRunning(listener.start)
    reactor.addSystemEventTrigger("before", "shutdown", listener.stop)


def build_site(
    reactor: Any,
    store: Any,
    pool: ThreadPool,
    options: ServiceOptions,
    database: str | None = None,
    denylist: Denylist | None = None,
    metrics: ControlMetrics | None = None,
    warm: bool = False,
) -> LimitedSite:
    """The web site serving the API for ``store``, with its calls run in ``pool``,
    and its metrics (``metrics``, or new ones) at ``/metrics``.

    ``database`` is the store's URL: on PostgreSQL the replica listens for
    other replicas' writes and takes part in the leader election. The revoked
    certificates (``denylist``) are loaded at start and every
    :data:`REVOCATION_REFRESH` seconds; the site drops the live connections of a
    certificate as soon as it is revoked. With ``warm``, the listings are loaded and
    encoded in the pool once the reactor runs (:meth:`ControlAPI.warm`)."""
    from twisted.internet.task import LoopingCall

    from control.api.app import ControlAPI
    from control.api.channel import LimitedSite
    from control.api.denylist import Denylist
    from control.api.limits import BoundedRequest
    from control.api.metrics import ControlMetrics, MeteredStore
    from control.failover_service import FailoverService
    from control.liveness import FailoverSettings
    from control.store.threaded import ThreadedStore, thread_pool_runner

    runner = thread_pool_runner(reactor, pool)
    metrics = ControlMetrics() if metrics is None else metrics
    store = MeteredStore(store, metrics, reactor)
    threaded = ThreadedStore(store, runner)
    replicated = database is not None and is_postgres(database)
    failover = FailoverSettings(grace=options.failover_grace)
    if replicated:
        failover = FailoverSettings(grace=failover.grace, seen_lag=failover.replicated_lag)
    flush_heartbeats(reactor, store, runner, failover.seen_flush)
    floor = options.watch_floor
    if floor is None:
        floor = 5.0 if replicated else 1.0
    leadership = start_election(reactor, database or "")
    denylist = Denylist() if denylist is None else denylist
    api = ControlAPI(
        threaded,
        reactor,
        new_uuid=uuid4,
        node_timeout=options.node_timeout,
        failover=failover,
        watch_interval=floor,
        leading=leadership.leading,
        denylist=denylist,
    )
    reactor.addSystemEventTrigger("before", "shutdown", api.notifier.stop)
    if warm:
        reactor.callWhenRunning(_warm, reactor, threaded, api)
    metrics.watch(lambda: api.notifier.waiting)
    metrics.collect_cluster(store, reactor, failover, api.started)
    if database is not None:
        listen_for_changes(reactor, database, api.notifier)
    executor = FailoverService(
        store, runner, reactor, failover, started=api.started, leading=leadership.leading
    )
    reactor.callWhenRunning(executor.start)
    reactor.addSystemEventTrigger("before", "shutdown", executor.stop)
    site = LimitedSite(
        metrics.root(api.resource(), ControlAPI.app.url_map, reactor, runner, api.guard_reads),
        connection_limits(options),
        requestFactory=BoundedRequest,
        reactor=reactor,
        parsePOSTFormSubmission=False,
    )
    site.displayTracebacks = False
    denylist.subscribe(lambda: site.drop_revoked(denylist.revoked))
    refresh = LoopingCall(
        lambda: Deferred.fromCoroutine(api.refresh_revocations()).addErrback(_refresh_failed)
    )
    refresh.clock = reactor
    reactor.callWhenRunning(refresh.start, REVOCATION_REFRESH)
    reactor.addSystemEventTrigger("before", "shutdown", _stopper(refresh))
    return site


def serve_metrics(
    reactor: Any, address: str, metrics: ControlMetrics, pool: ThreadPool, failed: Any
) -> None:
    """Serve ``metrics`` as plain HTTP at ``address`` too (``--metrics-address``)."""
    from control.metrics_http import listen_metrics
    from control.runners import thread_pool_runner

    def refused(reason: Failure) -> None:
        failed(Failure(Unavailable(f"the metrics address {address}: {reason.getErrorMessage()}")))

    runner = thread_pool_runner(reactor, pool)
    listen_metrics(
        reactor, address, metrics.registry, runner,
        structlog.get_logger("shoal.control"), "control.metrics_listening",
    ).addErrback(refused)


def _stopper(loop: Any) -> Any:
    def stop() -> None:
        if loop.running:
            loop.stop()

    return stop


def _refresh_failed(failure: Failure) -> None:
    structlog.get_logger("shoal.control").error(
        "revocations.refresh_failed", error=failure.getErrorMessage()
    )


def _warm(reactor: Any, threaded: Any, api: Any) -> Deferred:
    """Fill the API's caches in the pool (the service already listens: agents are answered
    meanwhile), and log how long that took."""
    log = structlog.get_logger("shoal.control")
    started = reactor.seconds()

    def warmed(datasets: int) -> None:
        collector.freeze()
        log.info("control.warmed", datasets=datasets,
                 seconds=round(reactor.seconds() - started, 3))

    def failed(reason: Failure) -> None:
        log.warning("control.warm_failed", error=reason.getErrorMessage())

    return threaded.compute(api.warm).addCallbacks(warmed, failed)


def run_control_service(reactor: Any = None, **settings: Any) -> None:
    """Run the control service until it is stopped (blocking; runs the reactor).

    ``settings`` are the fields of :class:`ServiceOptions` (port, host,
    database, tls_dir, node_timeout, allow_insecure, events_per_dataset,
    events_max_age, failover_grace, ...).
    """
    from control.store.factory import open_store

    options = ServiceOptions(**settings)
    collector.tune()
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    check_listener_safety(options)
    from control.api.denylist import Denylist

    denylist = Denylist()
    endpoint = server_endpoint(reactor, options, denylist)
    database = options.database or default_database_url()
    if database.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(database[len("sqlite:///") :]) or ".", exist_ok=True)
        if database[len("sqlite:///") :] not in ("", ":memory:"):
            hold_sqlite_file(database[len("sqlite:///") :])
    retention = EventRetention(options.events_per_dataset, options.events_max_age)
    store = open_store(database, upgrade=True, retention=retention, seen_in_memory=True,
                       sole_writer=database.startswith("sqlite"))  # held: hold_sqlite_file
    # Before anything listens (the reactor is not running yet): no revoked
    # certificate gets in while the first refresh is on its way.
    denylist.update(r.serial for r in store.revocations())
    # The pool's threads are not daemons: start them only with the reactor, so
    # that a failure before it runs cannot leave the process hanging.
    pool = ThreadPool(minthreads=1, maxthreads=options.database_threads, name="shoal-db")
    reactor.callWhenRunning(pool.start)
    reactor.addSystemEventTrigger("after", "shutdown", pool.stop)
    reactor.addSystemEventTrigger("after", "shutdown", store.close)
    from control.api.metrics import ControlMetrics

    metrics = ControlMetrics()
    site = build_site(reactor, store, pool, options, database, denylist, metrics, warm=True)
    configure_logging()
    log = structlog.get_logger("shoal.control")
    failures: list[Failure] = []

    def listening(port: Any) -> None:
        scheme = "http" if options.tls_dir is None else "https"
        address = port.getHost()
        url = f"{scheme}://{address.host}:{address.port}"
        log.info("control.listening", url=url, dashboard=f"{url}/ui/")

    def failed(reason: Failure) -> None:
        failures.append(reason)
        reactor.stop()

    reactor.callWhenRunning(lambda: endpoint.listen(site).addCallbacks(listening, failed))
    if options.metrics_address is not None:
        reactor.callWhenRunning(serve_metrics, reactor, options.metrics_address, metrics, pool,
                                failed)
    reactor.run()
    if failures:
        raise Unavailable(f"Cannot serve the API: {failures[0].getErrorMessage()}")
