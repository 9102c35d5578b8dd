"""Unit tests of the pure placement core: labels, terms, :func:`place` and :func:`check_node`."""

from __future__ import annotations

import random
from uuid import UUID

import pytest
from pyrsistent import pmap

from control.errors import InvalidRequest
from control.model import Capacity, ClusterState, Fence, Node, NodeState
from control.placement import (
    Candidate,
    Need,
    Placement,
    Refusal,
    Rule,
    candidates,
    check_node,
    place,
)
from control.topology import (
    HOSTNAME,
    ZONE,
    AccessMode,
    Requirement,
    TopologyTerm,
    node_labels,
    parse_term,
    terms_from_json,
    terms_to_json,
)

GiB = 1024**3
A, B, C = (UUID(int=i) for i in (1, 2, 3))


def pool(free: int = 10 * GiB, backend: str = "loopback", shared: bool = True) -> Capacity:
    """A backend with ``free`` bytes free, any of it usable by one volume."""
    return Capacity(backend, total=20 * GiB, free=free, maximum_volume_size=free, shared=shared)


def node(uuid: UUID, zone: str, *capacities: Capacity, unusable: str | None = None) -> Candidate:
    """A candidate named after its uuid in ``zone``."""
    name = f"n{uuid.int}"
    labels = pmap({ZONE: zone, HOSTNAME: name})
    return Candidate(uuid, name, labels, capacities or (pool(),), unusable)


def zone(*values: str) -> TopologyTerm:
    """The term ``zone in values``."""
    return TopologyTerm((Requirement(ZONE, values),))


def test_hostname_defaults_to_the_node_name() -> None:
    """A node's ``kubernetes.io/hostname`` label is its name unless the agent set one."""
    assert node_labels(Node(A, "h1", labels={"name": "node1"}))[HOSTNAME] == "node1"
    assert node_labels(Node(A, "h1"))[HOSTNAME] == "h1"
    assert node_labels(Node(A, "h1", labels={HOSTNAME: "x"}))[HOSTNAME] == "x"


def test_most_free_capacity_wins_then_smallest_uuid() -> None:
    """Placement spreads by free capacity; a tie goes to the smallest uuid."""
    nodes = [node(A, "a", pool(5 * GiB)), node(B, "a", pool(8 * GiB)), node(C, "a", pool(8 * GiB))]
    assert place(Need(), nodes) == Placement(B, "loopback")
    random.Random(1).shuffle(nodes)
    assert place(Need(), nodes) == Placement(B, "loopback")


def test_reserved_bytes_spread_placements_between_reports() -> None:
    """Bytes promised since a node's report count against its free space."""
    nodes = [node(A, "a", pool(8 * GiB)), node(B, "a", pool(6 * GiB))]
    assert place(Need(), nodes, {A: 3 * GiB}) == Placement(B, "loopback")


def test_topology_limits_the_choice() -> None:
    """Only a node matching one allowed term is chosen, however much room the others have."""
    nodes = [node(A, "a", pool(1 * GiB)), node(B, "b", pool(9 * GiB))]
    assert place(Need(topology=(zone("a"),)), nodes) == Placement(A, "loopback")
    assert place(Need(topology=(zone("c"), zone("a"))), nodes) == Placement(A, "loopback")


def test_a_refusal_names_the_unmet_topology_term() -> None:
    """With no node in the allowed topology, the refusal names the term and each node's label."""
    refusal = place(Need(topology=(zone("c"),)), [node(A, "a"), node(B, "b")])
    assert isinstance(refusal, Refusal)
    assert refusal.rule is Rule.TOPOLOGY
    assert f"[{ZONE}=c]" in refusal.message
    assert f"it has {ZONE}=a" in refusal.message and "n2" in refusal.message


def test_unusable_nodes_are_skipped_and_named() -> None:
    """A fenced, draining or silent node is never chosen; if all are, the refusal says so."""
    nodes = [node(A, "a", pool(9 * GiB), unusable="it is fenced"), node(B, "a", pool(1 * GiB))]
    assert place(Need(), nodes) == Placement(B, "loopback")
    refusal = place(Need(), nodes[:1])
    assert isinstance(refusal, Refusal) and refusal.rule is Rule.USABLE
    assert "n1: it is fenced" in refusal.message


