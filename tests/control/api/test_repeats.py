"""A report repeating, byte for byte, the node's last heartbeat is answered at once (renewed by
the store), with the answer the whole path gives, and only while that answer still holds."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.web.test.requesthelper import DummyRequest

from control.api.repeats import Reporting
from control.errors import Unavailable
from control.model import Versions
from control.store.interface import Renewal, ReportAnswer, Reported, StateReach
from control.store.migrate import upgrade
from control.store.sql import SQLStore
from tests.control.api.harness import (
    DATASET_1,
    IDENTITY_HEADER,
    MOUNT_ROOT,
    NODE_A,
    Harness,
    result_of,
)

PATH = f"/v1/shoal/state/{NODE_A}"


class CountingStore(SQLStore):
    """The SQL store as the service opens it, counting the reports it judges."""

    judged = 0

    def report_states_reaching(
        self, reports: Sequence[Reported]
    ) -> tuple[list[ReportAnswer], StateReach | None]:
        """:meth:`SQLStore.report_states_reaching` (what the API judges reports with), counted."""
        self.judged += len(reports)
        return super().report_states_reaching(reports)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CountingStore]:
    """A SQLite store with heartbeats in memory, the database's only writer."""
    url = f"sqlite:///{tmp_path / 'control.db'}"
    upgrade(url)
    opened = CountingStore(url, seen_in_memory=True, sole_writer=True)
    yield opened
    opened.close()


def _body(generation: int, era: str = "e1") -> dict[str, Any]:
    entry = {"dataset_id": str(DATASET_1), "status": "mounted", "device": "/dev/x",
             "path": f"{MOUNT_ROOT}/{DATASET_1}"}
    return {"era": era, "generation": generation, "datasets": [entry]}


def _beating(store: CountingStore, **headers: str) -> tuple[Harness, dict[str, Any], Any]:
    """A harness over ``store`` whose node A reported once and then heartbeat once (judged):
    it, the body, and the heartbeat's answer."""
    h = Harness(memory=store)
    h.register(headers=headers)
    h.create(dataset_id=str(DATASET_1))
    body = _body(h.generation())
    assert h.call("PUT", PATH, body, headers=headers).body["changed"] is True
    h.clock.advance(5)
    answer = h.call("PUT", PATH, body, headers=headers)
    assert answer.code == 200 and answer.body["changed"] is False
    return h, body, answer.body


def test_a_repeated_heartbeat_is_answered_without_judging(store: CountingStore) -> None:
    """The same body again is not judged: the answer is the judged heartbeat's (unchanged,
    the same counters), and the node is seen at the time it came."""
    h, body, judged = _beating(store)
    before = store.judged
    for _ in range(3):
        h.clock.advance(5)
        answer = h.call("PUT", PATH, body)
        assert (answer.code, answer.body) == (200, judged)
    assert store.judged == before
    assert judged["configuration"] == store.versions().configuration
    assert judged["state"] == store.versions().state
    state = store.cluster_state()
    assert state.nodes[NODE_A].last_seen == h.clock.seconds()
    assert state.reports[NODE_A].reported_at == h.clock.seconds()


def test_a_new_era_refuses_the_repeat(store: CountingStore) -> None:
    """After the node registered in a new era, the repeated body is judged, and refused."""
    h, body, _ = _beating(store)
    h.register(era="e2")
    before = store.judged
    assert h.call("PUT", PATH, body).code == 409
    assert h.call("PUT", PATH, body).code == 409
    assert store.judged == before + 2


def test_after_a_write_the_repeat_is_judged_once(store: CountingStore) -> None:
    """A write (a fence here) ends the renewal: the next repeat is judged (a fenced node's
    report is accepted), and the one after it is renewed again, at the new counters."""
    h, body, judged = _beating(store)
    assert h.call("POST", f"/v1/shoal/nodes/{NODE_A}/fence", {"reason": "test"}).code == 200
    before = store.judged
    first = h.call("PUT", PATH, body)
    second = h.call("PUT", PATH, body)
    assert store.judged == before + 1
    assert first.body == second.body
    assert first.body["changed"] is False
    assert first.body["state"] > judged["state"]


def test_another_body_is_judged(store: CountingStore) -> None:
    """A body that differs in any byte (here only its spacing) is judged; then it is the one
    repeated."""
    h, body, judged = _beating(store)
    spaced = json.dumps(body, indent=1).encode()
    before = store.judged
    assert h.call("PUT", PATH, raw=spaced).body == judged
    assert h.call("PUT", PATH, raw=spaced).body == judged
    assert h.call("PUT", PATH, body).body == judged
    assert store.judged == before + 2


