"""When the loop may reuse the node configuration in hand instead of fetching it again."""

from __future__ import annotations

from uuid import uuid4

from agent.pacing import reusable_configuration
from control.client.interface import NodeConfiguration
from control.model import Dataset, DataSource, SourceKind

ME, OTHER = uuid4(), uuid4()
MINE = Dataset(dataset_id=uuid4(), primary=ME)
ATTACHED_HERE = Dataset(dataset_id=uuid4(), primary=OTHER)
CONFIGURATION = NodeConfiguration(7, [MINE, ATTACHED_HERE], [])
FETCHED = (frozenset({ATTACHED_HERE.dataset_id}), CONFIGURATION)


def test_nothing_fetched_yet() -> None:
    """With nothing in hand the configuration must be fetched."""
    assert reusable_configuration(None, 7, frozenset(), ME) is None


def test_generation_moved() -> None:
    """A newer current generation means the records in hand are stale."""
    assert reusable_configuration(FETCHED, 8, frozenset(), ME) is None


def test_unknown_generation() -> None:
    """Without a generation from the last answer, nothing is reused."""
    assert reusable_configuration(FETCHED, None, frozenset(), ME) is None


def test_new_dataset_to_ask_about() -> None:
    """A dataset neither asked about nor received before forces a fetch."""
    assert reusable_configuration(FETCHED, 7, frozenset({uuid4()}), ME) is None


def test_reused_minus_what_is_no_longer_asked_about() -> None:
    """At the same generation the records are reused, dropping datasets no longer asked about."""
    assert reusable_configuration(FETCHED, 7, frozenset(), ME) == NodeConfiguration(7, [MINE], [])
    assert reusable_configuration(FETCHED, 7, frozenset({ATTACHED_HERE.dataset_id}), ME) == (
        CONFIGURATION
    )


def test_reused_keeps_clones_to_make() -> None:
    """A clone sent to the node of its source (to make it) is kept when records are reused."""
    clone = Dataset(uuid4(), OTHER, source=DataSource(SourceKind.DATASET, MINE.dataset_id))
    fetched = (frozenset(), NodeConfiguration(7, [MINE, clone], []))
    assert reusable_configuration(fetched, 7, frozenset(), ME) == fetched[1]


def test_reused_whole_is_the_very_same_configuration() -> None:
    """Records reused with nothing dropped are the configuration in hand itself (so that
    what a pass derives from it alone is derived once, agent.lastcall); with a record
    dropped, a new one."""
    asked = frozenset({ATTACHED_HERE.dataset_id})
    assert reusable_configuration(FETCHED, 7, asked, ME) is CONFIGURATION
    assert reusable_configuration(FETCHED, 7, frozenset(), ME) is not CONFIGURATION
