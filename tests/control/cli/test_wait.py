"""What ``--wait`` still waits for, given the actual state (pure)."""

from __future__ import annotations

from uuid import UUID

import pytest

from control.cli.wait import gone, mounted_on
from control.client.interface import StateDataset

D = UUID("11111111-0000-4000-8000-000000000001")
N1 = UUID("aaaaaaaa-0000-4000-8000-000000000001")
N2 = UUID("bbbbbbbb-0000-4000-8000-000000000002")
NAMES = {N1: "one", N2: "two"}


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([], f"dataset {D} to appear (no node reports it yet)"),
        ([StateDataset(D)], f"dataset {D} to be attached to two (it is not attached anywhere)"),
        ([StateDataset(D, N1, "/m")], f"dataset {D} to move to two (it is still on one)"),
        ([StateDataset(D, N2)], f"dataset {D} to be mounted on two (it is attached there)"),
        ([StateDataset(D, N2, "/m")], None),
    ],
)
def test_mounted_on(states: list[StateDataset], expected: str | None) -> None:
    """Each step towards being mounted on the node is described, and the goal is None."""
    assert mounted_on(D, N2, NAMES)(states) == expected


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([StateDataset(D, N1, "/m")], f"dataset {D} to be destroyed (it is still on one)"),
        ([StateDataset(D)], f"dataset {D} to be destroyed (its volume still exists)"),
        ([StateDataset(UUID(int=1))], None),
    ],
)
def test_gone(states: list[StateDataset], expected: str | None) -> None:
    """A dataset is gone once no node reports it."""
    assert gone(D, NAMES)(states) == expected
