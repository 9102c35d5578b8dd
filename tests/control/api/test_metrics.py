"""The control service's ``/metrics``: the real API over a metered memory store, in memory."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import pytest
from prometheus_client import CollectorRegistry, Gauge
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from control.api.app import ControlAPI
from control.api.metrics import (
    UNMATCHED,
    ControlMetrics,
    MeteredStore,
    ReportCache,
    route_template,
)
from control.client.testing import result_of
from control.errors import InvalidRequest
from control.liveness import FailoverSettings
from control.metrics_http import metrics_site
from control.model import DatasetState, Node, NodeState, VolumeStatus
from control.runners import synchronous_runner
from control.service import ServiceOptions, check_listener_safety
from control.store.memory import MemoryStore
from control.store.threaded import ThreadedStore
from tests.scrape import Scrape, parse

URL = "http://control.invalid"
N1 = UUID(int=1)
D1 = UUID("6f1d0c7e-0000-4000-8000-00000000d001")
D2 = UUID("6f1d0c7e-0000-4000-8000-00000000d002")
GIB = 1 << 30
START = 1_700_000_000.0


class Service:
    """The API and its metrics over one memory store, reached through StubTreq."""

    def __init__(self, store: Any = None) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.metrics = ControlMetrics(CollectorRegistry())
        self.memory = MemoryStore() if store is None else store
        self.store = MeteredStore(self.memory, self.metrics, self.clock)
        self.api = ControlAPI(ThreadedStore(self.store, synchronous_runner), self.clock)
        self.metrics.watch(lambda: self.api.notifier.waiting)
        self.metrics.collect_cluster(self.store, self.clock, FailoverSettings(), START)
        root = self.metrics.root(
            self.api.resource(), ControlAPI.app.url_map, self.clock, synchronous_runner
        )
        self.stub = StubTreq(root)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request and return the response (its body read)."""
        d = self.stub.request(method, URL + path, **kwargs)
        self.stub.flush()
        response = result_of(d)
        body = self.stub.content(response)
        self.stub.flush()
        response.body = result_of(body)
        return response

    def scrape(self) -> Scrape:
        """GET /metrics, parsed."""
        response = self.request("GET", "/metrics")
        assert response.code == 200
        assert response.headers.getRawHeaders("content-type")[0].startswith("text/plain")
        return parse(response.body.decode())

    def register(self) -> None:
        """Register node N1 (straight into the store)."""
        self.store.register_node(Node(N1, "h1", "era", mount_root="/m", last_seen=START))

    def report_mounted(self, dataset_id: UUID) -> None:
        """N1 reports ``dataset_id`` mounted, at the clock's now."""
        generation = self.memory.versions().configuration
        found = DatasetState(dataset_id, VolumeStatus.MOUNTED, GIB, "/dev/x", f"/m/{dataset_id}")
        self.store.report_state(
            NodeState(N1, "era", generation, {dataset_id: found}, self.clock.seconds())
        )


def create(service: Service, dataset_id: UUID = D1) -> Any:
    """Create a 1 GiB dataset on N1 through the API."""
    return service.request(
        "POST", "/v1/configuration/datasets",
        json={"primary": str(N1), "maximum_size": GIB, "dataset_id": str(dataset_id)},
    )


def test_families_and_types() -> None:
    """Every control family is exposed with its type, before anything happened."""
    found = Service().scrape()
    assert {
        "shoal_http_request_duration_seconds": "histogram",
        "shoal_control_writes": "counter",
        "shoal_watch_waiters": "gauge",
        "shoal_convergence_lag_seconds": "histogram",
        "shoal_convergence_pending_changes": "gauge",
        "shoal_store_up": "gauge",
        "shoal_datasets": "gauge",
        "shoal_nodes": "gauge",
        "shoal_nodes_fenced": "gauge",
        "shoal_nodes_draining": "gauge",
    }.items() <= found.types.items()
    assert found.value("shoal_store_up") == 1.0
    assert found.label_values("shoal_datasets", "state") == {"converged", "pending", "error"}


def test_a_create_moves_writes_datasets_and_latency() -> None:
    """After a create: one write, one pending dataset, one timed request on its route."""
    service = Service()
    service.register()
    assert create(service).code == 201
    found = service.scrape()
    assert found.value("shoal_control_writes_total", kind="create_dataset", result="ok") == 1
    assert found.value("shoal_datasets", state="pending") == 1
    assert found.value("shoal_nodes", liveness="live") == 1
    assert found.value(
        "shoal_http_request_duration_seconds_count",
        route="/v1/configuration/datasets", method="POST", code="201",
    ) == 1


