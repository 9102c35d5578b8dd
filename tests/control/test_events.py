"""The events a write or a report makes: pure functions, one equality assertion each."""

from __future__ import annotations

from uuid import UUID

from control.events import EventQuery, dataset_moved, report_events
from control.model import (
    Condition,
    ConditionKind,
    Dataset,
    DatasetState,
    Event,
    NodeState,
    VolumeStatus,
)

NODE = UUID(int=1)
OTHER = UUID(int=2)
D = UUID(int=10)


def _report(status: VolumeStatus | None, *conditions: Condition) -> NodeState:
    datasets = {} if status is None else {D: DatasetState(D, status)}
    return NodeState(NODE, datasets=datasets, conditions=conditions)


def _kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


def test_volume_status_changes_become_events_in_order():
    """Appearing mounted is attached then mounted; vanishing is unmounted then detached."""
    assert _kinds(report_events(None, _report(VolumeStatus.MOUNTED), 5.0)) == [
        "attached", "mounted"]
    assert _kinds(report_events(_report(VolumeStatus.MOUNTED), _report(None), 5.0)) == [
        "unmounted", "detached"]
    assert _kinds(report_events(_report(VolumeStatus.ATTACHED), _report(VolumeStatus.PRESENT),
                                5.0)) == ["detached"]
    assert report_events(_report(VolumeStatus.PRESENT), _report(None), 5.0) == []


def test_an_error_condition_is_an_event_once():
    """A new error is an event with its reason; the same error with more attempts is not news."""
    first = Condition(D, ConditionKind.ERROR, "busy", "unmount failed: busy", 1.0, "unmount")
    again = Condition(D, ConditionKind.ERROR, "busy", "unmount failed: busy", 1.0, "unmount", 4)
    waiting = Condition(D, ConditionKind.WAITING, "waiting_for_node", "waiting", 1.0)
    (event,) = report_events(_report(None), _report(None, first, waiting), 7.0)
    assert (event.kind, event.at, event.node_uuid, event.message) == (
        "error", 7.0, NODE, "unmount failed: busy")
    assert dict(event.details)["reason"] == "busy"
    assert report_events(_report(None, first), _report(None, again), 8.0) == []


def test_a_move_to_the_same_primary_is_no_event():
    """Moving a dataset where it already is records nothing; a real move names both nodes."""
    before = Dataset(D, NODE)
    assert dataset_moved(before, before, 1.0, "alice") is None
    moved = dataset_moved(before, Dataset(D, OTHER), 1.0, "alice")
    assert moved is not None and dict(moved.details) == {"from": str(NODE), "to": str(OTHER)}


def test_queries_match_dataset_and_node():
    """A query matches by dataset and node when given, anything otherwise."""
    event = Event("e", 1.0, "m", D, NODE)
    assert EventQuery().matches(event)
    assert EventQuery(dataset_id=D, node_uuid=NODE).matches(event)
    assert not EventQuery(node_uuid=OTHER).matches(event)
