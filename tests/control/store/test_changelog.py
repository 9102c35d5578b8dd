"""The configuration change log: which datasets each generation changed, or not known."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

from control.model import Configuration, Dataset, DatasetSnapshot, Lease, Node, NodeState
from control.store.changelog import ChangeLog
from control.store.sql import SQLStore

NOW = 1_000.0
A, B = UUID(int=1), UUID(int=2)


def test_between_unions_every_generation_in_the_range() -> None:
    """Generations 2 and 3 changed A and B; from 1 to 3 both, from 3 to 3 none."""
    log = ChangeLog()
    log.record(2, [A])
    log.record(3, [B])
    assert log.between(1, 3) == {A, B}
    assert log.between(2, 3) == {B}
    assert log.between(3, 3) == frozenset()


def test_a_missing_or_forgotten_generation_is_not_known() -> None:
    """A gap, a range going backwards or a generation beyond the limit answers None."""
    log = ChangeLog(limit=2)
    log.record(2, [A])
    log.record(4, [B])
    assert log.between(1, 4) is None
    assert log.between(4, 3) is None
    log.record(5, [])
    assert log.between(1, 2) is None  # forgotten: only 4 and 5 are kept
    assert log.between(3, 5) == {B}


def differing(before: Configuration, after: Configuration) -> set[UUID]:
    """The ids whose dataset differs between two configurations."""
    keys = set(before.datasets) | set(after.datasets)
    return {k for k in keys if before.datasets.get(k) != after.datasets.get(k)}


def test_sql_store_names_every_dataset_its_writes_changed(
    open_sql: Callable[[], SQLStore],
) -> None:
    """After each kind of write the log names at least what changed, or says it cannot."""
    store = open_sql()
    node = store.register_node(Node(uuid=uuid4(), host="h", era="e")).uuid
    first, second = Dataset(uuid4(), node), Dataset(uuid4(), node)
    snapshot = DatasetSnapshot(uuid4(), "s", first.dataset_id, NOW, node)
    steps: list[Callable[[], object]] = [
        lambda: store.create_dataset(first, None),
        lambda: store.create_dataset(second, None),
        lambda: store.acquire_lease(Lease(first.dataset_id, node, NOW + 1), None, NOW),
        lambda: store.release_lease(first.dataset_id, None, NOW),
        lambda: store.create_snapshot(snapshot, None, now=NOW),
        lambda: store.move_dataset(second.dataset_id, node, None, NOW),
        lambda: store.delete_dataset(second.dataset_id, None, NOW),
        lambda: store.delete_dataset(second.dataset_id, None, NOW),  # no change at all
        lambda: store.report_state(  # lets the deleted dataset be purged
            NodeState(node_uuid=node, era="e", generation=store.versions().configuration)
        ),
    ]
    store.configuration(NOW)
    known = 0
    for step in steps:
        before = store.configuration(NOW)
        step()
        after = store.configuration(NOW)
        changed = store.configuration_changes(before.generation, after.generation)
        if changed is not None:
            known += 1
            assert differing(before, after) <= changed
    assert known == len(steps)
    assert second.dataset_id not in store.configuration(NOW).datasets  # purged


def test_another_stores_write_is_not_known(open_sql: Callable[[], SQLStore]) -> None:
    """A generation another process wrote is a gap: the reader must count from scratch."""
    here, there = open_sql(), open_sql()
    node = here.register_node(Node(uuid=uuid4(), host="h")).uuid
    _, start = here.create_dataset(Dataset(uuid4(), node), None)
    here.configuration(NOW)
    _, foreign = there.create_dataset(Dataset(uuid4(), node), None)
    here.configuration(NOW)
    _, mine = here.create_dataset(Dataset(uuid4(), node), None)
    assert here.configuration_changes(start, foreign) is None
    assert here.configuration_changes(start, mine) is None
    assert here.configuration_changes(foreign, mine) is not None