def test_report_converges_and_observes_the_lag() -> None:
    """The primary's report of the dataset mounted makes it converged and observes the lag."""
    service = Service()
    service.register()
    create(service)
    service.clock.advance(2.5)
    service.report_mounted(D1)
    found = service.scrape()
    assert found.value("shoal_datasets", state="converged") == 1
    assert found.value("shoal_datasets", state="pending") == 0
    assert found.value("shoal_convergence_lag_seconds_count") == 1
    assert found.value("shoal_convergence_lag_seconds_sum") == 2.5
    assert found.value("shoal_convergence_pending_changes") == 0
    assert found.value("shoal_control_writes_total", kind="report_state", result="ok") == 1


def test_refused_write_is_counted_as_refused() -> None:
    """A create the store refuses (an unknown node) counts as refused."""
    service = Service()
    assert create(service).code == 409
    found = service.scrape()
    assert found.value("shoal_control_writes_total", kind="create_dataset", result="refused") == 1
    assert found.value("shoal_control_writes_total", kind="create_dataset", result="ok") == 0


def test_a_move_counts_as_a_move_and_is_pending_until_reported() -> None:
    """A move through the API (written in a group) counts one ``move_dataset`` write and makes
    its dataset pending again; a move the store refuses counts as refused."""
    service = Service()
    service.register()
    n2 = UUID(int=2)
    service.store.register_node(Node(n2, "h2", "era2", mount_root="/m", last_seen=START))
    create(service)
    service.report_mounted(D1)
    moved = service.request("POST", f"/v1/configuration/datasets/{D1}", json={"primary": str(n2)})
    assert moved.code == 200
    refused = service.request("POST", f"/v1/configuration/datasets/{D1}",
                              json={"primary": str(UUID(int=3))})
    assert refused.code == 409
    found = service.scrape()
    assert found.value("shoal_control_writes_total", kind="move_dataset", result="ok") == 1
    assert found.value("shoal_control_writes_total", kind="move_dataset", result="refused") == 1
    assert found.value("shoal_datasets", state="pending") == 1


def test_routes_are_templates_never_raw_paths() -> None:
    """A request naming a dataset is labelled by its route template; no id is in any label."""
    service = Service()
    service.register()
    create(service)
    service.request("GET", f"/v1/shoal/datasets/{D1}/failover")
    service.request("GET", "/no/such/route")
    found = service.scrape()
    routes = found.label_values("shoal_http_request_duration_seconds_count", "route")
    assert "/v1/shoal/datasets/<dataset_id>/failover" in routes
    assert UNMATCHED in routes
    assert all(str(D1) not in str(sample.labels) for sample in found.samples)


def test_watch_waiters_gauge_counts_open_watches() -> None:
    """A watch waiting for a change shows in the gauge, and leaves it once answered."""
    service = Service()
    d = service.stub.get(URL + "/v1/shoal/watch?configuration=5&state=5&timeout=30")
    service.stub.flush()
    assert service.scrape().value("shoal_watch_waiters") == 1
    service.clock.advance(31)
    service.stub.flush()
    assert result_of(d).code == 200
    assert service.scrape().value("shoal_watch_waiters") == 0


