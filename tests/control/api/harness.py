"""A ControlAPI over a MemoryStore, a task.Clock and StubTreq: no ports, no threads."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import treq
from attrs import define, field
from jsonschema import Draft202012Validator
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from control import __version__
from control.api.app import ControlAPI
from control.api.openapi import OPERATIONS, Operation, document
from control.roles import Principal, Role
from control.store.interface import Store
from control.store.memory import MemoryStore
from control.store.threaded import ThreadedStore, synchronous_runner

START = 1_000_000.0
NODE_A = UUID("aaaaaaaa-0000-4000-8000-000000000001")
NODE_B = UUID("bbbbbbbb-0000-4000-8000-000000000002")
DATASET_1 = UUID("11111111-0000-4000-8000-000000000001")
DATASET_2 = UUID("22222222-0000-4000-8000-000000000002")
GiB = 1024**3
MOUNT_ROOT = "/mnt"
"""Where :meth:`Harness.register` says its nodes mount datasets."""
IDENTITY_HEADER = "X-Test-Client-Certificate"
"""The header the harness reads a request's certificate identity from (TLS stands in)."""
PRINCIPAL_HEADER = "X-Test-Principal"
"""The header the harness reads a request's principal from: ``ROLE`` or ``node=UUID`` (TLS
stands in; without it the request is plain HTTP)."""


def principal(role: str, node: UUID | None = None, serial: int = 1) -> dict[str, str]:
    """The headers of a request made with a certificate of ``role`` (for ``node``)."""
    value = role if node is None else f"{role};{node}"
    return {PRINCIPAL_HEADER: f"{value};{serial}"}


def header_principal(request: Any) -> Principal | None:
    """The test stand-in for a TLS client certificate's principal (:data:`PRINCIPAL_HEADER`)."""
    value = request.getHeader(PRINCIPAL_HEADER)
    if value is None:
        return None
    role, *rest = str(value).split(";")
    node = UUID(rest[0]) if len(rest) == 2 else None
    serial = int(rest[-1]) if rest else 1
    known = Role(role) if role in {r.value for r in Role} else None
    subject = f"node-{node}" if node is not None else f"user-{role}"
    return Principal(subject, known, serial, f"{serial:064x}", node)


def header_identity(request: Any) -> str | None:
    """The test stand-in for a TLS client certificate: the value of :data:`IDENTITY_HEADER`."""
    value = request.getHeader(IDENTITY_HEADER)
    return None if value is None else str(value)


def result_of(d: Deferred) -> Any:
    """The result of a Deferred that has already fired (its failure is raised)."""
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def _uuids() -> Iterator[UUID]:
    n = 0
    while True:
        n += 1
        yield UUID(f"cccccccc-0000-4000-8000-{n:012d}")


def operation_for(method: str, path: str) -> Operation | None:
    """The documented operation a request falls under, if any."""
    bare = path.split("?", 1)[0]
    for op in OPERATIONS:
        pattern = "^" + re.sub(r"{\w+}", "[^/]+", op.path) + "$"
        if op.method == method.lower() and re.match(pattern, bare):
            return op
    return None


def _documented_statuses(op: Operation) -> set[str]:
    return set(document(__version__)["paths"][op.path][op.method]["responses"])


@define
class Answer:
    """A response: status, headers and decoded JSON body."""

    code: int
    headers: Any
    body: Any

    def header(self, name: str) -> str | None:
        """One response header, or None."""
        values = self.headers.getRawHeaders(name)
        return None if not values else values[0]


@define
class Harness:
    """The API under test with its clock and store."""

    clock: Clock = field(factory=Clock)
    memory: Store = field(factory=MemoryStore)
    api: ControlAPI = field(init=False)
    client: Any = field(init=False)  # StubTreq: its methods are generated

    def __attrs_post_init__(self) -> None:
        self.clock.advance(START)
        ids = _uuids()
        store = ThreadedStore(self.memory, synchronous_runner)
        self.api = ControlAPI(
            store,
            self.clock,
            new_uuid=lambda: next(ids),
            identify=header_identity,
            authenticate=header_principal,
        )
        self.client = StubTreq(self.api.resource())

    def start(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Deferred:
        """Send a request; the Deferred fires with the :class:`Answer`."""
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json"} if data is not None else {}
        sent.update(headers or {})
        request = self.client.request
        d = request(method, "http://shoal.test" + path, data=data, headers=sent)

        def read(response: Any) -> Deferred:
            return treq.content(response).addCallback(
                lambda content: self._answer(method, path, response, content)
            )

        return d.addCallback(read)

    def finish(self, d: Deferred) -> Answer:
        """Deliver what is pending and return the answer."""
        self.client.flush()
        return result_of(d)

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> Answer:
        """Send a request and return its answer right away."""
        return self.finish(self.start(method, path, body, **kw))

    def _answer(self, method: str, path: str, response: Any, content: bytes) -> Answer:
        assert response.headers.getRawHeaders("content-type") == ["application/json"]
        body = json.loads(content)
        op = operation_for(method, path)
        if response.code >= 400:
            assert isinstance(body["description"], str) and body["description"]
            assert "Traceback" not in content.decode()
        if op is not None:
            documented = _documented_statuses(op) | {"500"}  # 500s are tested as bugs
            assert str(response.code) in documented, (response.code, op.path, body)
            schema = op.answers.get(response.code)
            if response.code >= 400 or schema is None:
                from control.api.schemas import ERROR

                schema = ERROR
            Draft202012Validator(schema).validate(body)
        return Answer(response.code, response.headers, body)

    def register(
        self,
        node: UUID = NODE_A,
        host: str = "10.0.0.1",
        era: str = "e1",
        mount_root: str = MOUNT_ROOT,
        **kw: Any,
    ) -> Answer:
        """Register a node (mounting under ``mount_root``) and return the answer."""
        body = {"host": host, "era": era, "mount_root": mount_root}
        answer = self.call("PUT", f"/v1/shoal/nodes/{node}", body, **kw)
        assert answer.code == 200, answer.body
        return answer

    def create(self, primary: UUID = NODE_A, **fields: Any) -> Answer:
        """Create a dataset and return the answer."""
        body = {"primary": str(primary), **{k: v for k, v in fields.items()}}
        return self.call("POST", "/v1/configuration/datasets", body)

    def generation(self) -> int:
        """The store's configuration generation."""
        return self.memory.versions().configuration
