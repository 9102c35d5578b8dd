"""
The REST API: Flocker's v1 routes plus Shoal's agent-facing ``/v1/shoal/`` ones.

Handlers are thin: they read and validate the request (:mod:`control.api.body`),
call the store through :class:`~control.store.threaded.ThreadedStore` (every
call returns a Deferred), poke the watch notifier after a successful write,
and answer JSON (:mod:`control.api.errors`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any
from uuid import UUID, uuid4

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request
from werkzeug.exceptions import HTTPException

from control import FLOCKER_API_VERSION, __version__, rules
from control import failover_rules as fr
from control import snapshots as snap
from control.admission import check_create
from control.api import class_routes, creating, moving, pages, placing, revocation_routes, schemas
from control.api.actor import actor_of
from control.api.body import (
    if_tag,
    path_uuid,
    query_parameters,
    read_json,
    require_live,
    uuid_list,
)
from control.api.denylist import Denylist
from control.api.dispatch import Dispatch
from control.api.errors import json_headers, json_response, refuse, routing_error, unexpected
from control.api.group import GroupCommit
from control.api.guard import Authenticate, Guard, ReadGuard, peer_principal, principal_on
from control.api.listing import ListingEncoder, StateListingEncoder, StoredListing, send
from control.api.node_listing import NodeFragments, live_leases_of, with_array
from control.api.openapi import document
from control.api.repeats import Reporting
from control.api.reporting import renew_group
from control.api.reporting import write_group as write_reports
from control.api.root import JSONRoot
from control.api.routes import RoutedKlein
from control.api.sources import find_source
from control.api.watch import Notifier
from control.binding import class_for, placement_conditions
from control.classes import StorageClass
from control.errors import Conflict, InvalidRequest, NotFound, ShoalError, Unavailable
from control.events import DEFAULT_LIMIT, EventQuery
from control.failover import held_reasons
from control.liveness import FailoverSettings, liveness
from control.model import (
    UNBOUND,
    AccessMode,
    ClusterState,
    Condition,
    ConditionKind,
    Configuration,
    Dataset,
    DatasetSnapshot,
    Fence,
    Node,
    NodeState,
    Versions,
    tag_for,
)
from control.reactor import ReactorTime
from control.rules import check_tag, reported_orphans
from control.store.threaded import ThreadedStore
from control.ui import ui_resource
from control.wire import (
    condition_to_json,
    conditions_to_json,
    dataset_from_json,
    dataset_to_json,
    event_to_json,
    failover_to_json,
    lease_from_json,
    lease_to_json,
    node_dataset_to_json,
    node_to_json,
    reported_orphan_to_json,
    snapshot_to_json,
    versions_to_json,
)

WATCH_DEFAULT = schemas.WATCH_DEFAULT
WATCH_MAXIMUM = schemas.WATCH_MAXIMUM


def peer_identity(request: Request) -> str | None:
    """
    What a node registration through ``request`` records as its owner: the node
    a node certificate is bound to (``urn:shoal:node:UUID``), else the SHA-256
    fingerprint (hex) of the client certificate; ``None`` over plain HTTP.
    """
    principal = principal_on(request)
    if principal is None:
        principal = peer_principal(request)
    return None if principal is None else principal.identity


def _concerns(params: Mapping[str, Any]) -> frozenset[UUID] | None:
    """What a watch asks to be woken for (its node and datasets), or ``None``: everything."""
    node, datasets = params.get("node"), params.get("datasets")
    if node is None and datasets is None:
        return None
    return uuid_list(datasets or "") | ({UUID(node)} if node is not None else set())


def _reach(*datasets: Dataset | None) -> set[UUID] | None:
    """Whom a write of these datasets (as stored, and as they were) concerns: each one's
    id, its primary and its readers; targeted watchers of anyone else sleep on. ``None``
    (everyone) for a copy, which its source's primary makes (:func:`snap.clones_to_make`)."""
    reach: set[UUID] = set()
    for dataset in datasets:
        if dataset is not None:
            if dataset.source is not None:
                return None
            reach |= {dataset.dataset_id, dataset.primary, *dataset.readers}
    return reach


def _by_id(items: Any, key: Callable[[Any], UUID]) -> list[Any]:
    return sorted(items, key=lambda item: str(key(item)))


def _watch_answer(request: Request, versions: Versions) -> bytes:
    """A watch's answer: the counters."""
    return json_response(request, versions_to_json(versions))


def _watch_cancelled(request: Request, failure: Failure) -> bytes | Failure:
    """A watch cancelled: its client went away (nobody reads an answer), or the service is
    stopping (503); any other failure goes on to the error handlers."""
    if not failure.check(CancelledError):
        return failure
    if getattr(request, "_disconnected", False):
        return b""
    raise Unavailable("The control service is shutting down; watch again once it is back.")


