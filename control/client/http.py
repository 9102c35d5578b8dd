"""
:class:`HTTPClient`: the :class:`~control.client.interface.ShoalClient` that
speaks the REST API over Twisted's HTTP client.

Requests go through one Twisted ``Agent`` (:class:`~control.client.lean.Requests`,
treq's ``request`` without treq's layers), its connections kept alive in one pool.
Tests pass a ``treq.testing.StubTreq`` wrapping the API's resource instead (anything
with treq's ``request``), so the real client runs against the real API in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote
from uuid import UUID

from attrs import frozen
from twisted.internet import defer
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectError, ConnectionClosed
from twisted.web.client import RequestNotSent, RequestTransmissionFailed, ResponseFailed
from twisted.web.iweb import IPolicyForHTTPS

from control.classes import StorageClass, class_from_json, class_to_json
from control.client import messages
from control.client.endpoints import attempt_order, parse_urls, worth_another
from control.client.interface import (
    DatasetFailover,
    DatasetListing,
    LeaseGrant,
    NodeCondition,
    NodeConfiguration,
    NodeInfo,
    Reported,
    ReportedOrphan,
    ServiceVersion,
    StateDataset,
)
from control.client.lean import Requests
from control.client.refusals import error_for, reason
from control.client.reports import ReportEncoder
from control.errors import ShoalError, Unavailable
from control.model import (
    Dataset,
    DatasetSnapshot,
    DataSource,
    Event,
    Lease,
    Node,
    NodeState,
    Versions,
)
from control.revocations import Revocation, revocation_from_json, serial_text
from control.wire import (
    dataset_from_json,
    event_from_json,
    lease_from_json,
    node_from_json,
    parse_uuid,
    reported_orphan_from_json,
    snapshot_from_json,
    source_to_json,
    versions_from_json,
)

try:
    from OpenSSL.SSL import Error as TLSError
except ImportError:  # a plain-HTTP CLI run without TLS libraries (see control.cli.tls)

    class TLSError(Exception):  # type: ignore[no-redef]
        """Stands for pyOpenSSL's error where TLS is not loaded: it is never raised."""


TAG_HEADER = "X-Configuration-Tag"
IF_TAG_HEADER = "X-If-Configuration-Matches"
LISTING_PAGE = 1000
"""Datasets per page when listing them (``GET /v1/shoal/datasets?limit=``)."""
REQUEST_TIMEOUT = 30.0
"""Seconds a request may go unanswered before the service counts as unavailable."""


JSON_TYPE = "application/json; charset=UTF-8"
"""The content type of request bodies (as treq's ``json=`` sent them)."""


@frozen
class Encoded:
    """A request body already encoded as JSON (see :mod:`control.client.reports`)."""

    data: bytes


def _encoded(body: Any) -> bytes:
    """``body`` as JSON bytes, encoded as treq's ``json=`` encoded it."""
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


UNREACHABLE = (
    ConnectError,
    ConnectionClosed,
    ResponseFailed,
    RequestNotSent,
    RequestTransmissionFailed,
    TLSError,
    OSError,
)
"""Failures that mean the service could not be reached; any other is a bug and propagates."""


def default_treq(tls: IPolicyForHTTPS | None, reactor: Any) -> tuple[Any, Any]:
    """A requester with treq's ``request`` (:class:`~control.client.lean.Requests`: one
    agent, no treq layers) over a persistent connection pool (and ``tls`` for https
    URLs), and that pool."""
    from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=True)
    policy = tls if tls is not None else BrowserLikePolicyForHTTPS()
    agent: Any = Agent(reactor, contextFactory=policy, pool=pool)
    return Requests(agent), pool


