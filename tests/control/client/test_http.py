"""The HTTP client passes the client contract against the real API in memory."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock

from control.api.app import ControlAPI
from control.client.http import HTTPClient
from control.client.interface import ShoalClient
from control.errors import Conflict, ShoalError, Unavailable
from control.runners import synchronous_runner
from control.store.memory import MemoryStore
from control.store.threaded import ThreadedStore

from .suite import START, ClientContract, ClientHarness, result_of

URL = "http://shoal.test:4523"


class TestHTTPClient(ClientContract):
    """The HTTP client against ControlAPI over StubTreq."""

    @pytest.fixture
    def harness(self) -> ClientHarness:
        """An HTTP client talking to a fresh API in memory."""
        clock = Clock()
        clock.advance(START)
        api = ControlAPI(ThreadedStore(MemoryStore(), synchronous_runner), clock)
        stub = StubTreq(api.resource())
        return ClientHarness(HTTPClient(URL + "/", stub, clock=clock), clock, stub.flush)

    def test_listing_reads_every_page(
        self, harness: ClientHarness, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The client lists datasets page by page (here two per page): every dataset once,
        by id, with the first page's tag."""
        monkeypatch.setattr("control.client.http.LISTING_PAGE", 2)
        harness.register()
        created = [harness.create() for _ in range(5)]
        tag, datasets = harness.run(harness.client.list_datasets())
        assert (tag, datasets) == ("5", sorted(created, key=lambda d: str(d.dataset_id)))


def test_provides_interface() -> None:
    """The HTTP client is a ShoalClient."""
    assert isinstance(HTTPClient(URL, object(), clock=Clock()), ShoalClient)


class Refusing:
    """A treq stand-in whose every connection is refused."""

    def request(self, method: str, url: str, **kw: Any) -> Deferred:
        """Fail like a closed port."""
        return fail(ConnectionRefusedError("Connection was refused by other side"))


def test_unreachable() -> None:
    """A refused connection is Unavailable, naming the URL."""
    client = HTTPClient(URL, Refusing(), clock=Clock())
    with pytest.raises(Unavailable, match="shoal.test:4523.*refused"):
        result_of(client.version())


class Answering:
    """A treq stand-in answering every request with one status and body."""

    def __init__(self, code: int, body: bytes) -> None:
        self.code = code
        self.body = body
        self.headers: Any = None

    def request(self, method: str, url: str, **kw: Any) -> Deferred:
        """Answer with the canned response."""
        return succeed(self)

    def content(self) -> Deferred:
        """The canned body."""
        return succeed(self.body)


def test_refusal_type_and_description() -> None:
    """A JSON refusal becomes the matching error carrying the service's words."""
    client = HTTPClient(URL, Answering(409, b'{"description": "in use", "errors": ["x"]}'))
    with pytest.raises(Conflict) as caught:
        result_of(client.version())
    assert (caught.value.description, caught.value.errors) == ("in use", ["x"])


def test_non_json_refusal() -> None:
    """A refusal that is not JSON (a proxy's 502) still says what came back."""
    client = HTTPClient(URL, Answering(502, b"Bad Gateway"), clock=Clock())
    with pytest.raises(ShoalError, match="answered 502: Bad Gateway"):
        result_of(client.version())


class SilentTreq:
    """A treq whose requests are accepted and never answered."""

    def request(self, method: str, url: str, **kwargs: Any) -> Deferred[Any]:
        """Never fires."""
        return Deferred()


def test_unanswered_request_is_unavailable_after_the_timeout() -> None:
    """A service that never answers is reported unavailable once the request timeout passes."""
    clock = Clock()
    client = HTTPClient("http://control:4523", SilentTreq(), clock=clock, request_timeout=30)
    outcome: list[Any] = []
    client.version().addBoth(outcome.append)
    clock.advance(29)
    assert outcome == []
    clock.advance(1)
    assert isinstance(outcome[0].value, Unavailable)
    assert "did not answer within 30 s" in outcome[0].value.description


def test_watch_may_wait_its_own_timeout_on_top() -> None:
    """A watch is given its waiting time on top of the request timeout."""
    clock = Clock()
    client = HTTPClient("http://control:4523", SilentTreq(), clock=clock, request_timeout=30)
    outcome: list[Any] = []
    client.watch(1, 1, 60).addBoth(outcome.append)
    clock.advance(89)
    assert outcome == []
    clock.advance(1)
    assert isinstance(outcome[0].value, Unavailable)


class Routing:
    """A treq stand-in sending each request by its URL's host, counting the attempts."""

    def __init__(self, routes: dict[str, Any]) -> None:
        self.routes = routes
        self.attempts: list[str] = []

    def request(self, method: str, url: str, **kw: Any) -> Deferred:
        """Send the request to the stand-in for its host."""
        host = url.split("/")[2]
        self.attempts.append(host)
        return self.routes[host].request(method, url, **kw)


def _replicas() -> tuple[HTTPClient, Routing, Clock]:
    """A client of three replicas: one refusing, one answering 503, one the real API."""
    clock = Clock()
    clock.advance(START)
    api = ControlAPI(ThreadedStore(MemoryStore(), synchronous_runner), clock)
    routes = {
        "down:1": Refusing(),
        "sick:2": Answering(503, b'{"description": "The database is unavailable"}'),
        "up:3": StubTreq(api.resource()),
    }
    router = Routing(routes)
    client = HTTPClient(["http://down:1", "http://sick:2,http://up:3"], router, clock=clock)
    return client, router, clock


def test_a_client_of_several_replicas_moves_on_and_stays_with_the_one_that_answered() -> None:
    """Refused and 5xx replicas are skipped; the next request goes straight to the good one."""
    client, router, _ = _replicas()
    assert result_of(client.version()).shoal
    assert router.attempts == ["down:1", "sick:2", "up:3"]
    assert client.base_url == "http://up:3"
    result_of(client.version())
    assert router.attempts[3:] == ["up:3"]


def test_a_refusal_is_the_answer_and_is_not_sent_elsewhere() -> None:
    """A 4xx from a replica is raised at once, without trying the others."""
    client, router, _ = _replicas()
    result_of(client.version())
    del router.attempts[:]
    with pytest.raises(ShoalError):
        result_of(client.delete_dataset(UUID(int=7)))
    assert router.attempts == ["up:3"]


def test_when_no_replica_answers_the_last_failure_is_raised() -> None:
    """With every replica down or failing, the client reports the last one's trouble."""
    routes = {"down:1": Refusing(), "sick:2": Answering(503, b'{"description": "db down"}')}
    client = HTTPClient("http://sick:2,http://down:1", Routing(routes), clock=Clock())
    with pytest.raises(Unavailable, match="down:1.*refused"):
        result_of(client.version())

