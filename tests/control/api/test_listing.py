"""The dataset listing encoder re-encodes only what changed and answers like plain encoding."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import Deferred

from control.api.app import ControlAPI
from control.api.listing import ListingEncoder
from control.model import Configuration, Dataset
from control.runners import synchronous_runner
from control.store.threaded import ThreadedStore
from control.wire import dataset_to_json
from tests.control.api.harness import GiB, Harness


def configuration(generation: int, datasets: list[Dataset]) -> Configuration:
    """A configuration holding ``datasets``."""
    return Configuration(generation=generation, datasets={d.dataset_id: d for d in datasets})


def test_listing_matches_plain_encoding_in_id_order() -> None:
    """The encoded listing is every dataset's JSON, ordered by id."""
    datasets = [Dataset(dataset_id=uuid.uuid4(), primary=uuid.uuid4()) for _ in range(20)]
    body = ListingEncoder().datasets(configuration(1, datasets))
    expected = [dataset_to_json(d) for d in sorted(datasets, key=lambda d: str(d.dataset_id))]
    assert json.loads(body) == expected


def test_changed_dataset_is_encoded_again() -> None:
    """A dataset that changed in a later generation is listed as it is now."""
    node, other = uuid.uuid4(), uuid.uuid4()
    dataset = Dataset(dataset_id=uuid.uuid4(), primary=node)
    encoder = ListingEncoder()
    encoder.datasets(configuration(1, [dataset]))
    moved = Dataset(dataset_id=dataset.dataset_id, primary=other)
    assert json.loads(encoder.datasets(configuration(2, [moved])))[0]["primary"] == str(other)


def test_removed_dataset_is_not_listed() -> None:
    """A purged dataset disappears from the next generation's listing."""
    kept, purged = (Dataset(dataset_id=uuid.uuid4(), primary=uuid.uuid4()) for _ in range(2))
    encoder = ListingEncoder()
    encoder.datasets(configuration(1, [kept, purged]))
    listed = json.loads(encoder.datasets(configuration(2, [kept])))
    assert [d["dataset_id"] for d in listed] == [str(kept.dataset_id)]



class CountingStore(ThreadedStore):
    """A threaded store that records every encoding it is asked to compute."""

    def __init__(self, store: ThreadedStore) -> None:
        super().__init__(store.store, synchronous_runner)
        self.computed: list[object] = []

    def compute(self, function: Callable[..., Any], *args: Any) -> Deferred:
        """Record ``function``, then run it."""
        self.computed.append(function)
        return super().compute(function, *args)


@pytest.mark.parametrize("warm", [True, False])
def test_warm_encodes_the_listings_before_the_first_request(warm: bool) -> None:
    """After :meth:`ControlAPI.warm` (as the service does before it listens), the first
    listings after a start are answered from the caches, encoding nothing (without it,
    they encode)."""
    h = Harness()
    h.register()
    for _ in range(3):
        assert h.create(maximum_size=GiB).code == 201
    store = CountingStore(h.api._store)
    h.api = ControlAPI(store, h.clock)  # a restarted service: empty caches
    h.client = StubTreq(h.api.resource())
    if warm:
        assert h.api.warm() == 3
    for path in ("/v1/configuration/datasets", "/v1/shoal/datasets", "/v1/state/datasets"):
        assert h.call("GET", path).code == 200
    assert (store.computed == []) is warm


class ListingCountingStore(CountingStore):
    """A threaded store that also counts the stored listings it reads."""

    def __init__(self, store: ThreadedStore) -> None:
        super().__init__(store)
        self.stored_reads = 0
        inner = self.store
        read = inner.dataset_listing

        def counted() -> tuple[int, bytes]:
            self.stored_reads += 1
            return read()

        inner.dataset_listing = counted  # type: ignore[method-assign]


def test_listing_before_warming_is_the_stored_one_read_once_per_generation() -> None:
    """Before the listing is encoded (a restart, still warming), the v1 listing is the store's
    stored one, the same bytes and tag the encoder answers; read again only after a write."""
    h = Harness()
    h.register()
    for _ in range(3):
        assert h.create(maximum_size=GiB).code == 201
    store = ListingCountingStore(h.api._store)
    h.api = ControlAPI(store, h.clock)
    h.client = StubTreq(h.api.resource())
    first, again = (h.call("GET", "/v1/configuration/datasets") for _ in range(2))
    assert store.stored_reads == 1 and first.body == again.body
    assert h.create(maximum_size=GiB).code == 201
    stored = h.call("GET", "/v1/configuration/datasets")
    assert store.stored_reads == 2 and len(stored.body) == 4
    h.api.warm()
    encoded = h.call("GET", "/v1/configuration/datasets")
    assert store.stored_reads == 2 and encoded.body == stored.body
    tag = "x-configuration-tag"
    assert encoded.header(tag) == stored.header(tag) != first.header(tag)
