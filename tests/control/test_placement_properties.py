"""
Property tests of :func:`control.placement.place` against a brute-force oracle.

For any nodes (labels from a small alphabet, a few backends each, random
capacity, some unusable) and any need, a placement is a node that satisfies
every rule and has the most free room among those that do (ties: the
smallest uuid), and a refusal happens only when no node satisfies them all.
The decision does not depend on the order of the candidates.
"""

from __future__ import annotations

import random
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st
from pyrsistent import pmap

from control.model import Capacity
from control.placement import Candidate, Need, Placement, Refusal, check_node, place
from control.topology import ZONE, AccessMode, Requirement, TopologyTerm

GiB = 1024**3
BACKENDS = ("loopback", "local", "ceph")
KEYS = (ZONE, "disk")
VALUES = ("a", "b", "c")

capacities = st.builds(
    Capacity,
    backend=st.sampled_from(BACKENDS),
    total=st.just(16 * GiB),
    free=st.one_of(st.none(), st.integers(0, 16).map(lambda n: n * GiB)),
    maximum_volume_size=st.one_of(st.none(), st.integers(0, 16).map(lambda n: n * GiB)),
    shared=st.booleans(),
)


@st.composite
def nodes(draw: st.DrawFn) -> list[Candidate]:
    """Up to eight candidates with distinct uuids."""
    uuids = draw(st.lists(st.integers(1, 50), unique=True, max_size=8))
    found = []
    for n in uuids:
        labels = draw(st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES)))
        backends = draw(st.lists(capacities, max_size=2, unique_by=lambda c: c.backend))
        unusable = draw(st.sampled_from([None, None, None, "it is fenced"]))
        found.append(Candidate(UUID(int=n), f"n{n}", pmap(labels), backends, unusable))
    return found


terms = st.builds(
    lambda reqs: TopologyTerm(tuple(Requirement(k, v) for k, v in reqs.items())),
    st.dictionaries(
        st.sampled_from(KEYS), st.lists(st.sampled_from(VALUES), min_size=1), min_size=1
    ),
)

needs = st.builds(
    Need,
    backend=st.one_of(st.none(), st.sampled_from(BACKENDS)),
    size=st.one_of(st.none(), st.integers(1, 12).map(lambda n: n * GiB)),
    topology=st.lists(terms, max_size=2).map(tuple),
    access_mode=st.sampled_from([AccessMode.RWO, AccessMode.RWOP, AccessMode.ROX]),
)


def fitting(need: Need, candidate: Candidate) -> list[Capacity]:
    """The oracle: the candidate's backends that satisfy every rule (none if it breaks one)."""
    if candidate.unusable is not None:
        return []
    if need.topology and not any(
        all(candidate.labels.get(r.key) in r.values for r in t.requirements) for t in need.topology
    ):
        return []
    if not candidate.capacities and need.backend is None:
        return [Capacity("")]  # not reported yet: fits anything
    found = []
    for c in candidate.capacities:
        if need.backend is not None and c.backend != need.backend:
            continue
        if need.size is not None and (
            (c.maximum_volume_size is not None and need.size > c.maximum_volume_size)
            or (c.free is not None and need.size > c.free)
        ):
            continue
        found.append(c)
    return found


def free(c: Capacity) -> int:
    """Free bytes, an unknown amount ranking below any known one."""
    return -1 if c.free is None else c.free


@settings(deadline=None)
@given(needs, nodes())
def test_placement_never_breaks_a_rule_and_always_finds_one(
    need: Need, candidates: list[Candidate]
) -> None:
    """A placement satisfies every rule and is the roomiest (on a shared backend when any
    shared one fits); a refusal means none could."""
    decision = place(need, candidates)
    options = [(c, f) for c in candidates for f in fitting(need, c)]
    if not options:
        assert isinstance(decision, Refusal)
        assert decision.reasons or not candidates
        return
    assert isinstance(decision, Placement)
    chosen = next(c for c in candidates if c.uuid == decision.node)
    backends = fitting(need, chosen)
    assert decision.backend in {c.backend for c in backends}

    def rank(f: Capacity) -> tuple[bool, int]:
        return (not f.shared, -free(f))

    best = min(rank(f) for _, f in options)
    assert min(rank(f) for f in backends) == best
    assert decision.node == min(c.uuid for c, f in options if rank(f) == best)
    assert decision.backend == min((rank(f), f.backend) for f in backends)[1]


@settings(deadline=None)
@given(needs, nodes(), st.randoms())
def test_placement_is_independent_of_candidate_order(
    need: Need, candidates: list[Candidate], rnd: random.Random
) -> None:
    """The same candidates in any order give the same decision."""
    shuffled = list(candidates)
    rnd.shuffle(shuffled)
    assert place(need, shuffled) == place(need, candidates)


@settings(deadline=None)
@given(needs, nodes())
def test_check_node_agrees_with_the_oracle(need: Need, candidates: list[Candidate]) -> None:
    """A given node is refused exactly when it breaks a rule."""
    for c in candidates:
        assert (check_node(need, c) is None) == bool(fitting(need, c))
