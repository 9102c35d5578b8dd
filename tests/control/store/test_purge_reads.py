"""What the purge of deleted datasets reads: the reports of the nodes asked about and of the
nodes holding the datasets asked about, with only those datasets
(:func:`control.store.queries.reports_holding`), not every dataset's state of every node."""

from __future__ import annotations

from collections.abc import Callable
from uuid import uuid4

from attrs import evolve

from control.store import queries as q
from control.store.sql import SQLStore
from tests.control.store.conformance import add_dataset, add_node, report


def test_reports_holding_are_the_reports_restricted_to_the_datasets_asked_about(
    open_sql: Callable[[], SQLStore],
) -> None:
    """Three nodes' reports (one empty and named, one node without a report), asked about some
    of their datasets, one held by two nodes and one by none (and more than a statement's
    batch): each report read whole, restricted to those datasets."""
    store = open_sql()
    a, b, c, d = (add_node(store, f"10.0.0.{n}") for n in range(1, 5))
    on_a = [add_dataset(store, a).dataset_id for _ in range(4)]
    on_b = [add_dataset(store, b).dataset_id for _ in range(3)]
    generation = store.versions().configuration
    store.report_state(report(a, generation, *on_a))
    store.report_state(report(b, generation, *on_b, on_a[0]))
    store.report_state(report(c, generation))
    asked = {on_a[0], on_a[2], on_b[1], uuid4(), *(uuid4() for _ in range(q._HOLDING_BATCH))}
    with store._read() as connection:
        whole = {r.node_uuid: r for r in q.all_reports(connection)}
        holding = {r.node_uuid: r for r in q.reports_holding(connection, asked, {c})}
    assert set(holding) == set(whole) == {a, b, c}
    assert d not in holding
    for node, full in whole.items():
        only = {i: s for i, s in full.datasets.items() if i in asked}
        assert holding[node] == evolve(full, datasets=only)
    assert set(holding[b].datasets) == {on_a[0], on_b[1]}