class CountingStore(MemoryStore):
    """A memory store that counts full reads and can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.broken = False

    def configuration(self, now: float) -> Any:
        """Count, then read."""
        self.reads += 1
        return super().configuration(now)

    def versions(self) -> Any:
        """Fail while broken."""
        if self.broken:
            raise OSError("database is gone")
        return super().versions()


def test_configuration_is_read_only_after_a_configuration_change() -> None:
    """Two scrapes with nothing written in between read the configuration once; a report
    is judged from the configuration already read."""
    store = CountingStore()
    service = Service(store)
    service.register()
    create(service)
    service.scrape()
    before = store.reads
    service.scrape()
    assert store.reads == before
    service.report_mounted(D1)
    assert service.scrape().value("shoal_datasets", state="converged") == 1
    assert store.reads == before
    create(service, D2)
    assert service.scrape().value("shoal_datasets", state="pending") == 1
    assert store.reads == before + 1


def test_unreadable_store_is_reported_not_fatal() -> None:
    """When the store cannot be read the scrape still answers, with shoal_store_up 0."""
    store = CountingStore()
    service = Service(store)
    store.broken = True
    found = service.scrape()
    assert found.value("shoal_store_up") == 0
    assert found.label_values("shoal_datasets", "state") == set()


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        (b"GET", b"/v1/configuration/datasets", "/v1/configuration/datasets"),
        (b"DELETE", f"/v1/configuration/datasets/{D1}".encode(),
         "/v1/configuration/datasets/<dataset_id>"),
        (b"BREW", b"/v1/configuration/datasets", UNMATCHED),
        (b"GET", b"/v1/\xff", UNMATCHED),
    ],
)
def test_route_template(method: bytes, path: bytes, route: str) -> None:
    """Each request is named by its rule, or ``unmatched``."""

    class Request:
        """The two fields route_template reads."""

        def __init__(self) -> None:
            self.method, self.path = method, path

    route_of = route_template(ControlAPI.app.url_map)
    assert route_of(Request()) == route  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("address", "allow", "refused"),
    [
        ("127.0.0.1:9523", False, None),
        ("[::1]:9523", False, None),
        ("0.0.0.0:9523", False, "Refusing to serve the metrics as plain HTTP on 0.0.0.0"),
        ("0.0.0.0:9523", True, None),
        ("9523", False, "A metrics address is HOST:PORT"),
    ],
)
def test_metrics_address_is_loopback_unless_insecure_is_allowed(
    address: str, allow: bool, refused: str | None
) -> None:
    """The plain-HTTP metrics listener is refused off loopback without --allow-insecure."""
    options = ServiceOptions(metrics_address=address, allow_insecure=allow)
    if refused is None:
        check_listener_safety(options)
        return
    with pytest.raises(InvalidRequest, match=re.escape(refused)):
        check_listener_safety(options)


class TestReportCache:
    """The reports the dataset counts are computed from."""

    def test_a_later_report_replaces_an_earlier_never_the_reverse(self) -> None:
        """A store load holding an older report does not undo one just written."""
        cache = ReportCache()
        newer = NodeState(N1, "era", 0, {}, reported_at=20.0)
        older = NodeState(N1, "era", 0, {D1: _mounted(D1)}, reported_at=10.0)
        cache.wrote(newer)
        version, _ = cache.summaries()
        cache.load([older], now=30.0)
        assert cache.summaries()[0] == version
        assert cache.summaries()[1][N1].reported == frozenset()

    def test_reloads_from_the_store_after_the_resync_interval(self) -> None:
        """Stale at first, fresh after a load, stale again once the interval passed."""
        cache = ReportCache(resync=60.0)
        assert cache.stale(0.0)
        cache.load([], now=100.0)
        assert not cache.stale(159.0)
        assert cache.stale(160.0)

    def test_summaries_are_made_once_per_report(self) -> None:
        """The same report is not summarised again; a new one is."""
        cache = ReportCache()
        cache.wrote(NodeState(N1, "era", 0, {D1: _mounted(D1)}, reported_at=1.0))
        first = cache.summaries()[1][N1]
        assert cache.summaries()[1][N1] is first
        cache.wrote(NodeState(N1, "era", 0, {}, reported_at=2.0))
        assert cache.summaries()[1][N1].mounted == {}


def _mounted(dataset_id: UUID) -> DatasetState:
    return DatasetState(dataset_id, VolumeStatus.MOUNTED, GIB, "/dev/x", f"/m/{dataset_id}")


def test_collection_is_handed_to_the_runner() -> None:
    """The exposition is rendered by the injected runner (a thread pool in the service):
    nothing is answered until the runner is done, so the reactor never collects."""
    handed: list[tuple[Deferred[bytes], Any, tuple[Any, ...]]] = []

    def runner(f: Any, *args: Any) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        handed.append((d, f, args))
        return d

    registry = CollectorRegistry()
    Gauge("shoal_test_value", "A value.", registry=registry).set(3)
    stub = StubTreq(metrics_site(registry, runner).resource)
    answered: list[Any] = []
    stub.get(URL + "/metrics").addBoth(answered.append)
    stub.flush()
    assert (answered, len(handed)) == ([], 1)
    done, f, args = handed[0]
    done.callback(f(*args))
    stub.flush()
    response = answered[0]
    body = stub.content(response)
    stub.flush()
    assert response.code == 200
    assert parse(result_of(body).decode()).value("shoal_test_value") == 3


def test_metrics_on_the_api_port_obey_the_read_rule_and_revocations() -> None:
    """Over mutual TLS, /metrics is read with a reading role; a node's or a revoked
    certificate is refused 403, saying why; plain HTTP is served."""
    from tests.control.api.harness import header_principal, principal

    clock = Clock()
    clock.advance(START)
    metrics = ControlMetrics(CollectorRegistry())
    api = ControlAPI(
        ThreadedStore(MemoryStore(), synchronous_runner), clock, authenticate=header_principal
    )
    stub = StubTreq(metrics.root(
        api.resource(), ControlAPI.app.url_map, clock, synchronous_runner, api.guard_reads
    ))

    def scrape(headers: dict[str, str]) -> tuple[int, bytes]:
        response = result_of(stub.get(URL + "/metrics", headers=headers))
        return response.code, result_of(stub.content(response))

    assert scrape({})[0] == 200
    assert scrape(principal("viewer"))[0] == 200
    code, body = scrape(principal("node", N1))
    assert code == 403 and b"needs the role viewer" in body
    api.denylist.update([77])
    code, body = scrape(principal("viewer", serial=77))
    assert code == 403 and b"revoked" in body
