"""Listings patched write by write from the SQL store's change log equal listings encoded afresh."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from control.api.listing import ListingEncoder, StateListingEncoder
from control.failover import visible_state
from control.model import ClusterState, Configuration, Fence
from control.store.sql import SQLStore
from control.wire import dataset_to_json, node_dataset_to_json, state_datasets_to_json
from tests.control.store.conformance import NOW, add_dataset, add_node, change_steps, report


def every_page(encoder: ListingEncoder, configuration: Configuration, limit: int) -> list[object]:
    """Every dataset, read page by page."""
    found: list[object] = []
    after = None
    while True:
        _, body, after = encoder.page(configuration, after, limit)
        found += json.loads(body)
        if after is None:
            return found


@pytest.mark.parametrize("to_json", [dataset_to_json, node_dataset_to_json])
def test_patched_listing_equals_a_fresh_one(
    open_sql: Callable[[], SQLStore], to_json: Callable[..., object]
) -> None:
    """After each write (create, move, lease, delete, purge...) the patched listing, and its
    pages, equal a listing encoded afresh from the configuration."""
    store = open_sql()
    patched = ListingEncoder(to_json)
    first = store.configuration(NOW)
    patched.listing(first)
    for step in change_steps(store):
        step()
        configuration = store.configuration(NOW)
        at, parts = patched.listing(configuration)
        body = b"".join(parts)
        fresh = ListingEncoder(to_json).datasets(configuration)
        assert (at.generation, body) == (configuration.generation, fresh)
        assert every_page(patched, configuration, 2) == json.loads(fresh)
    assert store.configuration(NOW).changes.since(first.generation) is not None


def test_a_later_listing_answers_an_earlier_configuration(open_sql: Callable[[], SQLStore]) -> None:
    """Asked for an older configuration than the one it holds, the encoder answers the newer
    one (with that configuration, for its tag) rather than encode everything again."""
    store = open_sql()
    steps = change_steps(store)
    older = store.configuration(NOW)
    steps[0]()
    newer = store.configuration(NOW)
    encoder = ListingEncoder()
    encoder.listing(newer)
    at, parts = encoder.listing(older)
    body = b"".join(parts)
    assert (at.generation, body) == (newer.generation, ListingEncoder().datasets(newer))


def plain_state_listing(state: ClusterState, configuration: Configuration) -> list[object]:
    """``/v1/state/datasets`` encoded afresh, as before any cache."""
    primaries = {d.dataset_id: d.primary for d in configuration.datasets.values()}
    return state_datasets_to_json(visible_state(state, configuration), None, primaries)


def test_patched_state_listing_equals_a_fresh_one(open_sql: Callable[[], SQLStore]) -> None:
    """After each report, fence, move, delete and purge the patched state listing equals the
    state listing encoded afresh."""
    store = open_sql()
    a, b = add_node(store), add_node(store, "b")
    one, two, three = (add_dataset(store, a).dataset_id for _ in range(3))
    fence = Fence(at=NOW, reason="test")

    def generation() -> int:
        return store.versions().configuration

    steps = [
        lambda: store.report_state(report(a, generation(), one, two)),
        lambda: store.report_state(report(b, generation(), two)),
        lambda: store.report_state(report(b, generation(), two, three)),
        lambda: store.fence_node(b, fence),
        lambda: store.move_dataset(three, b, None, NOW),
        lambda: store.fence_node(a, fence),
        lambda: store.unfence_node(b, NOW, actor="t", reason="test"),
        lambda: store.report_state(report(a, generation(), one)),
        lambda: store.delete_dataset(two, None, NOW),
        lambda: store.report_state(report(b, generation(), three)),
        lambda: store.report_state(report(a, generation())),
    ]
    patched = StateListingEncoder()
    patched.datasets(store.cluster_state(), store.configuration(NOW))
    for step in steps:
        step()
        state, configuration = store.cluster_state(), store.configuration(NOW)
        body = patched.datasets(state, configuration)
        assert json.loads(body) == plain_state_listing(state, configuration)
    assert [entry["dataset_id"] for entry in json.loads(body)] == [str(three)]