class HTTPClient:
    """A client of the control service at ``base_url`` (``http://`` or ``https://``).

    ``base_url`` may name several replicas of one cluster (a sequence, or
    URLs separated by commas): a request that cannot reach one, or gets a
    server error (5xx) from it, is sent to the next, and the client stays
    with the one that answered (:mod:`control.client.endpoints`).

    ``treq`` is anything with treq's ``request`` method (the real client by
    default, ``StubTreq`` in tests); ``tls`` is the policy for https, such as
    :func:`control.ca.client_tls_policy`; ``clock`` turns lease expiries into
    absolute times.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        treq: Any = None,
        *,
        tls: IPolicyForHTTPS | Any = None,
        clock: Any = None,
        reactor: Any = None,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        if reactor is None and (treq is None or clock is None):
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.urls = parse_urls(base_url)
        self._current = 0
        self._pool: Any = None
        if treq is None:
            treq, self._pool = default_treq(tls, reactor)
        self._treq = treq
        self._clock = clock if clock is not None else reactor
        self._request_timeout = request_timeout
        self._reports = ReportEncoder()

    @property
    def base_url(self) -> str:
        """The URL of the replica the client talks to now."""
        return self.urls[self._current]

    def close(self) -> Deferred[None]:
        """Close the kept-alive connections this client opened (if it made its pool)."""
        if self._pool is None:
            return succeed(None)
        return self._pool.closeCachedConnections()

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        if_tag: str | None = None,
        waits: float = 0.0,
    ) -> tuple[Any, Any]:
        """Send one request; return ``(response, decoded JSON)`` or raise the refusal.

        A service that does not answer within the request timeout (plus
        ``waits``, the seconds a watch is meant to wait) is :class:`Unavailable`.
        With several replicas, an unreachable one or a 5xx moves the request to
        the next; the last failure is raised when none answers.
        """
        headers = {} if if_tag is None else {IF_TAG_HEADER: if_tag}
        kwargs: dict[str, Any] = {"headers": headers, "params": params or None}
        if body is not None:
            headers["Content-Type"] = JSON_TYPE
            kwargs["data"] = body.data if isinstance(body, Encoded) else _encoded(body)
        limit = self._request_timeout + waits
        failure: Exception | None = None
        for index in attempt_order(self.urls, self._current):
            base = self.urls[index]
            url = base + path
            try:
                response, content = await self._attempt(method, base, url, kwargs, limit)
            except Unavailable as e:
                failure = e
                continue
            if worth_another(response.code) and len(self.urls) > 1:
                failure = error_for(response.code, content, url)
                continue
            self._current = index
            if response.code >= 300:
                raise error_for(response.code, content, url)
            try:
                return response, json.loads(content)
            except ValueError as e:
                raise ShoalError(f"The control service at {url} did not answer JSON.") from e
        assert failure is not None
        raise failure

    async def _attempt(
        self, method: str, base: str, url: str, kwargs: dict[str, Any], limit: float
    ) -> tuple[Any, bytes]:
        """One exchange with the replica at ``base``; :class:`Unavailable` if it cannot be had."""
        exchange = Deferred.fromCoroutine(self._exchange(method, url, kwargs))
        exchange.addTimeout(limit, self._clock)
        try:
            return await exchange
        except defer.TimeoutError as e:
            raise Unavailable(
                f"The control service at {base} did not answer within {limit:g} s."
            ) from e
        except UNREACHABLE as e:
            raise Unavailable(f"Cannot reach the control service at {base}: {reason(e)}") from e

    async def _exchange(self, method: str, url: str, kwargs: dict[str, Any]) -> tuple[Any, bytes]:
        response = await self._treq.request(method, url, **kwargs)
        return response, await response.content()

    async def _json(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return (await self._call(method, path, body, **kw))[1]

    def version(self) -> Deferred[ServiceVersion]:
        """See :meth:`ShoalClient.version`."""
        return Deferred.fromCoroutine(self._version())

    async def _version(self) -> ServiceVersion:
        return messages.service_version_from_json(await self._json("GET", "/v1/version"))

    def list_datasets(self) -> Deferred[DatasetListing]:
        """See :meth:`ShoalClient.list_datasets`."""
        return Deferred.fromCoroutine(self._list_datasets())

    async def _list_datasets(self) -> DatasetListing:
        """Read ``/v1/shoal/datasets`` page by page (the tag is the first page's: a write made
        with it is refused if anything changed while paging), each dataset as the Flocker
        listing has it (:func:`_as_flocker`: callers see exactly what they saw before pages);
        a service without pages answers the whole listing to the first request."""
        tag, found, token = None, [], None
        while True:
            params = {"limit": str(LISTING_PAGE)} | ({"continue": token} if token else {})
            response, obj = await self._call("GET", "/v1/shoal/datasets", params=params)
            if tag is None:
                tag = (response.headers.getRawHeaders(TAG_HEADER) or [""])[0]
            items = obj if isinstance(obj, list) else obj["items"]
            found += [dataset_from_json(_as_flocker(o)) for o in items]
            token = None if isinstance(obj, list) else obj["continue"]
            if token is None:
                return DatasetListing(tag, found)

    def create_dataset(
        self,
        primary: UUID,
        maximum_size: int | None = None,
        metadata: Mapping[str, str] | None = None,
        dataset_id: UUID | None = None,
        if_tag: str | None = None,
    ) -> Deferred[Dataset]:
        """See :meth:`ShoalClient.create_dataset`."""
        body = messages.create_dataset_body(primary, maximum_size, metadata, dataset_id)
        return Deferred.fromCoroutine(self._dataset("POST", "", body, if_tag))

    def move_dataset(
        self, dataset_id: UUID, primary: UUID, if_tag: str | None = None
    ) -> Deferred[Dataset]:
        """See :meth:`ShoalClient.move_dataset`."""
        body = messages.move_dataset_body(primary)
        return Deferred.fromCoroutine(self._dataset("POST", f"/{dataset_id}", body, if_tag))

    def delete_dataset(self, dataset_id: UUID, if_tag: str | None = None) -> Deferred[Dataset]:
        """See :meth:`ShoalClient.delete_dataset`."""
        return Deferred.fromCoroutine(self._dataset("DELETE", f"/{dataset_id}", None, if_tag))

    async def _dataset(self, method: str, suffix: str, body: Any, if_tag: str | None) -> Dataset:
        path = "/v1/configuration/datasets" + suffix
        return dataset_from_json(await self._json(method, path, body, if_tag=if_tag))

    def list_state_datasets(self, node: UUID | None = None) -> Deferred[list[StateDataset]]:
        """See :meth:`ShoalClient.list_state_datasets`."""
        return Deferred.fromCoroutine(self._list_state_datasets(node))

    async def _list_state_datasets(self, node: UUID | None = None) -> list[StateDataset]:
        query = "" if node is None else f"?node={node}"
        obj = await self._json("GET", "/v1/state/datasets" + query)
        return [messages.state_dataset_from_json(o) for o in obj]

    def list_nodes(self) -> Deferred[list[NodeInfo]]:
        """See :meth:`ShoalClient.list_nodes`."""
        return Deferred.fromCoroutine(self._list_nodes())

    async def _list_nodes(self) -> list[NodeInfo]:
        return [messages.node_info_from_json(o) for o in await self._json("GET", "/v1/shoal/nodes")]

    def node_by_era(self, era: str) -> Deferred[UUID]:
        """See :meth:`ShoalClient.node_by_era`."""
        return Deferred.fromCoroutine(self._node_by_era(era))

    async def _node_by_era(self, era: str) -> UUID:
        obj = await self._json("GET", f"/v1/state/nodes/by_era/{quote(era, safe='')}")
        return messages.era_node_from_json(obj)

    def list_conditions(self, dataset_id: UUID | None = None) -> Deferred[list[NodeCondition]]:
        """See :meth:`ShoalClient.list_conditions`."""
        params = {} if dataset_id is None else {"dataset": str(dataset_id)}
        return Deferred.fromCoroutine(self._list_conditions(params))

    async def _list_conditions(self, params: Mapping[str, str]) -> list[NodeCondition]:
        obj = await self._json("GET", "/v1/shoal/conditions", params=params)
        return [messages.node_condition_from_json(o) for o in obj]

    def list_events(
        self,
        dataset_id: UUID | None = None,
        node_uuid: UUID | None = None,
        since: int | None = None,
        limit: int | None = None,
    ) -> Deferred[list[Event]]:
        """See :meth:`ShoalClient.list_events`."""
        params = messages.events_query(dataset_id, node_uuid, since, limit)
        return Deferred.fromCoroutine(self._list_events(params))

    async def _list_events(self, params: Mapping[str, str]) -> list[Event]:
        obj = await self._json("GET", "/v1/shoal/events", params=params)
        return [event_from_json(o) for o in obj]

    def list_orphans(self) -> Deferred[list[ReportedOrphan]]:
        """See :meth:`ShoalClient.list_orphans`."""
        return Deferred.fromCoroutine(self._list_orphans())

    async def _list_orphans(self) -> list[ReportedOrphan]:
        obj = await self._json("GET", "/v1/shoal/orphans")
        return [ReportedOrphan(*reported_orphan_from_json(o)) for o in obj]

    def destroy_orphan(self, blockdevice_id: str, if_tag: str | None = None) -> Deferred[Dataset]:
        """See :meth:`ShoalClient.destroy_orphan`."""
        path = f"/v1/shoal/orphans/{quote(blockdevice_id, safe='')}"
        d = Deferred.fromCoroutine(self._json("DELETE", path, None, if_tag=if_tag))
        return d.addCallback(dataset_from_json)

    def list_leases(self) -> Deferred[list[Lease]]:
        """See :meth:`ShoalClient.list_leases`."""
        return Deferred.fromCoroutine(self._list_leases())

    async def _list_leases(self) -> list[Lease]:
        obj = await self._json("GET", "/v1/configuration/leases")
        now = self._clock.seconds()
        return [lease_from_json(o, now) for o in obj]

    def acquire_lease(
        self, dataset_id: UUID, node_uuid: UUID, expires: float | None, move: bool = False
    ) -> Deferred[LeaseGrant]:
        """See :meth:`ShoalClient.acquire_lease`."""
        return Deferred.fromCoroutine(self._acquire_lease(dataset_id, node_uuid, expires, move))

    async def _acquire_lease(
        self, dataset_id: UUID, node_uuid: UUID, expires: float | None, move: bool
    ) -> LeaseGrant:
        body = messages.acquire_lease_body(dataset_id, node_uuid, expires, move)
        response, obj = await self._call("POST", "/v1/configuration/leases", body)
        return LeaseGrant(lease_from_json(obj, self._clock.seconds()), response.code == 201)

    def release_lease(self, dataset_id: UUID) -> Deferred[Lease]:
        """See :meth:`ShoalClient.release_lease`."""
        return Deferred.fromCoroutine(self._release_lease(dataset_id))

    async def _release_lease(self, dataset_id: UUID) -> Lease:
        obj = await self._json("DELETE", f"/v1/configuration/leases/{dataset_id}")
        return lease_from_json(obj, self._clock.seconds())

    def register_node(
        self,
        node_uuid: UUID,
        host: str,
        era: str | None,
        labels: Mapping[str, str],
        mount_root: str | None = None,
    ) -> Deferred[Node]:
        """See :meth:`ShoalClient.register_node`."""
        body = messages.register_node_body(host, era, labels, mount_root)
        return Deferred.fromCoroutine(self._register_node(node_uuid, body))

    async def _register_node(self, node_uuid: UUID, body: Any) -> Node:
        return node_from_json(await self._json("PUT", f"/v1/shoal/nodes/{node_uuid}", body))

    def report_state(self, state: NodeState) -> Deferred[Reported]:
        """See :meth:`ShoalClient.report_state`."""
        return Deferred.fromCoroutine(self._report_state(state))

    async def _report_state(self, state: NodeState) -> Reported:
        path = f"/v1/shoal/state/{state.node_uuid}"
        body = Encoded(self._reports.encode(state))
        return messages.reported_from_json(await self._json("PUT", path, body))

    def node_configuration(
        self, node_uuid: UUID, also: Iterable[UUID] = ()
    ) -> Deferred[NodeConfiguration]:
        """See :meth:`ShoalClient.node_configuration`."""
        return Deferred.fromCoroutine(self._node_configuration(node_uuid, list(also)))

    async def _node_configuration(self, node_uuid: UUID, also: list[UUID]) -> NodeConfiguration:
        params = {"also": ",".join(str(u) for u in also)} if also else None
        path = f"/v1/shoal/nodes/{node_uuid}/configuration"
        obj = await self._json("GET", path, params=params)
        now = self._clock.seconds()
        return NodeConfiguration(
            generation=obj["generation"],
            datasets=[dataset_from_json(o) for o in obj["datasets"]],
            leases=[lease_from_json(o, now) for o in obj["leases"]],
            fenced=bool(obj.get("fenced", False)),
            fenced_nodes=frozenset(
                parse_uuid(u, "fenced node") for u in obj.get("fenced_nodes", ())
            ),
            node_lease=obj.get("node_lease"),
            heartbeat=obj.get("heartbeat"),
            snapshots=tuple(snapshot_from_json(o) for o in obj.get("snapshots", ())),
        )

    def list_snapshots(self, dataset_id: UUID | None = None) -> Deferred[list[DatasetSnapshot]]:
        """See :meth:`ShoalClient.list_snapshots`."""
        params = {} if dataset_id is None else {"dataset": str(dataset_id)}
        d = Deferred.fromCoroutine(self._json("GET", "/v1/shoal/snapshots", params=params))
        return d.addCallback(lambda obj: [snapshot_from_json(o) for o in obj])

    def create_snapshot(
        self, dataset_id: UUID, name: str | None = None
    ) -> Deferred[DatasetSnapshot]:
        """See :meth:`ShoalClient.create_snapshot`."""
        body = {"dataset_id": str(dataset_id), **({} if name is None else {"name": name})}
        d = Deferred.fromCoroutine(self._json("POST", "/v1/shoal/snapshots", body))
        return d.addCallback(snapshot_from_json)

    def get_snapshot(self, snapshot_id: UUID) -> Deferred[DatasetSnapshot]:
        """See :meth:`ShoalClient.get_snapshot`."""
        d = Deferred.fromCoroutine(self._json("GET", f"/v1/shoal/snapshots/{snapshot_id}"))
        return d.addCallback(snapshot_from_json)

    def delete_snapshot(self, snapshot_id: UUID) -> Deferred[DatasetSnapshot]:
        """See :meth:`ShoalClient.delete_snapshot`."""
        d = Deferred.fromCoroutine(self._json("DELETE", f"/v1/shoal/snapshots/{snapshot_id}"))
        return d.addCallback(snapshot_from_json)

    def list_released(self) -> Deferred[list[Dataset]]:
        """See :meth:`ShoalClient.list_released`."""
        d = Deferred.fromCoroutine(self._json("GET", "/v1/shoal/released"))
        return d.addCallback(lambda obj: [dataset_from_json(o) for o in obj])

    def adopt_dataset(self, dataset_id: UUID, primary: UUID | None = None) -> Deferred[Dataset]:
        """See :meth:`ShoalClient.adopt_dataset`."""
        body = {} if primary is None else {"primary": str(primary)}
        path = f"/v1/shoal/datasets/{dataset_id}/adopt"
        d = Deferred.fromCoroutine(self._json("POST", path, body))
        return d.addCallback(dataset_from_json)

    def add_reader(self, dataset_id: UUID, node: UUID) -> Deferred[Dataset]:
        """See :meth:`ShoalClient.add_reader`."""
        path = f"/v1/shoal/datasets/{dataset_id}/readers"
        d = Deferred.fromCoroutine(self._json("POST", path, {"node": str(node)}))
        return d.addCallback(dataset_from_json)

    def remove_reader(self, dataset_id: UUID, node: UUID) -> Deferred[Dataset]:
        """See :meth:`ShoalClient.remove_reader`."""
        path = f"/v1/shoal/datasets/{dataset_id}/readers/{node}"
        d = Deferred.fromCoroutine(self._json("DELETE", path))
        return d.addCallback(dataset_from_json)

    def list_classes(self) -> Deferred[list[StorageClass]]:
        """See :meth:`ShoalClient.list_classes`."""
        d = Deferred.fromCoroutine(self._json("GET", "/v1/shoal/classes"))
        return d.addCallback(lambda obj: [class_from_json(o) for o in obj])

    def create_class(self, cls: StorageClass) -> Deferred[StorageClass]:
        """See :meth:`ShoalClient.create_class`."""
        body = class_to_json(cls)
        del body["created"]
        d = Deferred.fromCoroutine(self._json("POST", "/v1/shoal/classes", body))
        return d.addCallback(class_from_json)

    def get_class(self, name: str) -> Deferred[StorageClass]:
        """See :meth:`ShoalClient.get_class`."""
        d = Deferred.fromCoroutine(self._json("GET", f"/v1/shoal/classes/{quote(name)}"))
        return d.addCallback(class_from_json)

    def update_class(self, name: str, changes: Mapping[str, object]) -> Deferred[StorageClass]:
        """See :meth:`ShoalClient.update_class`."""
        path = f"/v1/shoal/classes/{quote(name)}"
        d = Deferred.fromCoroutine(self._json("PATCH", path, dict(changes)))
        return d.addCallback(class_from_json)

    def delete_class(self, name: str) -> Deferred[StorageClass]:
        """See :meth:`ShoalClient.delete_class`."""
        d = Deferred.fromCoroutine(self._json("DELETE", f"/v1/shoal/classes/{quote(name)}"))
        return d.addCallback(class_from_json)

    def list_revocations(self) -> Deferred[list[Revocation]]:
        """See :meth:`ShoalClient.list_revocations`."""
        d = Deferred.fromCoroutine(self._json("GET", "/v1/shoal/revocations"))
        return d.addCallback(lambda obj: [revocation_from_json(o) for o in obj])

    def revoke_certificate(
        self, serial: int, subject: str, reason: str | None = None
    ) -> Deferred[Revocation]:
        """See :meth:`ShoalClient.revoke_certificate`."""
        body: dict[str, Any] = {"serial": serial_text(serial), "subject": subject}
        if reason is not None:
            body["reason"] = reason
        d = Deferred.fromCoroutine(self._json("POST", "/v1/shoal/revocations", body))
        return d.addCallback(revocation_from_json)

    def create_shoal_dataset(
        self,
        primary: UUID | None = None,
        maximum_size: int | None = None,
        metadata: Mapping[str, str] | None = None,
        dataset_id: UUID | None = None,
        filesystem: str | None = None,
        source: DataSource | None = None,
        if_tag: str | None = None,
        storage_class: str | None = None,
        access_mode: str | None = None,
    ) -> Deferred[Dataset]:
        """See :meth:`ShoalClient.create_shoal_dataset`."""
        given = {
            "primary": None if primary is None else str(primary),
            "maximum_size": maximum_size,
            "metadata": None if metadata is None else dict(metadata),
            "dataset_id": None if dataset_id is None else str(dataset_id),
            "filesystem": filesystem,
            "source": None if source is None else source_to_json(source),
            "storage_class": storage_class,
            "access_mode": access_mode,
        }
        body = {k: v for k, v in given.items() if v is not None}
        d = Deferred.fromCoroutine(
            self._json("POST", "/v1/shoal/datasets", body, if_tag=if_tag)
        )
        return d.addCallback(dataset_from_json)

    def resize_dataset(
        self, dataset_id: UUID, maximum_size: int, if_tag: str | None = None
    ) -> Deferred[Dataset]:
        """See :meth:`ShoalClient.resize_dataset`."""
        path = f"/v1/shoal/datasets/{dataset_id}/resize"
        body = {"maximum_size": maximum_size}
        d = Deferred.fromCoroutine(self._json("POST", path, body, if_tag=if_tag))
        return d.addCallback(dataset_from_json)
    def fence_node(self, node_uuid: UUID, reason: str | None = None) -> Deferred[NodeInfo]:
        """See :meth:`ShoalClient.fence_node`."""
        body = {} if reason is None else {"reason": reason}
        return self._node_info("POST", f"/v1/shoal/nodes/{node_uuid}/fence", body)

    def unfence_node(self, node_uuid: UUID) -> Deferred[NodeInfo]:
        """See :meth:`ShoalClient.unfence_node`."""
        return self._node_info("DELETE", f"/v1/shoal/nodes/{node_uuid}/fence", None)

    def drain_node(self, node_uuid: UUID, draining: bool = True) -> Deferred[NodeInfo]:
        """See :meth:`ShoalClient.drain_node`."""
        method = "POST" if draining else "DELETE"
        return self._node_info(method, f"/v1/shoal/nodes/{node_uuid}/drain", None)

    def _node_info(self, method: str, path: str, body: Any) -> Deferred[NodeInfo]:
        async def call() -> NodeInfo:
            return messages.node_info_from_json(await self._json(method, path, body))

        return Deferred.fromCoroutine(call())

    def get_failover(self, dataset_id: UUID) -> Deferred[DatasetFailover]:
        """See :meth:`ShoalClient.get_failover`."""
        path = f"/v1/shoal/datasets/{dataset_id}/failover"

        async def call() -> DatasetFailover:
            return messages.dataset_failover_from_json(await self._json("GET", path))

        return Deferred.fromCoroutine(call())

    def set_failover(
        self,
        dataset_id: UUID,
        enabled: bool | None,
        grace: float | None = None,
        if_tag: str | None = None,
    ) -> Deferred[DatasetFailover]:
        """See :meth:`ShoalClient.set_failover`."""
        path = f"/v1/shoal/datasets/{dataset_id}/failover"
        body = {"enabled": enabled, "grace": grace}

        async def call() -> DatasetFailover:
            obj = await self._json("PUT", path, body, if_tag=if_tag)
            return messages.dataset_failover_from_json(obj)

        return Deferred.fromCoroutine(call())

    def watch(
        self,
        configuration: int,
        state: int,
        timeout: float,
        node: UUID | None = None,
        datasets: Iterable[UUID] = (),
    ) -> Deferred[Versions]:
        """See :meth:`ShoalClient.watch`."""
        params = {
            "configuration": str(configuration),
            "state": str(state),
            "timeout": f"{timeout:g}",
        }
        if node is not None:
            params["node"] = str(node)
        if datasets:
            params["datasets"] = ",".join(sorted(str(d) for d in datasets))
        return Deferred.fromCoroutine(self._watch(params, timeout))

    async def _watch(self, params: Mapping[str, str], timeout: float) -> Versions:
        answer = await self._json("GET", "/v1/shoal/watch", params=params, waits=timeout)
        return versions_from_json(answer)


def _as_flocker(shoal: Mapping[str, Any]) -> dict[str, Any]:
    """A dataset of ``/v1/shoal/datasets`` as ``/v1/configuration/datasets`` shows it
    (:func:`control.wire.dataset_to_json`): a released dataset is deleted there."""
    flocker = {key: shoal[key] for key in ("dataset_id", "primary", "metadata") if key in shoal}
    flocker["deleted"] = bool(shoal.get("deleted")) or bool(shoal.get("released"))
    if shoal.get("maximum_size") is not None:
        flocker["maximum_size"] = shoal["maximum_size"]
    return flocker
