"""The SQL store's reads of every row stream in batches and read the same, and a purge reads
only the reports it judges by (issue 16: the service's memory on PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Callable
from uuid import UUID, uuid4

from sqlalchemy import insert

from control import rules
from control.model import Dataset, DatasetState, Node, NodeState, VolumeStatus
from control.store import queries as q
from control.store import rows, tables
from control.store.sql import SQLStore

MORE_THAN_A_BATCH = q.STREAM_ROWS + 345


def _seed(store: SQLStore, node: UUID, count: int, reported: int | None = None) -> list[Dataset]:
    """Store ``count`` datasets of ``node`` and its report of the first ``reported`` (all),
    in one transaction."""
    made = [Dataset(dataset_id=uuid4(), primary=node, metadata={"name": f"{node}-{i}"})
            for i in range(count)]
    with store._write() as (connection, generation, state_version):
        connection.execute(insert(tables.datasets), [rows.dataset_row(d) for d in made])
        states = {d.dataset_id: DatasetState(d.dataset_id, VolumeStatus.MOUNTED, None, "/dev/x",
                                             f"/m/{d.dataset_id}") for d in made[:reported]}
        q.put_report(connection, NodeState(node_uuid=node, era="e", generation=generation,
                                           datasets=states, reported_at=1.0), exists=False)
        q.write_counters(connection, generation + 1, state_version + 1)
    return made


def test_whole_reads_stream_every_row(open_sql: Callable[[], SQLStore]) -> None:
    """The whole configuration, the stored listing and every report read all of more rows
    than one streamed batch, in order."""
    store = open_sql()
    node = store.register_node(Node(uuid=uuid4(), host="h", era="e")).uuid
    made = _seed(store, node, MORE_THAN_A_BATCH)
    with store._read() as connection:
        assert q.all_datasets(connection) == {d.dataset_id: d for d in made}
        listed = json.loads(q.dataset_listing(connection))
        (report,) = q.all_reports(connection)
    assert [item["dataset_id"] for item in listed] == sorted(str(d.dataset_id) for d in made)
    assert set(report.datasets) == {d.dataset_id for d in made}


def test_reports_holding_judge_purges_as_every_report(
    open_sql: Callable[[], SQLStore],
) -> None:
    """The reports read for a purge (the primaries' and those holding a deleted dataset, with
    only those datasets) judge each deleted dataset as every whole report would."""
    store = open_sql()
    a, b, c, d = (store.register_node(Node(uuid=uuid4(), host=h, era="e")).uuid for h in "abcd")
    of_a = _seed(store, a, 3, reported=1)  # a holds the first; b holds the second
    _seed(store, b, 2)
    of_c = _seed(store, c, 1, reported=0)
    with store._write() as (connection, _, _):
        q.put_dataset_states(connection, str(b), [DatasetState(
            of_a[1].dataset_id, VolumeStatus.ATTACHED, None, "/dev/y", None)])
    never = Dataset(dataset_id=uuid4(), primary=d, deleted=True, deleted_generation=0)
    gone = [Dataset(dataset_id=x.dataset_id, primary=x.primary, deleted=True,
                    deleted_generation=0) for x in of_a + of_c] + [never]
    with store._read() as connection:
        every = q.all_reports(connection)
        some = q.reports_holding(connection, [x.dataset_id for x in gone], {a, c, d})
    eras = {a: "e", c: "e", d: "e"}
    judged = [rules.purgeable(x, some, eras) for x in gone]
    assert judged == [rules.purgeable(x, every, eras) for x in gone]
    assert judged == [False, False, True, True, False]
    assert {r.node_uuid: set(r.datasets) for r in some} == {
        a: {of_a[0].dataset_id}, b: {of_a[1].dataset_id}, c: set(),
    }