def test_another_certificate_is_judged(store: CountingStore) -> None:
    """A node registered with a certificate: its repeat under another is judged and refused,
    and the next one under its own is judged again before being renewed."""
    mine = {IDENTITY_HEADER: "cert-a"}
    h, body, judged = _beating(store, **mine)
    before = store.judged
    assert h.call("PUT", PATH, body, headers={IDENTITY_HEADER: "cert-b"}).code == 403
    assert h.call("PUT", PATH, body, headers=mine).body == judged
    assert h.call("PUT", PATH, body, headers=mine).body == judged
    assert store.judged == before + 2


# -- a report in flight ------------------------------------------------------------


class Held:
    """Judges reports with the store, holding the answers until :meth:`release`."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store
        self.calls = 0
        self.held: list[tuple[Reported, Deferred]] | None = None

    def __call__(self, reported: Reported) -> Deferred:
        self.calls += 1
        d: Deferred = Deferred()
        if self.held is None:
            self._answer(reported, d)
        else:
            self.held.append((reported, d))
        return d

    def release(self) -> None:
        held, self.held = self.held or [], None
        for reported, d in held:
            self._answer(reported, d)

    def _answer(self, reported: Reported, d: Deferred) -> None:
        answer = self.store.report_states([reported])[0]
        if isinstance(answer, Exception):
            d.errback(answer)
        else:
            d.callback((answer, self.store.versions(), None))


def _request(body: dict[str, Any]) -> DummyRequest:
    request = DummyRequest([b""])
    request.requestHeaders.setRawHeaders(b"content-type", [b"application/json"])
    request.content = io.BytesIO(json.dumps(body).encode())
    return request


def test_a_repeat_behind_a_report_in_flight_is_judged_after_it(store: CountingStore) -> None:
    """While a changed report of the node is being judged, the heartbeat's body again is
    judged after it (so it is a change back), not renewed ahead of it."""
    h, body, _ = _beating(store)
    held = Held(store)
    reporting = Reporting(store.renew_report, held)
    now = h.clock.seconds()

    def report(sent: dict[str, Any]) -> Deferred:
        return Deferred.fromCoroutine(reporting.report(_request(sent), NODE_A, None, now))

    assert result_of(report(body))[0] is False  # judged: this Reporting has seen none yet
    assert result_of(report(body))[0] is False
    assert held.calls == 1
    held.held = []
    unmounted = {**body, "datasets": []}
    first, second = report(unmounted), report(body)
    assert held.calls == 3
    held.release()
    assert (result_of(first)[0], result_of(second)[0]) == (True, True)
    assert result_of(report(body))[0] is False
    assert held.calls == 4
    assert result_of(report(body))[0] is False
    assert held.calls == 4


def test_a_repeat_the_store_must_read_for_is_checked_not_judged(store: CountingStore) -> None:
    """Where renewing needs a read (PostgreSQL), a repeat goes to the check instead of being
    judged, and gets the check's counters; one the check does not renew, or whose check
    fails, is judged the whole way."""
    h, body, _ = _beating(store)
    held = Held(store)
    checked: list[Renewal] = []
    answers: list[Versions | None | Exception] = [Versions(7, 8), None, RuntimeError("down")]

    def check(renewal: Renewal) -> Deferred[Versions | None]:
        checked.append(renewal)
        answer = answers.pop(0)
        return fail(answer) if isinstance(answer, Exception) else succeed(answer)

    reporting = Reporting(lambda *_: None, held, check)
    now = h.clock.seconds()

    def report() -> Any:
        return result_of(
            Deferred.fromCoroutine(reporting.report(_request(body), NODE_A, None, now))
        )

    assert report()[0] is False and held.calls == 1  # judged: nothing remembered yet
    assert report() == (False, Versions(7, 8), None)
    assert held.calls == 1 and checked == [(NODE_A, None, now)]
    assert report()[0] is False and held.calls == 2
    assert report()[0] is False and held.calls == 3
    assert len(checked) == 3


def test_a_checked_repeat_overtaken_by_a_later_report_is_refused(store: CountingStore) -> None:
    """A repeat the check does not renew, while a later report of its node came and was
    judged, is refused as superseded (503) and not judged after it: the older observation
    is never recorded over the newer."""
    h, body, _ = _beating(store)
    held = Held(store)
    pending: list[Deferred[Versions | None]] = []

    def check(renewal: Renewal) -> Deferred[Versions | None]:
        pending.append(Deferred())
        return pending[-1]

    reporting = Reporting(lambda *_: None, held, check)
    now = h.clock.seconds()

    def report(sent: dict[str, Any]) -> Deferred:
        return Deferred.fromCoroutine(reporting.report(_request(sent), NODE_A, None, now))

    assert result_of(report(body))[0] is False and held.calls == 1  # remembered
    repeat = report(body)
    assert len(pending) == 1 and held.calls == 1  # waiting for the check
    unmounted = {**body, "datasets": []}
    assert result_of(report(unmounted))[0] is True and held.calls == 2
    pending[0].callback(None)
    with pytest.raises(Unavailable, match="later state report"):
        result_of(repeat)
    assert held.calls == 2
    assert store.cluster_state().reports[NODE_A].datasets == {}