class ControlAPI:
    """
    The control service's HTTP API, bound to one store and one clock.

    ``authenticate`` finds the principal of a request's client certificate
    (default: :func:`~control.api.guard.peer_principal`; ``None`` over plain
    HTTP), which :class:`~control.api.guard.Guard` authorises by role for
    every route; ``denylist`` holds the revoked serials. ``identify`` names
    the owner a node registration records (default: :func:`peer_identity`).
    """

    app = RoutedKlein()

    def __init__(
        self,
        store: ThreadedStore,
        clock: ReactorTime,
        new_uuid: Callable[[], UUID] = uuid4,
        node_timeout: float = 30.0,
        watch_interval: float = 1.0,
        identify: Callable[[Request], str | None] = peer_identity,
        failover: FailoverSettings | None = None,
        started: float | None = None,
        leading: Callable[[], bool] | None = None,
        authenticate: Authenticate = peer_principal,
        denylist: Denylist | None = None,
    ) -> None:
        self.failover = FailoverSettings() if failover is None else failover
        self.started = clock.seconds() if started is None else started
        self._store = store
        self._leading = leading if leading is not None else (lambda: True)
        self._identify = identify
        self._authenticate = authenticate
        self.denylist = Denylist() if denylist is None else denylist
        self._clock = clock
        self._new_uuid = new_uuid
        self._node_timeout = node_timeout
        self.notifier = Notifier(clock, store.versions, watch_interval)
        self._listing = ListingEncoder()
        self._stored_listing = StoredListing(store.store)
        self._shoal_listing = ListingEncoder(node_dataset_to_json)
        self._state_listing = StateListingEncoder()
        self._node_fragments = NodeFragments()
        self._creates = GroupCommit(partial(store.compute, creating.write_group, store.store))
        self._report_group = GroupCommit(partial(store.compute, write_reports, store.store))
        checks = GroupCommit(partial(store.compute, renew_group, store.store))
        self._reporting = Reporting(
            store.store.renew_report, self._report_group.create,
            checks.create if store.store.renews_by_reading else None,
        )
        self._moves = GroupCommit(partial(store.compute, moving.write_group, store.store))

    def warm(self) -> int:
        """Load the configuration and the actual state and encode the whole listings, blocking
        (the service calls it in its pool once it listens): the first listings after a
        restart then find the caches filled, or wait for this instead of doing the same work
        again. Returns the datasets loaded.

        The stored v1 listing is read first: the first listings ask for it until the
        configuration is loaded and encoded, and then find it read (not reading it while the
        rest is loaded)."""
        store = self._store.store
        self._stored_listing.listing()
        configuration = store.configuration(self._now())
        self._listing.listing(configuration)
        self._stored_listing.forget()
        self._shoal_listing.listing(configuration)
        self._state_listing.datasets(store.cluster_state(), configuration)
        return len(configuration.datasets)

    def resource(self) -> Resource:
        """The Twisted resource serving the API and the dashboard (mount it at the site root)."""
        handlers = [((ShoalError,), self._refused), ((HTTPException,), self._unrouted),
                    ((Exception,), self._failed)]  # Klein's error handlers, in their order
        routed = Dispatch(self.app, self.app.resource(), handlers)
        guarded = Guard(routed, self.app.url_map, self._authenticate, self.denylist)
        return JSONRoot(guarded, ui_resource())

    def guard_reads(self, resource: Resource) -> Resource:
        """``resource`` (outside the API's routes) behind the API's revocation and read rule."""
        return ReadGuard(resource, self._authenticate, self.denylist)

    async def refresh_revocations(self) -> None:
        """Load the revoked serials from the store into :attr:`denylist`."""
        self.denylist.update(r.serial for r in await self._store.revocations())

    def _now(self) -> float:
        return self._clock.seconds()

    def _node_json(
        self, node: Node, now: float, report: NodeState | None = None
    ) -> dict[str, Any]:
        state = liveness(node, now, self.failover, self.started)
        capacity = None if report is None else report.capacity
        capacities = () if report is None else report.all_capacities()
        return node_to_json(node, now, self._node_timeout, state.value, capacity, capacities)

    # -- errors --------------------------------------------------------------

    @app.handle_errors(ShoalError)
    def _refused(self, request: Request, failure: Failure) -> bytes:
        return refuse(request, failure)

    @app.handle_errors(HTTPException)
    def _unrouted(self, request: Request, failure: Failure) -> bytes:
        return routing_error(request, failure)

    @app.handle_errors(Exception)
    def _failed(self, request: Request, failure: Failure) -> bytes:
        return unexpected(request, failure)

    # -- general -------------------------------------------------------------

    @app.route("/v1/version", methods=["GET"])
    def version(self, request: Request) -> bytes:
        """The Flocker API version spoken, Shoal's own version, and whether this replica leads."""
        return json_response(
            request,
            {"flocker": FLOCKER_API_VERSION, "shoal": __version__, "leader": self._leading()},
        )

    @app.route("/v1/openapi.json", methods=["GET"])
    def openapi(self, request: Request) -> bytes:
        """The OpenAPI document of this API."""
        return json_response(request, document(__version__))

    @app.route("/v1/shoal/whoami", methods=["GET"])
    def whoami(self, request: Request) -> bytes:
        """The caller's certificate: its subject, role and node (all ``None`` over plain HTTP)."""
        principal = self._authenticate(request)
        role = None if principal is None or principal.role is None else principal.role.value
        node = None if principal is None or principal.node is None else str(principal.node)
        return json_response(
            request,
            {
                "tls": principal is not None,
                "subject": None if principal is None else principal.subject,
                "role": role,
                "node": node,
            },
        )

    # -- datasets ------------------------------------------------------------

    @app.route("/v1/configuration/datasets", methods=["GET"])
    async def list_datasets(self, request: Request) -> bytes:
        """Every dataset, deleted ones included, with the configuration tag.

        Until the configuration is loaded and its listing encoded (a restart: the service
        warms them in its pool), or when another replica wrote, the listing is read as
        stored with the rows (:meth:`~control.store.interface.Store.dataset_listing`)."""
        configuration = await self._store.cached_configuration(self._now())
        body = None if configuration is None else self._listing.cached(configuration)
        if body is None and (configuration is None or not self._listing.ready()):
            generation, stored = await self._store.compute(self._stored_listing.listing)
            json_headers(request, tag=tag_for(generation))
            return stored
        self._stored_listing.forget()
        if body is None:  # encode off the reactor thread: 100,000 datasets take a while
            configuration, body = await self._store.compute(self._listing.listing, configuration)
        json_headers(request, tag=configuration.tag)
        return send(request, body)

    @app.route("/v1/configuration/datasets", methods=["POST"])
    async def create_dataset(self, request: Request) -> bytes:
        """Create a dataset (201); its id is generated unless given.

        A size no live node can create is refused (:mod:`control.admission`).
        """
        body = read_json(request, schemas.CREATE_DATASET)
        dataset_id = body.get("dataset_id") or str(self._new_uuid())
        asked = dataset_from_json({**body, "dataset_id": dataset_id})
        try:
            live: bool | ShoalError = require_live(request)
        except ShoalError as refusal:  # refused where the check is, after placement's refusals
            live = refusal
        new = creating.PendingCreate(
            asked, if_tag(request), self._now(), actor_of(request), live, self._node_timeout
        )
        with self.notifier.writing():
            stored, generation = await self._creates.create(new)
            self.notifier.changed(generation, _reach(stored))
        self.notifier.check()
        return json_response(request, dataset_to_json(stored), 201, tag_for(generation))

    @app.route("/v1/configuration/datasets/<dataset_id>", methods=["POST"])
    async def move_dataset(self, request: Request, dataset_id: str) -> bytes:
        """Give a dataset a new primary; without one, answer it unchanged (as Flocker does)."""
        uuid = path_uuid(dataset_id, "dataset id")
        body = read_json(request, schemas.MOVE_DATASET)
        require_live(request)  # a malformed header is refused even when nothing moves
        if "primary" not in body:
            return await self._unchanged_dataset(request, uuid)
        primary = path_uuid(body["primary"], "primary")
        with self.notifier.writing():
            stored, generation, current = await self._moves.create(self._pending_move(
                request, uuid, primary
            ))
            if stored != current:  # else the generation is another write's
                self.notifier.changed(generation, _reach(stored, current))
        self.notifier.check()
        return json_response(request, dataset_to_json(stored), tag=tag_for(generation))

    def _pending_move(self, request: Request, uuid: UUID, primary: UUID) -> moving.PendingMove:
        return moving.PendingMove(uuid, primary, if_tag(request), self._now(),
                                  actor_of(request), require_live(request), self._node_timeout)

    async def _check_move(self, request: Request, uuid: UUID, primary: UUID) -> Dataset | None:
        """Refuse a move of ``uuid`` to ``primary`` that the node, the dataset's class or the
        node's capacity forbids (the store's write refuses the rest; :func:`moving.check`);
        returns the dataset as it is before the move (``None``: there is none)."""
        pending = self._pending_move(request, uuid, primary)
        current: Dataset | None = await self._store.compute(
            moving.check_one, self._store.store, pending
        )
        return current

    async def _unchanged_dataset(self, request: Request, uuid: UUID) -> bytes:
        configuration = await self._store.configuration(self._now())
        check_tag(configuration.generation, if_tag(request))
        dataset = configuration.datasets.get(uuid)
        if dataset is None:
            raise NotFound(f"Dataset {uuid} does not exist.")
        return json_response(request, dataset_to_json(dataset), tag=configuration.tag)

    @app.route("/v1/configuration/datasets/<dataset_id>", methods=["DELETE"])
    async def delete_dataset(self, request: Request, dataset_id: str) -> bytes:
        """Mark a dataset deleted; its agents destroy the volume."""
        uuid = path_uuid(dataset_id, "dataset id")
        current = await self._store.dataset(uuid)
        with self.notifier.writing():
            if current is not None and await placing.retains(self._store, current):
                stored, generation = await self._store.release_dataset(
                    uuid, if_tag(request), self._now(), actor=actor_of(request)
                )
            else:
                stored, generation = await self._store.delete_dataset(
                    uuid, if_tag(request), self._now(), actor=actor_of(request)
                )
            if stored != current:  # else the generation is another write's
                self.notifier.changed(generation, _reach(stored, current))
        self.notifier.check()
        return json_response(request, dataset_to_json(stored), tag=tag_for(generation))

    async def _check_placeable(self, primary: UUID, dataset_id: UUID | None) -> None:
        """Refuse (409) a primary that is fenced or draining (docs/failover.md)."""
        nodes = await self._store.nodes()
        fr.check_placeable(next((n for n in nodes if n.uuid == primary), None), dataset_id)

    async def _check_live(self, request: Request, primary: UUID) -> None:
        """Refuse a primary that is not live, if the request opts in (``X-Shoal-Require-Live``)."""
        if not require_live(request):
            return
        nodes = await self._store.nodes()
        node = next((n for n in nodes if n.uuid == primary), None)
        rules.check_live(node, self._now(), self._node_timeout)

    # -- containers (Flocker's, kept for old clients) -------------------------

    @app.route("/v1/configuration/containers", methods=["GET"])
    async def configuration_containers(self, request: Request) -> bytes:
        """Flocker's container configuration: Shoal manages no containers, so ``[]``."""
        configuration = await self._store.configuration(self._now())
        return json_response(request, [], tag=configuration.tag)

    @app.route("/v1/state/containers", methods=["GET"])
    def state_containers(self, request: Request) -> bytes:
        """Flocker's container state: Shoal runs no containers, so ``[]``."""
        return json_response(request, [])

    # -- state ---------------------------------------------------------------

    @app.route("/v1/state/datasets", methods=["GET"])
    async def state_datasets(self, request: Request) -> bytes:
        """Where each dataset's volume actually is, as the agents report.

        A fenced node's reports of datasets now primary elsewhere are left out
        (:func:`control.failover.visible_state`)."""
        params = query_parameters(request, schemas.STATE_DATASETS_QUERY)
        node = params.get("node")
        cluster_state = await self._store.cluster_state()
        configuration = await self._store.configuration(self._now())
        body = self._state_listing.cached(cluster_state, configuration, node)
        if body is None:  # encode off the reactor thread: 10,000 datasets take a while
            body = await self._store.compute(
                self._state_listing.parts,
                cluster_state,
                configuration,
                None if node is None else UUID(node),
            )
        json_headers(request)
        return send(request, body)

    @app.route("/v1/state/nodes", methods=["GET"])
    async def state_nodes(self, request: Request) -> bytes:
        """Every registered node, Flocker style."""
        nodes = _by_id(await self._store.nodes(), lambda n: n.uuid)
        return json_response(request, [{"host": n.host, "uuid": str(n.uuid)} for n in nodes])

    @app.route("/v1/state/nodes/by_era/<era>", methods=["GET"])
    async def node_by_era(self, request: Request, era: str) -> bytes:
        """The node whose current era (boot id) is ``era``."""
        plausible = len(era) <= 255 and "\x00" not in era
        node = await self._store.node_by_era(era) if plausible else None
        if node is None:
            raise NotFound(f"No registered node has era {era[:80]!r}.")
        return json_response(request, {"uuid": str(node.uuid)})

    # -- leases --------------------------------------------------------------

    @app.route("/v1/configuration/leases", methods=["GET"])
    async def list_leases(self, request: Request) -> bytes:
        """Every lease that has not expired, with seconds left."""
        now = self._now()
        configuration = await self._store.configuration(now)
        leases = _by_id(configuration.live_leases(now).values(), lambda lease: lease.dataset_id)
        return json_response(
            request, [lease_to_json(lease, now) for lease in leases], tag=configuration.tag
        )

    @app.route("/v1/configuration/leases", methods=["POST"])
    async def acquire_lease(self, request: Request) -> bytes:
        """Acquire a lease (201) or renew one this node holds (200); with ``move``, also make
        the node the dataset's primary in the same write."""
        body = read_json(request, schemas.ACQUIRE_LEASE)
        now = self._now()
        lease = lease_from_json(body, now)
        move = bool(body.get("move", False))
        if move:
            await self._check_move(request, lease.dataset_id, lease.node_uuid)
        stored, created, generation = await self._store.acquire_lease(
            lease, if_tag(request), now, actor=actor_of(request), move=move
        )
        self.notifier.check()
        code = 201 if created else 200
        return json_response(request, lease_to_json(stored, now), code, tag_for(generation))

    @app.route("/v1/configuration/leases/<dataset_id>", methods=["DELETE"])
    async def release_lease(self, request: Request, dataset_id: str) -> bytes:
        """Release a dataset's lease, answering the lease released."""
        uuid = path_uuid(dataset_id, "dataset id")
        now = self._now()
        released, generation = await self._store.release_lease(
            uuid, if_tag(request), now, actor=actor_of(request)
        )
        self.notifier.check()
        return json_response(request, lease_to_json(released, now), tag=tag_for(generation))

    # -- Shoal's agent-facing endpoints ---------------------------------------

    @app.route("/v1/shoal/nodes", methods=["GET"])
    async def list_nodes(self, request: Request) -> bytes:
        """Registered nodes, each with whether it was heard from recently, its failover
        liveness (live, suspect, dead), fence and draining mark."""
        now = self._now()
        nodes = _by_id(await self._store.nodes(), lambda n: n.uuid)
        reports = (await self._store.cluster_state()).reports
        return json_response(
            request, [self._node_json(n, now, reports.get(n.uuid)) for n in nodes]
        )

    @app.route("/v1/shoal/nodes/<node_uuid>", methods=["PUT"])
    async def register_node(self, request: Request, node_uuid: str) -> bytes:
        """Register a node or update its host, era and labels."""
        uuid = path_uuid(node_uuid, "node uuid")
        body = read_json(request, schemas.REGISTER_NODE)
        now = self._now()
        node = Node(
            uuid,
            body["host"],
            body.get("era"),
            body.get("labels") or {},
            now,
            mount_root=body.get("mount_root"),
            identity=self._identify(request),
        )
        stored = await self._store.register_node(node)
        self.notifier.check()
        return json_response(request, self._node_json(stored, now))

    # -- fencing and draining (docs/failover.md) -------------------------------

    async def _known_node(self, uuid: UUID) -> Node:
        node = next((n for n in await self._store.nodes() if n.uuid == uuid), None)
        if node is None:
            raise NotFound(
                f"Node {uuid} is not registered. List the nodes with `shoal node list` "
                "(GET /v1/shoal/nodes)."
            )
        return node

    @app.route("/v1/shoal/nodes/<node_uuid>/fence", methods=["POST"])
    async def fence_node(self, request: Request, node_uuid: str) -> bytes:
        """Fence a node by hand: its datasets fail over, and it stays fenced until unfenced."""
        uuid = path_uuid(node_uuid, "node uuid")
        body = read_json(request, schemas.FENCE_NODE)
        await self._known_node(uuid)
        now = self._now()
        actor = actor_of(request)
        reason = body.get("reason") or f"fenced by {actor}"
        fence = Fence(at=now, reason=reason, actor=actor, automatic=False)
        stored, _ = await self._store.fence_node(uuid, fence)
        self.notifier.check()
        return json_response(request, self._node_json(stored, now))

    @app.route("/v1/shoal/nodes/<node_uuid>/fence", methods=["DELETE"])
    async def unfence_node(self, request: Request, node_uuid: str) -> bytes:
        """Lift a node's fence; refused (409) while it still reports holding a dataset
        whose primary is now another node."""
        uuid = path_uuid(node_uuid, "node uuid")
        node = await self._known_node(uuid)
        configuration = await self._store.configuration(self._now())
        state = await self._store.cluster_state()
        fr.check_unfence(node, state.reports.get(uuid), configuration)
        now = self._now()
        actor = actor_of(request)
        stored, _ = await self._store.unfence_node(
            uuid, now, actor=actor, reason=f"unfenced by {actor}"
        )
        self.notifier.check()
        return json_response(request, self._node_json(stored, now))

    @app.route("/v1/shoal/nodes/<node_uuid>/drain", methods=["POST"])
    async def drain_node(self, request: Request, node_uuid: str) -> bytes:
        """Mark a node draining: its datasets move off it (leased ones once released)."""
        return await self._set_draining(request, node_uuid, True)

    @app.route("/v1/shoal/nodes/<node_uuid>/drain", methods=["DELETE"])
    async def undrain_node(self, request: Request, node_uuid: str) -> bytes:
        """Stop draining a node (datasets already moved stay where they are)."""
        return await self._set_draining(request, node_uuid, False)

    async def _set_draining(self, request: Request, node_uuid: str, draining: bool) -> bytes:
        uuid = path_uuid(node_uuid, "node uuid")
        now = self._now()
        stored, _ = await self._store.set_draining(uuid, draining, now, actor=actor_of(request))
        self.notifier.check()
        return json_response(request, self._node_json(stored, now))

    @app.route("/v1/shoal/datasets/<dataset_id>/failover", methods=["GET"])
    async def get_failover(self, request: Request, dataset_id: str) -> bytes:
        """A dataset's failover options and the grace that applies to it."""
        uuid = path_uuid(dataset_id, "dataset id")
        configuration = await self._store.configuration(self._now())
        dataset = configuration.datasets.get(uuid)
        if dataset is None:
            raise NotFound(f"Dataset {uuid} does not exist.")
        return json_response(
            request, failover_to_json(dataset, self.failover.grace), tag=configuration.tag
        )

    @app.route("/v1/shoal/datasets/<dataset_id>/failover", methods=["PUT"])
    async def set_failover(self, request: Request, dataset_id: str) -> bytes:
        """Set a dataset's failover options: on, off or the default, and a longer grace."""
        uuid = path_uuid(dataset_id, "dataset id")
        body = read_json(request, schemas.SET_FAILOVER)
        stored, generation = await self._store.set_failover(
            uuid,
            body.get("enabled"),
            body.get("grace"),
            if_tag(request),
            self._now(),
            actor=actor_of(request),
        )
        self.notifier.check()
        return json_response(
            request, failover_to_json(stored, self.failover.grace), tag=tag_for(generation)
        )

    @app.route("/v1/shoal/state/<node_uuid>", methods=["PUT"])
    async def report_state(self, request: Request, node_uuid: str) -> bytes:
        """Record what a node observes; answers whether it changed and both counters."""
        uuid = path_uuid(node_uuid, "node uuid")
        with self.notifier.writing("state"):
            try:
                changed, versions, reached = await self._reporting.report(
                    request, uuid, self._identify(request), self._now()
                )
            except NotFound:
                raise NotFound(
                    f"Node {uuid} has not registered: register first with "
                    f"PUT /v1/shoal/nodes/{uuid}, then report its state."
                ) from None
            if reached is not None:  # whom the group's state versions concern (control.reach)
                self.notifier.reached(
                    reached.first, reached.last, reached.concerns, reached.generation
                )
        self.notifier.notify(versions)  # the counters just read: no second read
        return json_response(request, {"changed": changed, **versions_to_json(versions)})

    @app.route("/v1/shoal/nodes/<node_uuid>/configuration", methods=["GET"])
    async def node_configuration(self, request: Request, node_uuid: str) -> bytes:
        """The datasets (and their leases) one node is primary for, plus those it asks about.

        One store call: the node's datasets, the leases and the unsettled snapshots at one
        generation (:meth:`~control.store.interface.Store.node_datasets`), and the node's
        datasets array from what was encoded of the same list (issue 16)."""
        uuid = path_uuid(node_uuid, "node uuid")
        params = query_parameters(request, schemas.NODE_CONFIGURATION_QUERY)
        also = uuid_list(params.get("also", ""))
        now = self._now()
        view = await self._store.node_datasets(uuid, also)
        snapshots = await self._pending_snapshots(uuid, view.unsettled, view.everything, now)
        datasets = view.datasets
        if view.copies:
            reports = (await self._store.cluster_state()).reports
            datasets = _with_clones_to_make(datasets, uuid, view.copies, reports)
        datasets = _with_readings(datasets, uuid, {d.dataset_id: d for d in view.read})
        if len(datasets) == len(view.datasets):  # nothing added: the store's list, as it is
            array = self._node_fragments.array_of((uuid, also), view.datasets)
        else:
            array = self._node_fragments.array(_by_id(datasets, lambda d: d.dataset_id))
        leases = live_leases_of(view.leases, (d.dataset_id for d in datasets), now)
        fenced = sorted(str(n) for n in view.fenced)
        json_headers(request)
        return with_array(
            "datasets",
            array,
            {
                "generation": view.generation,
                "leases": [lease_to_json(x, now) for x in leases],
                "snapshots": [snapshot_to_json(x) for x in snapshots],
                "fenced": str(uuid) in fenced,
                "fenced_nodes": fenced,
                "node_lease": self.failover.node_lease,
                "heartbeat": self.failover.heartbeat,
            },
        )

    @app.route("/v1/shoal/conditions", methods=["GET"])
    async def conditions(self, request: Request) -> bytes:
        """Every condition the nodes report (of one dataset, if asked), with its node."""
        params = query_parameters(request, schemas.CONDITIONS_QUERY)
        dataset = params.get("dataset")
        dataset_id = None if dataset is None else UUID(dataset)
        state = await self._store.cluster_state()
        configuration = await self._store.configuration(self._now())
        classes = await self._store.classes()
        held = self._held_conditions(configuration, state, dataset_id, classes)
        return json_response(request, conditions_to_json(state, dataset_id) + held)

    def _held_conditions(
        self,
        configuration: Configuration,
        state: ClusterState,
        dataset_id: UUID | None,
        classes: list[StorageClass],
    ) -> list[dict[str, Any]]:
        """Why datasets stay on fenced or draining nodes, as conditions of those nodes; and
        the placement conditions (:func:`control.binding.placement_conditions`)."""
        now = self._now()
        datasets = [
            d for d in configuration.datasets.values()
            if dataset_id is None or d.dataset_id == dataset_id
        ]
        found = [
            {**condition_to_json(c), "node_uuid": str(configuration.datasets[c.dataset_id].primary)}
            for c in placement_conditions(datasets, classes, state, now)
            if c.dataset_id is not None
        ]
        topologies = {c.name: c.allowed_topologies for c in classes}
        held = held_reasons(configuration, state, now, self.failover, self.started, topologies)
        for held_id, reason in sorted(held.items(), key=lambda item: str(item[0])):
            if dataset_id is not None and held_id != dataset_id:
                continue
            primary = configuration.datasets[held_id].primary
            node = state.nodes.get(primary)
            since = node.fence.at if node is not None and node.fence is not None else now
            condition = Condition(
                held_id, ConditionKind.WAITING, "failover_held", reason, since
            )
            found.append({**condition_to_json(condition), "node_uuid": str(primary)})
        return found

    @app.route("/v1/shoal/events", methods=["GET"])
    async def events(self, request: Request) -> bytes:
        """The event history: of a dataset and/or node, after an event id, at most ``limit``."""
        params = query_parameters(request, schemas.EVENTS_QUERY)
        dataset, node = params.get("dataset"), params.get("node")
        asked = EventQuery(
            dataset_id=None if dataset is None else UUID(dataset),
            node_uuid=None if node is None else UUID(node),
            since=params.get("since"),
            limit=params.get("limit", DEFAULT_LIMIT),
        )
        found = await self._store.events(asked)
        return json_response(request, [event_to_json(e) for e in found])

    @app.route("/v1/shoal/orphans", methods=["GET"])
    async def list_orphans(self, request: Request) -> bytes:
        """Every backend volume some node reports that no dataset record owns, with the node."""
        cluster_state = await self._store.cluster_state()
        configuration = await self._store.configuration(self._now())
        found = reported_orphans(cluster_state.reports.values(), configuration.datasets)
        body = [reported_orphan_to_json(node, orphan) for node, orphan in found]
        return json_response(request, body, tag=configuration.tag)

    @app.route("/v1/shoal/orphans/<blockdevice_id>", methods=["DELETE"])
    async def destroy_orphan(self, request: Request, blockdevice_id: str) -> bytes:
        """Have an orphaned volume destroyed: records its dataset as deleted (see the store)."""
        if not 1 <= len(blockdevice_id) <= 255 or "\x00" in blockdevice_id:
            raise InvalidRequest("A blockdevice id is 1 to 255 characters, without NUL.")
        stored, generation = await self._store.destroy_orphan(
            blockdevice_id, if_tag(request), now=self._now(), actor=actor_of(request)
        )
        self.notifier.check()
        return json_response(request, dataset_to_json(stored), tag=tag_for(generation))

    @app.route("/v1/shoal/watch", methods=["GET"])
    def watch(self, request: Request) -> Deferred[bytes]:
        """Answer once either counter passes the given value, or after the timeout.

        Not a coroutine: an idle agent's watch names both counters, and is then one
        Deferred of the notifier's with its answer chained on (issue 16: the coroutine's
        machinery was a tenth of what a watch cost)."""
        params = query_parameters(request, schemas.WATCH_QUERY)
        configuration = params.get("configuration")
        state = params.get("state")
        timeout = float(params.get("timeout", WATCH_DEFAULT))
        concerns = _concerns(params)
        if configuration is None or state is None:
            return ensureDeferred(
                self._watch_from_now(request, configuration, state, timeout, concerns)
            )
        return self._watch(request, configuration, state, timeout, concerns)

    async def _watch_from_now(
        self, request: Request, configuration: int | None, state: int | None,
        timeout: float, concerns: frozenset[UUID] | None,
    ) -> bytes:
        """A watch from the counters as they are now, for those it does not name."""
        current = await self._store.versions()
        configuration = current.configuration if configuration is None else configuration
        state = current.state if state is None else state
        return await self._watch(request, configuration, state, timeout, concerns)

    def _watch(
        self, request: Request, configuration: int, state: int, timeout: float,
        concerns: frozenset[UUID] | None,
    ) -> Deferred[bytes]:
        waiting = self.notifier.wait(configuration, state, timeout, concerns)
        request.notifyFinish().addErrback(lambda _: waiting.cancel())
        return waiting.addCallbacks(
            partial(_watch_answer, request), partial(_watch_cancelled, request)
        )

    # -- snapshots, restore, clone and resize (control.snapshots) ---------------

    async def _pending_snapshots(
        self, node_uuid: UUID, unsettled: list[DatasetSnapshot], datasets: Any, now: float
    ) -> list[DatasetSnapshot]:
        """Which of the ``unsettled`` snapshots are in ``node_uuid``'s charge."""
        if not unsettled:  # the nodes' liveness is not needed: nothing is in anyone's charge
            return []
        return snap.pending_for(node_uuid, unsettled, datasets, await self._live_nodes(now))

    async def _snapshot_audience(
        self, snapshot: DatasetSnapshot, source: Dataset | None
    ) -> set[UUID]:
        """Whom a write of ``snapshot`` (of dataset ``source``) concerns: the node in charge
        of it now (:func:`snap.in_charge`), whose pass makes or destroys it; no other node's
        configuration changes, so their targeted watches sleep on. Should that node stop
        being live before it acts, the node taking over acts on its next pass (within a
        heartbeat), as it would for a snapshot asked for before the node went."""
        return {snap.in_charge(snapshot, source, await self._live_nodes(self._now()))}

    async def _live_nodes(self, now: float) -> frozenset[UUID]:
        """The nodes live and not fenced at ``now``: those a snapshot may be in the charge of."""
        nodes = await self._store.nodes()
        return frozenset(
            n.uuid for n in nodes if n.fence is None and n.is_live(now, self._node_timeout)
        )

    @app.route("/v1/shoal/snapshots", methods=["GET"])
    async def list_snapshots(self, request: Request) -> bytes:
        """Every snapshot record (of one dataset, if asked), oldest first."""
        params = query_parameters(request, schemas.SNAPSHOTS_QUERY)
        dataset = params.get("dataset")
        found = await self._store.snapshots(None if dataset is None else UUID(dataset))
        found = sorted(found, key=lambda x: (x.created, str(x.snapshot_id)))
        return json_response(request, [snapshot_to_json(x) for x in found])

    @app.route("/v1/shoal/snapshots", methods=["POST"])
    async def create_snapshot(self, request: Request) -> bytes:
        """Snapshot a dataset (201), or answer the live snapshot of that name (200)."""
        body = read_json(request, schemas.CREATE_SNAPSHOT)
        dataset_id = UUID(body["dataset_id"])
        snapshot_id = self._new_uuid()
        source = await self._store.dataset(dataset_id)
        name = body.get("name") or snap.default_name(snapshot_id, source)
        # The node in charge is the source's primary: the store's rule fills it in.
        asked = DatasetSnapshot(snapshot_id, name, dataset_id, self._now(), node=dataset_id)
        with self.notifier.writing():
            stored, created, generation = await self._store.create_snapshot(
                asked, if_tag(request), now=self._now(), actor=actor_of(request)
            )
            if created:  # else the generation is another write's
                audience = await self._snapshot_audience(stored, source)
                self.notifier.changed(generation, audience)
        self.notifier.check()
        code = 201 if created else 200
        return json_response(request, snapshot_to_json(stored), code, tag_for(generation))

    @app.route("/v1/shoal/snapshots/<snapshot_id>", methods=["GET"])
    async def show_snapshot(self, request: Request, snapshot_id: str) -> bytes:
        """One snapshot record."""
        uuid = path_uuid(snapshot_id, "snapshot id")
        found = await self._store.snapshot(uuid)
        if found is None:
            raise NotFound(f"Snapshot {uuid} does not exist (`shoal snapshot list`).")
        return json_response(request, snapshot_to_json(found))

    @app.route("/v1/shoal/snapshots/<snapshot_id>", methods=["DELETE"])
    async def delete_snapshot(self, request: Request, snapshot_id: str) -> bytes:
        """Mark a snapshot deleted; its node destroys it. Restored datasets are untouched."""
        uuid = path_uuid(snapshot_id, "snapshot id")
        before = await self._store.snapshot(uuid)
        with self.notifier.writing():
            stored, generation = await self._store.delete_snapshot(
                uuid, if_tag(request), self._now(), actor=actor_of(request)
            )
            if stored != before:  # else the generation is another write's
                source = await self._store.dataset(stored.dataset_id)
                audience = await self._snapshot_audience(stored, source)
                self.notifier.changed(generation, audience)
        self.notifier.check()
        return json_response(request, snapshot_to_json(stored), tag=tag_for(generation))

    @app.route("/v1/shoal/datasets", methods=["GET"])
    async def list_shoal_datasets(self, request: Request) -> bytes:
        """Every dataset, deleted ones included, as the /v1/shoal/ routes show one (with its
        class, access mode, epoch and filesystem), with the configuration tag; with ``limit``
        (or ``continue``), one page of them (:mod:`control.api.pages`)."""
        params = query_parameters(request, schemas.SHOAL_DATASETS_QUERY)
        configuration = await self._store.configuration(self._now())
        if "limit" in params or "continue" in params:
            after = pages.after_of(params.get("continue"))
            configuration, items, last = await self._store.compute(
                self._shoal_listing.page, configuration, after,
                params.get("limit", pages.DEFAULT_PAGE),
            )
            json_headers(request, tag=configuration.tag)
            return pages.page_body(items, last)
        body = self._shoal_listing.cached(configuration)
        if body is None:  # encode off the reactor thread: 100,000 datasets take a while
            configuration, body = await self._store.compute(
                self._shoal_listing.listing, configuration
            )
        json_headers(request, tag=configuration.tag)
        return send(request, body)

    @app.route("/v1/shoal/datasets", methods=["POST"])
    async def create_shoal_dataset(self, request: Request) -> bytes:
        """Create a dataset (201): new, or restored or cloned from a ``source``."""
        body = read_json(request, schemas.CREATE_SHOAL_DATASET)
        now = self._now()
        source, found = await find_source(self._store, body.get("source"), now)
        primary = body.get("primary")
        cls = class_for(body.get("storage_class"), await self._store.classes())
        filesystem = body.get("filesystem") or (None if cls is None else cls.filesystem)
        asked = snap.new_from_source(
            UUID(body.get("dataset_id") or str(self._new_uuid())),
            source,
            found,
            UUID(primary) if primary is not None else None if source else UNBOUND,
            body.get("maximum_size"),
            body.get("metadata") or {},
            filesystem,
        )
        dataset, state = await placing.place_new(
            self._store,
            asked,
            None if cls is None else cls.name,
            placing.access_mode_of(body.get("access_mode")),
            now,
            self._node_timeout,
        )
        if dataset.raw and dataset.access_mode is AccessMode.ROX:
            raise InvalidRequest(
                "A raw dataset (filesystem raw) cannot be ReadOnlyMany: its readers mount a "
                "filesystem, and a raw dataset has none. Use ReadWriteOnce or "
                "ReadWriteOncePod, or give it a filesystem."
            )
        if dataset.bound:
            await self._check_live(request, dataset.primary)
        check_create(dataset.maximum_size, dataset.primary, state, now, self._node_timeout)
        stored, generation = await self._store.create_dataset(
            dataset, if_tag(request), now=now, actor=actor_of(request)
        )
        self.notifier.check()
        return json_response(request, node_dataset_to_json(stored), 201, tag_for(generation))

    @app.route("/v1/shoal/datasets/<dataset_id>/resize", methods=["POST"])
    async def resize_dataset(self, request: Request, dataset_id: str) -> bytes:
        """Grow a dataset; its primary grows the volume and the filesystem online."""
        uuid = path_uuid(dataset_id, "dataset id")
        size = read_json(request, schemas.RESIZE_DATASET)["maximum_size"]
        now = self._now()
        current = await self._store.dataset(uuid)
        if current is not None and not current.deleted:
            state = await self._store.cluster_state()
            check_create(size, current.primary, state, now, self._node_timeout)
        stored, generation = await self._store.resize_dataset(
            uuid, size, if_tag(request), now, actor=actor_of(request)
        )
        self.notifier.check()
        return json_response(request, node_dataset_to_json(stored), tag=tag_for(generation))

    @app.route("/v1/shoal/released", methods=["GET"])
    async def list_released(self, request: Request) -> bytes:
        """Released datasets (deleted with their volume retained), by id."""
        configuration = await self._store.configuration(self._now())
        found = [d for d in configuration.datasets.values() if d.released and not d.deleted]
        found.sort(key=lambda d: str(d.dataset_id))
        return json_response(request, [node_dataset_to_json(d) for d in found])

    @app.route("/v1/shoal/datasets/<dataset_id>/adopt", methods=["POST"])
    async def adopt_dataset(self, request: Request, dataset_id: str) -> bytes:
        """Make a released dataset live again on a node, with its retained volume."""
        uuid = path_uuid(dataset_id, "dataset id")
        body = read_json(request, schemas.ADOPT_DATASET)
        state = await self._store.cluster_state()
        asked = body.get("primary")
        current = await self._store.dataset(uuid)
        primary = placing.adopter(current, None if asked is None else UUID(asked), state)
        await self._check_live(request, primary)
        await self._check_placeable(primary, uuid)
        if current is not None and current.released:
            await placing.check_move(self._store, current, primary, state)
        stored, generation = await self._store.adopt_dataset(
            uuid, primary, if_tag(request), self._now(), actor=actor_of(request)
        )
        self.notifier.check()
        return json_response(request, node_dataset_to_json(stored), tag=tag_for(generation))

    @app.route("/v1/shoal/datasets/<dataset_id>/readers", methods=["POST"])
    async def add_reader(self, request: Request, dataset_id: str) -> bytes:
        """Let a node mount a ReadOnlyMany dataset read-only (refused where it cannot)."""
        uuid = path_uuid(dataset_id, "dataset id")
        node = UUID(read_json(request, schemas.ADD_READER)["node"])
        await self._check_live(request, node)
        current = await self._store.dataset(uuid)
        if current is not None and current.read_only and current.bound:
            state = await self._store.cluster_state()
            refusal = placing.reader_refusal(current, node, state)
            if refusal is not None:
                raise Conflict(refusal)
            await placing.check_move(self._store, current, node, state)
        stored, generation = await self._store.set_reader(
            uuid, node, True, if_tag(request), self._now(), actor=actor_of(request)
        )
        self.notifier.check()
        return json_response(request, node_dataset_to_json(stored), tag=tag_for(generation))

    @app.route("/v1/shoal/datasets/<dataset_id>/readers/<node_uuid>", methods=["DELETE"])
    async def remove_reader(self, request: Request, dataset_id: str, node_uuid: str) -> bytes:
        """Stop a node reading a ReadOnlyMany dataset; nothing if it does not read it."""
        uuid = path_uuid(dataset_id, "dataset id")
        node = path_uuid(node_uuid, "node uuid")
        stored, generation = await self._store.set_reader(
            uuid, node, False, if_tag(request), self._now(), actor=actor_of(request)
        )
        self.notifier.check()
        return json_response(request, node_dataset_to_json(stored), tag=tag_for(generation))

    # -- revoked certificates (control.revocations) -------------------------------

    @app.route("/v1/shoal/revocations", methods=["GET"])
    async def list_revocations(self, request: Request) -> bytes:
        """Every revoked client certificate, oldest first."""
        return await revocation_routes.list_revocations(self._store, request)

    @app.route("/v1/shoal/revocations", methods=["POST"])
    async def revoke(self, request: Request) -> bytes:
        """Revoke a certificate (201), or answer its revocation again (200); its live
        connections are dropped (:class:`~control.api.denylist.Denylist`)."""
        return await revocation_routes.revoke(
            self._store, request, self._now(), self.refresh_revocations
        )

    # -- storage classes (control.api.class_routes) -------------------------------

    @app.route("/v1/shoal/classes", methods=["GET"])
    async def list_classes(self, request: Request) -> bytes:
        """Every storage class, by name."""
        return await class_routes.list_classes(self._store, request)

    @app.route("/v1/shoal/classes", methods=["POST"])
    async def create_class(self, request: Request) -> bytes:
        """Create a storage class (201), or answer the same one again (200)."""
        return await class_routes.create_class(self._store, request, self._now())

    @app.route("/v1/shoal/classes/<name>", methods=["GET"])
    async def show_class(self, request: Request, name: str) -> bytes:
        """One storage class."""
        return await class_routes.show_class(self._store, request, name)

    @app.route("/v1/shoal/classes/<name>", methods=["PATCH"])
    async def update_class(self, request: Request, name: str) -> bytes:
        """Change a storage class's mutable fields."""
        return await class_routes.update_class(self._store, request, name, self._now())

    @app.route("/v1/shoal/classes/<name>", methods=["DELETE"])
    async def delete_class(self, request: Request, name: str) -> bytes:
        """Delete a storage class no live dataset names."""
        return await class_routes.delete_class(self._store, request, name, self._now())


def _with_clones_to_make(
    datasets: Any, node: UUID, everything: Mapping[UUID, Dataset], reports: Mapping[UUID, NodeState]
) -> list[Dataset]:
    """``datasets`` plus the clones ``node`` makes for their primary (see
    :func:`snap.clones_to_make`)."""
    have = {d.dataset_id for d in datasets}
    extra = snap.clones_to_make(node, everything, reports.values())
    return [*datasets, *(d for d in extra if d.dataset_id not in have)]


def _with_readings(datasets: Any, node: UUID, everything: Mapping[UUID, Dataset]) -> list[Dataset]:
    """``datasets`` plus the live ReadOnlyMany datasets ``node`` reads."""
    have = {d.dataset_id for d in datasets}
    extra = [
        d for d in everything.values()
        if node in d.readers and not d.deleted and not d.released and d.dataset_id not in have
    ]
    return [*datasets, *extra]
