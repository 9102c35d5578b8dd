"""One node's datasets kept between generations (:mod:`control.store.node_views`)."""

from __future__ import annotations

from uuid import UUID

from attrs import evolve
from pyrsistent import pmap

from control.model import Dataset, Fence, Node
from control.store.node_views import NodeViews
from control.store.snapshot import Snapshot

NODE_A = UUID("aaaaaaaa-0000-4000-8000-000000000001")
NODE_B = UUID("bbbbbbbb-0000-4000-8000-000000000002")
IDS = [UUID(int=0x10 + i) for i in range(6)]


def _snapshot() -> Snapshot:
    datasets = [
        Dataset(dataset_id=i, primary=NODE_A if n % 2 else NODE_B) for n, i in enumerate(IDS)
    ]
    return Snapshot(1, pmap({d.dataset_id: d for d in datasets}), pmap())


def _ids(datasets: list[Dataset]) -> list[UUID]:
    return [d.dataset_id for d in datasets]


def test_same_list_while_none_of_the_nodes_datasets_change() -> None:
    """A write to another node's dataset keeps the node's list (the same object)."""
    views, snapshot = NodeViews(), _snapshot()
    first = views.datasets(snapshot, NODE_A, frozenset())
    assert _ids(first) == [IDS[1], IDS[3], IDS[5]]
    later = snapshot.with_dataset(evolve(snapshot.datasets[IDS[0]], metadata={"x": "y"}))
    assert views.datasets(later, NODE_A, frozenset()) is first
    assert views.datasets(later.touched(), NODE_A, frozenset()) is first


def test_a_change_that_concerns_the_node_finds_again() -> None:
    """Its own dataset changed, one moved onto it or off it, or one asked about: found again."""
    views, snapshot = NodeViews(), _snapshot()
    first = views.datasets(snapshot, NODE_A, frozenset())
    resized = snapshot.with_dataset(evolve(snapshot.datasets[IDS[1]], maximum_size=2**30))
    assert views.datasets(resized, NODE_A, frozenset()) == sorted(
        [resized.datasets[i] for i in (IDS[1], IDS[3], IDS[5])], key=lambda d: d.dataset_id)
    assert views.datasets(resized, NODE_A, frozenset()) is not first
    onto = resized.with_dataset(evolve(resized.datasets[IDS[0]], primary=NODE_A))
    assert _ids(views.datasets(onto, NODE_A, frozenset())) == [IDS[0], IDS[1], IDS[3], IDS[5]]
    off = onto.with_dataset(evolve(onto.datasets[IDS[3]], primary=NODE_B))
    assert _ids(views.datasets(off, NODE_A, frozenset())) == [IDS[0], IDS[1], IDS[5]]
    new = UUID(int=0x99)
    assert views.datasets(off, NODE_B, frozenset({new})) == views.datasets(off, NODE_B, frozenset())
    made = off.with_dataset(Dataset(dataset_id=new, primary=NODE_A))
    assert new in _ids(views.datasets(made, NODE_B, frozenset({new})))


def test_a_snapshot_read_whole_or_older_finds_again() -> None:
    """A snapshot whose change log does not reach back (read whole), or an older one: found
    again."""
    views, snapshot = NodeViews(), _snapshot()
    later = snapshot.with_dataset(evolve(snapshot.datasets[IDS[1]], maximum_size=2**30))
    views.datasets(snapshot, NODE_A, frozenset())
    reread = Snapshot(later.generation, later.datasets, later.leases)
    assert views.datasets(reread, NODE_A, frozenset())[0].maximum_size == 2**30
    assert views.datasets(snapshot, NODE_A, frozenset())[0].maximum_size != 2**30


def test_fenced_kept_while_the_nodes_are_the_same() -> None:
    """The fenced nodes are found again only for other nodes than last asked about."""
    views = NodeViews()
    nodes = pmap({NODE_A: Node(uuid=NODE_A, host="10.0.0.1"),
                  NODE_B: Node(uuid=NODE_B, host="10.0.0.2")})
    assert views.fenced(nodes) == frozenset()
    fenced = nodes.set(NODE_B, evolve(nodes[NODE_B], fence=Fence(reason="test", at=1.0)))
    assert views.fenced(fenced) == frozenset({NODE_B})
    assert views.fenced(nodes) == frozenset()
