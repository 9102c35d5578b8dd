"""
The REST API: Flocker's v1 routes plus Shoal's agent-facing ``/v1/shoal/`` ones.

Handlers are thin: they read and validate the request (:mod:`control.api.body`),
call the store through :class:`~control.store.threaded.ThreadedStore` (every
call returns a Deferred), poke the watch notifier after a successful write,
and answer JSON (:mod:`control.api.errors`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

from klein import Klein
from twisted.internet.defer import CancelledError
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request
from werkzeug.exceptions import HTTPException

from control import FLOCKER_API_VERSION, __version__, rules
from control.api import schemas
from control.api.body import (
    if_tag,
    path_uuid,
    query,
    query_int,
    query_seconds,
    query_uuids,
    read_json,
    require_live,
)
from control.api.errors import json_headers, json_response, refuse, routing_error, unexpected
from control.api.listing import ListingEncoder
from control.api.openapi import document
from control.api.root import JSONRoot
from control.api.watch import Notifier, ReactorTime
from control.errors import NotFound, ShoalError, Unavailable
from control.model import Node, tag_for
from control.store.threaded import ThreadedStore
from control.wire import (
    dataset_from_json,
    dataset_to_json,
    lease_from_json,
    lease_to_json,
    node_state_from_json,
    node_to_json,
    state_datasets_to_json,
    versions_to_json,
)

WATCH_DEFAULT = 30.0
WATCH_MAXIMUM = 300.0


def _by_id(items: Any, key: Callable[[Any], UUID]) -> list[Any]:
    return sorted(items, key=lambda item: str(key(item)))


class ControlAPI:
    """The control service's HTTP API, bound to one store and one clock."""

    app = Klein()

    def __init__(
        self,
        store: ThreadedStore,
        clock: ReactorTime,
        new_uuid: Callable[[], UUID] = uuid4,
        node_timeout: float = 30.0,
        watch_interval: float = 1.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._new_uuid = new_uuid
        self._node_timeout = node_timeout
        self.notifier = Notifier(clock, store.versions, watch_interval)
        self._listing = ListingEncoder()

    def resource(self) -> Resource:
        """The Twisted resource serving the API (mount it at the site root)."""
        return JSONRoot(self.app.resource())

    def _now(self) -> float:
        return self._clock.seconds()

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
        """The Flocker API version spoken and Shoal's own version."""
        return json_response(request, {"flocker": FLOCKER_API_VERSION, "shoal": __version__})

    @app.route("/v1/openapi.json", methods=["GET"])
    def openapi(self, request: Request) -> bytes:
        """The OpenAPI document of this API."""
        return json_response(request, document(__version__))

    # -- datasets ------------------------------------------------------------

    @app.route("/v1/configuration/datasets", methods=["GET"])
    async def list_datasets(self, request: Request) -> bytes:
        """Every dataset, deleted ones included, with the configuration tag."""
        configuration = await self._store.configuration(self._now())
        body = self._listing.datasets(configuration)
        json_headers(request, tag=configuration.tag)
        return body

    @app.route("/v1/configuration/datasets", methods=["POST"])
    async def create_dataset(self, request: Request) -> bytes:
        """Create a dataset (201); its id is generated unless given."""
        body = read_json(request, schemas.CREATE_DATASET)
        dataset_id = body.get("dataset_id") or str(self._new_uuid())
        dataset = dataset_from_json({**body, "dataset_id": dataset_id})
        await self._check_live(request, dataset.primary)
        stored, generation = await self._store.create_dataset(dataset, if_tag(request))
        self.notifier.check()
        return json_response(request, dataset_to_json(stored), 201, tag_for(generation))

    @app.route("/v1/configuration/datasets/<dataset_id>", methods=["POST"])
    async def move_dataset(self, request: Request, dataset_id: str) -> bytes:
        """Give a dataset a new primary."""
        uuid = path_uuid(dataset_id, "dataset id")
        primary = path_uuid(read_json(request, schemas.MOVE_DATASET)["primary"], "primary")
        await self._check_live(request, primary)
        stored, generation = await self._store.move_dataset(
            uuid, primary, if_tag(request), self._now()
        )
        self.notifier.check()
        return json_response(request, dataset_to_json(stored), tag=tag_for(generation))

    @app.route("/v1/configuration/datasets/<dataset_id>", methods=["DELETE"])
    async def delete_dataset(self, request: Request, dataset_id: str) -> bytes:
        """Mark a dataset deleted; its agents destroy the volume."""
        uuid = path_uuid(dataset_id, "dataset id")
        stored, generation = await self._store.delete_dataset(uuid, if_tag(request), self._now())
        self.notifier.check()
        return json_response(request, dataset_to_json(stored), tag=tag_for(generation))

    async def _check_live(self, request: Request, primary: UUID) -> None:
        """Refuse a primary that is not live, if the request opts in (``X-Shoal-Require-Live``)."""
        if not require_live(request):
            return
        nodes = await self._store.nodes()
        node = next((n for n in nodes if n.uuid == primary), None)
        rules.check_live(node, self._now(), self._node_timeout)

    # -- state ---------------------------------------------------------------

    @app.route("/v1/state/datasets", methods=["GET"])
    async def state_datasets(self, request: Request) -> bytes:
        """Where each dataset's volume actually is, as the agents report."""
        cluster_state = await self._store.cluster_state()
        return json_response(request, state_datasets_to_json(cluster_state))

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
        """Acquire a lease (201) or renew one this node holds (200)."""
        body = read_json(request, schemas.ACQUIRE_LEASE)
        now = self._now()
        lease = lease_from_json(body, now)
        stored, created, generation = await self._store.acquire_lease(lease, if_tag(request), now)
        self.notifier.check()
        code = 201 if created else 200
        return json_response(request, lease_to_json(stored, now), code, tag_for(generation))

    @app.route("/v1/configuration/leases/<dataset_id>", methods=["DELETE"])
    async def release_lease(self, request: Request, dataset_id: str) -> bytes:
        """Release a dataset's lease, answering the lease released."""
        uuid = path_uuid(dataset_id, "dataset id")
        now = self._now()
        released, generation = await self._store.release_lease(uuid, if_tag(request), now)
        self.notifier.check()
        return json_response(request, lease_to_json(released, now), tag=tag_for(generation))

    # -- Shoal's agent-facing endpoints ---------------------------------------

    @app.route("/v1/shoal/nodes", methods=["GET"])
    async def list_nodes(self, request: Request) -> bytes:
        """Registered nodes, each with whether it was heard from recently."""
        now = self._now()
        nodes = _by_id(await self._store.nodes(), lambda n: n.uuid)
        return json_response(request, [node_to_json(n, now, self._node_timeout) for n in nodes])

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
        )
        stored = await self._store.register_node(node)
        self.notifier.check()
        return json_response(request, node_to_json(stored, now, self._node_timeout))

    @app.route("/v1/shoal/state/<node_uuid>", methods=["PUT"])
    async def report_state(self, request: Request, node_uuid: str) -> bytes:
        """Record what a node observes; answers whether it changed and both counters."""
        uuid = path_uuid(node_uuid, "node uuid")
        report = node_state_from_json(uuid, read_json(request, schemas.REPORT_STATE), self._now())
        try:
            changed = await self._store.report_state(report)
        except NotFound:
            raise NotFound(
                f"Node {uuid} has not registered: register first with "
                f"PUT /v1/shoal/nodes/{uuid}, then report its state."
            ) from None
        self.notifier.check()
        versions = await self._store.versions()
        return json_response(request, {"changed": changed, **versions_to_json(versions)})

    @app.route("/v1/shoal/nodes/<node_uuid>/configuration", methods=["GET"])
    async def node_configuration(self, request: Request, node_uuid: str) -> bytes:
        """The datasets (and their leases) one node is primary for, plus those it asks about."""
        uuid = path_uuid(node_uuid, "node uuid")
        also = query_uuids(query(request, frozenset({"also"})), "also")
        now = self._now()
        generation, datasets = await self._store.datasets_for_node(uuid, also)
        configuration = await self._store.configuration(now)
        ids = {d.dataset_id for d in datasets}
        leases = [lease for key, lease in configuration.live_leases(now).items() if key in ids]
        return json_response(
            request,
            {
                "generation": generation,
                "datasets": [dataset_to_json(d) for d in _by_id(datasets, lambda d: d.dataset_id)],
                "leases": [lease_to_json(x, now) for x in _by_id(leases, lambda x: x.dataset_id)],
            },
        )

    @app.route("/v1/shoal/watch", methods=["GET"])
    async def watch(self, request: Request) -> bytes:
        """Answer once either counter passes the given value, or after the timeout."""
        params = query(request, frozenset({"configuration", "state", "timeout"}))
        configuration = query_int(params, "configuration")
        state = query_int(params, "state")
        timeout = query_seconds(params, "timeout", WATCH_DEFAULT, WATCH_MAXIMUM)
        if configuration is None or state is None:
            current = await self._store.versions()
            configuration = current.configuration if configuration is None else configuration
            state = current.state if state is None else state
        waiting = self.notifier.wait(configuration, state, timeout)
        request.notifyFinish().addErrback(lambda _: waiting.cancel())
        try:
            versions = await waiting
        except CancelledError:
            if getattr(request, "_disconnected", False):
                return b""  # the watcher went away; nobody reads an answer
            raise Unavailable(
                "The control service is shutting down; watch again once it is back."
            ) from None
        return json_response(request, versions_to_json(versions))
