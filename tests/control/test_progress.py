"""How far a dataset is from being mounted: the one answer the CLI and the plugin word."""

from __future__ import annotations

from uuid import UUID

import pytest

from control.client.interface import StateDataset
from control.progress import Progress, Stage, progress_towards

D, HERE, THERE = UUID(int=1), UUID(int=2), UUID(int=3)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (None, Progress(Stage.UNREPORTED)),
        (StateDataset(D), Progress(Stage.DETACHED)),
        (StateDataset(D, THERE, "/m/d"), Progress(Stage.ELSEWHERE, THERE)),
        (StateDataset(D, HERE), Progress(Stage.ATTACHED, HERE)),
        (StateDataset(D, HERE, "/m/d"), Progress(Stage.MOUNTED, HERE, "/m/d")),
    ],
)
def test_progress_towards(state: StateDataset | None, expected: Progress) -> None:
    """Each reported state maps to one stage, with the holder and path where they exist."""
    assert progress_towards(state, HERE) == expected
