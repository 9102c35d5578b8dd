"""Turning what a person types into a node or a dataset."""

from __future__ import annotations

from uuid import UUID

import pytest

from control.cli.resolve import resolve_dataset, resolve_node
from control.client.interface import NodeInfo
from control.errors import InvalidRequest, NotFound
from control.model import Dataset, Node

A = UUID("aaaaaaaa-0000-4000-8000-000000000001")
A2 = UUID("aaaaaaaa-1111-4000-8000-000000000002")
B = UUID("bbbbbbbb-0000-4000-8000-000000000003")
NODES = [
    NodeInfo(Node(A, "alpha", labels={"name": "one"}), True),
    NodeInfo(Node(A2, "beta"), True),
    NodeInfo(Node(B, "gamma", labels={"name": "beta"}), False),
]


@pytest.mark.parametrize(
    ("text", "node"),
    [(str(A), A), (str(A).upper(), A), ("alpha", A), ("one", A), ("aaaaaaaa-1", A2),
     ("bb", B), ("gamma", B)],
)
def test_resolve_node(text: str, node: UUID) -> None:
    """A node is named by uuid, host, name label or unique uuid prefix."""
    assert resolve_node(text, NODES) == node


def test_resolve_node_ambiguous() -> None:
    """A host matching one node and a label matching another is ambiguous."""
    with pytest.raises(InvalidRequest, match="'beta' is ambiguous"):
        resolve_node("beta", NODES)
    with pytest.raises(InvalidRequest, match="ambiguous"):
        resolve_node("aaaa", NODES)


def test_resolve_node_unknown() -> None:
    """An unknown node lists the registered ones."""
    with pytest.raises(NotFound, match="the registered nodes are: beta, beta, one"):
        resolve_node("delta", NODES)
    with pytest.raises(NotFound):
        resolve_node("", NODES)


def test_resolve_dataset() -> None:
    """A dataset is named by id, prefix or the name of a live dataset."""
    live = Dataset(A, B, metadata={"name": "db"})
    dead = Dataset(A2, B, metadata={"name": "db"}, deleted=True)
    datasets = [live, dead]
    assert resolve_dataset("db", datasets) == live
    assert resolve_dataset(str(A2), datasets) == dead
    assert resolve_dataset("aaaaaaaa-1", datasets) == dead
    with pytest.raises(InvalidRequest):
        resolve_dataset("aaaaaaaa", datasets)
    with pytest.raises(NotFound):
        resolve_dataset("web", datasets)