def test_backend_and_capacity_rules() -> None:
    """The class's backend must be reported, and the size must fit its largest volume."""
    nodes = [node(A, "a", pool(2 * GiB)), node(B, "a", pool(4 * GiB, "local", shared=False))]
    assert place(Need(backend="local"), nodes) == Placement(B, "local")
    refusal = place(Need(backend="ceph"), nodes)
    assert isinstance(refusal, Refusal) and refusal.rule is Rule.BACKEND
    assert "no ceph backend" in refusal.message
    refusal = place(Need(size=3 * GiB, backend="loopback"), nodes)
    assert isinstance(refusal, Refusal) and refusal.rule is Rule.CAPACITY
    assert "3 GiB does not fit" in refusal.message


def test_a_node_with_two_backends_offers_a_shared_one_first_then_the_roomiest() -> None:
    """Without a backend named, a shared backend is used before a node-local one (so the
    dataset can move), the roomiest among equals; a node-local one only when it alone fits."""
    both = node(A, "a", pool(2 * GiB), pool(6 * GiB, "local", shared=False))
    assert place(Need(), [both]) == Placement(A, "loopback")
    assert place(Need(size=3 * GiB), [both]) == Placement(A, "local")
    two = node(A, "a", pool(2 * GiB), pool(6 * GiB, "other"))
    assert place(Need(), [two]) == Placement(A, "other")


def test_read_write_many_is_refused() -> None:
    """RWX is refused with a message that says why and what to use."""
    refusal = place(Need(access_mode=AccessMode.RWX), [node(A, "a")])
    assert isinstance(refusal, Refusal) and refusal.rule is Rule.ACCESS_MODE
    assert "ReadOnlyMany" in refusal.message


def test_no_node_at_all() -> None:
    """With no node registered the refusal says to start an agent."""
    refusal = place(Need(), [])
    assert isinstance(refusal, Refusal) and "start an agent" in refusal.message


def test_check_node_names_the_term_a_given_node_fails() -> None:
    """Binding on a given node is refused naming the term it fails; an allowed node passes."""
    need = Need(topology=(zone("a"),))
    assert check_node(need, node(A, "a")) is None
    refusal = check_node(need, node(B, "b"))
    assert refusal is not None and refusal.rule is Rule.TOPOLOGY
    assert refusal.message.startswith("Node n2 cannot take the dataset")
    assert f"{ZONE}=a" in refusal.message


def test_candidates_from_the_cluster_state() -> None:
    """Registered nodes become candidates with their reported capacity and why not usable."""
    fenced = Node(B, "h2", labels={"name": "n2"}, last_seen=100.0, fence=Fence(1.0, "by hand"))
    state = ClusterState(
        nodes={A: Node(A, "h1", last_seen=100.0), B: fenced, C: Node(C, "h3", last_seen=1.0)},
        reports={A: NodeState(A, capacity=pool())},
    )
    found = {c.uuid: c for c in candidates(state, now=101.0, node_timeout=30.0)}
    assert found[A].unusable is None and found[A].capacities == (pool(),)
    assert found[B].unusable == "it is fenced (by hand)"
    assert found[C].unusable is not None and "not live" in found[C].unusable


def test_terms_round_trip_and_parse() -> None:
    """Topology terms go to JSON and back, and parse from the CLI's ``k=v|w,k2=x`` form."""
    terms = (TopologyTerm((Requirement(ZONE, ("b", "a")), Requirement("disk", ("ssd",)))),)
    assert terms_from_json(terms_to_json(terms)) == terms
    assert parse_term(f"{ZONE}=a|b,disk=ssd") == terms[0]


@pytest.mark.parametrize(
    "bad",
    [
        "nokey",
        [{}],
        [{"bad key!": ["a"]}],
        [{ZONE: []}],
        [{ZONE: ["not ok!"]}],
        [{ZONE: [1]}],
    ],
)
def test_malformed_terms_are_refused(bad: object) -> None:
    """Malformed allowed topologies are refused with a 400 that says what is expected."""
    with pytest.raises(InvalidRequest):
        terms_from_json(bad)


def test_a_node_that_has_not_reported_fits_any_backend_but_ranks_last() -> None:
    """A node with no capacity report can take a dataset of any backend, after reported ones."""
    silent = Candidate(C, "n3", pmap({ZONE: "a"}), ())
    assert place(Need(), [silent]) == Placement(C, "")
    assert place(Need(), [silent, node(A, "a", pool(1 * GiB))]) == Placement(A, "loopback")
    refusal = place(Need(backend="loopback"), [silent])
    assert isinstance(refusal, Refusal) and "none reported" in refusal.message
