"""Group commit on the reactor (:mod:`control.api.group`): queued creates, each answered alone."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import uuid4

import pytest
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from control.api.group import GroupCommit, taking
from control.errors import Conflict, Unavailable
from control.model import Dataset, Node
from control.runners import synchronous_runner
from control.store.interface import NewDataset
from control.store.memory import MemoryStore
from control.store.threaded import ThreadedStore


def _new() -> NewDataset:
    return NewDataset(Dataset(dataset_id=uuid4(), primary=uuid4()))


def _results(deferreds: Sequence[Deferred]) -> list[Any]:
    found: list[Any] = []
    for d in deferreds:
        d.addBoth(found.append)
    return found


class Recorder:
    """A group writer whose groups are answered by the test."""

    def __init__(self) -> None:
        self.groups: list[list[NewDataset]] = []
        self.pending: list[Deferred] = []

    def __call__(self, take: Callable[[], list[NewDataset]]) -> Deferred:
        self.groups.append(take())
        self.pending.append(Deferred())
        return self.pending[-1]


def test_lone_create_is_written_at_once() -> None:
    """A create with nothing in flight is written right away, as a group of one."""
    recorder = Recorder()
    new = _new()
    GroupCommit(recorder).create(new)
    assert recorder.groups == [[new]]


def test_creates_arriving_meanwhile_go_together_next() -> None:
    """Creates queued while a group is in flight are written together once it is committed."""
    recorder = Recorder()
    group = GroupCommit(recorder)
    first = _new()
    later = [_new() for _ in range(3)]
    answers = _results([group.create(n) for n in [first, *later]])
    assert recorder.groups == [[first]] and group.waiting == 3
    recorder.pending[0].callback([(first.dataset, 1)])
    assert recorder.groups == [[first], later]
    assert answers == [(first.dataset, 1)]
    recorder.pending[1].callback([(n.dataset, 2 + i) for i, n in enumerate(later)])
    assert answers == [(first.dataset, 1)] + [(n.dataset, 2 + i) for i, n in enumerate(later)]


def test_refusal_fails_only_its_own_create() -> None:
    """A refused create of a group is refused alone; the others get their datasets."""
    recorder = Recorder()
    group = GroupCommit(recorder)
    blocker = group.create(_new())
    news = [_new() for _ in range(3)]
    answers = _results([group.create(n) for n in news])
    blocker.addErrback(lambda _: None)
    recorder.pending[0].callback([(Dataset(dataset_id=uuid4(), primary=uuid4()), 1)])
    refusal = Conflict("name in use")
    recorder.pending[1].callback([(news[0].dataset, 2), refusal, (news[2].dataset, 3)])
    assert answers[0] == (news[0].dataset, 2)
    assert isinstance(answers[1], Failure) and answers[1].value is refusal
    assert answers[2] == (news[2].dataset, 3)


def test_failed_group_fails_its_creates_and_the_next_still_runs() -> None:
    """A group that fails (the database) fails each of its creates; the queued ones go on."""
    recorder = Recorder()
    group = GroupCommit(recorder)
    failed = _results([group.create(_new())])
    queued = _new()
    answers = _results([group.create(queued)])
    recorder.pending[0].errback(Unavailable("the database is down"))
    assert isinstance(failed[0], Failure) and failed[0].check(Unavailable)
    assert recorder.groups[1] == [queued]
    recorder.pending[1].callback([(queued.dataset, 7)])
    assert answers == [(queued.dataset, 7)]


def test_group_size_is_limited() -> None:
    """No group holds more than the limit; the rest wait for the next one."""
    recorder = Recorder()
    group = GroupCommit(recorder, limit=2)
    for _ in range(6):
        group.create(_new())
    recorder.pending[0].callback([(None, 0)])
    assert [len(g) for g in recorder.groups] == [1, 2]
    recorder.pending[1].callback([(None, 0)] * 2)
    recorder.pending[2].callback([(None, 0)] * 2)
    assert [len(g) for g in recorder.groups] == [1, 2, 2, 1]


@pytest.mark.parametrize("count", [1, 5])
def test_creates_through_a_store_each_answered(count: int) -> None:
    """Through a real store, every create is stored and answered with its own generation."""
    store = MemoryStore()
    node = store.register_node(Node(uuid=uuid4(), host="h")).uuid
    group = GroupCommit(taking(ThreadedStore(store, synchronous_runner).create_datasets))
    news = [NewDataset(Dataset(dataset_id=uuid4(), primary=node)) for _ in range(count)]
    answers = _results([group.create(n) for n in news])
    assert [a[0].dataset_id for a in answers] == [n.dataset.dataset_id for n in news]
    assert sorted(a[1] for a in answers) == list(range(1, count + 1))


def test_group_is_taken_when_its_writer_starts() -> None:
    """Creates queued after a group was handed to its writer, before the writer took it from
    the queue, are written in that group."""
    takes: list[Callable[[], list[NewDataset]]] = []
    done: list[Deferred] = []

    def write(take: Callable[[], list[NewDataset]]) -> Deferred:
        takes.append(take)
        done.append(Deferred())
        return done[-1]

    group = GroupCommit(write)
    news = [_new() for _ in range(3)]
    answers = _results([group.create(n) for n in news])
    assert len(takes) == 1
    assert takes[0]() == news and group.waiting == 0
    done[0].callback([(n.dataset, i) for i, n in enumerate(news)])
    assert answers == [(n.dataset, i) for i, n in enumerate(news)]
    assert len(takes) == 1


def test_writer_failing_before_it_takes_fails_the_queued() -> None:
    """A writer that fails before taking its group fails the creates queued for it."""
    group = GroupCommit(lambda take: Deferred.fromCoroutine(_fail()))
    answers = _results([group.create(_new())])
    assert isinstance(answers[0], Failure) and answers[0].check(Unavailable)
    assert group.waiting == 0


async def _fail() -> None:
    raise Unavailable("no thread")


def test_two_in_flight_start_a_second_group_at_once() -> None:
    """With two groups in flight allowed, a create arriving while one is in flight starts a
    second group; creates arriving while both are in flight wait for one to be answered, and
    all of them then go as one group."""
    recorder = Recorder()
    group = GroupCommit(recorder, in_flight=2)
    first, second = _new(), _new()
    later = [_new() for _ in range(3)]
    answers = _results([group.create(n) for n in [first, second, *later]])
    assert recorder.groups == [[first], [second]]
    assert group.waiting == 3
    recorder.pending[1].callback([(second.dataset, 2)])
    assert answers == [(second.dataset, 2)]
    assert recorder.groups[2:] == [later]
    recorder.pending[0].callback([(first.dataset, 1)])
    assert answers[1] == (first.dataset, 1)
    assert len(recorder.groups) == 3 and group.waiting == 0


def test_a_started_group_not_yet_taken_takes_the_next_create() -> None:
    """While a started group has not taken its creates, a new create joins it instead of
    starting another group, even with a slot free."""
    takes: list[Callable[[], list[NewDataset]]] = []

    def write(take: Callable[[], list[NewDataset]]) -> Deferred:
        takes.append(take)
        return Deferred()

    group = GroupCommit(write, in_flight=3)
    news = [_new() for _ in range(3)]
    for new in news:
        group.create(new)
    assert len(takes) == 1
    assert takes[0]() == news
    another = _new()
    group.create(another)
    assert len(takes) == 2 and takes[1]() == [another]
