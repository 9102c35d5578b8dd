"""The loop's memory between passes: a frozen value and pure updates."""

from __future__ import annotations

from uuid import UUID

import pytest
from attrs.exceptions import FrozenInstanceError

from agent import memory
from agent.changes import CreateVolume, NoOp
from agent.discovery import LocalState
from agent.memory import PassMemory
from control.client.interface import Reported
from control.model import NodeState, Versions

NODE = UUID(int=1)


def test_memory_is_frozen():
    """No field of the memory can be assigned: updates return a new value."""
    with pytest.raises(FrozenInstanceError):
        PassMemory().failures = 3  # type: ignore[misc]


def test_failures_count_up_and_a_success_resets_them():
    """Consecutive failures count and forget the previous pass; a success clears them."""
    m = memory.repeated(PassMemory(), LocalState("i"), NoOp(), 60.0)
    m = memory.failed(memory.failed(m))
    assert (m.failures, m.previous) == (2, None)
    assert memory.succeeded(m, 5.0).failures == 0 and memory.succeeded(m, 5.0).sleep == 5.0


def test_a_pass_acting_exactly_as_the_last_counts_a_repeat():
    """Same observation, same actions: repeats grow; anything else resets them."""
    local, change = LocalState("i"), CreateVolume(UUID(int=9), 64)
    m = memory.repeated(PassMemory(), local, change, 0.0)
    m = memory.repeated(m, local, change, 0.0)
    m = memory.repeated(m, local, change, 0.0)
    assert m.repeats == 2
    assert memory.repeated(m, local, NoOp(), 60.0).repeats == 0


def test_a_report_answer_sets_the_versions_to_watch_from():
    """Our own report's bump is adopted; another node's change in between is not."""
    report = NodeState(NODE)
    mine = memory.reported(PassMemory(state=4), report, 10.0, Reported(True, Versions(7, 5)))
    assert (mine.state, mine.current_generation, mine.last_report_at) == (5, 7, 10.0)
    theirs = memory.reported(PassMemory(state=4), report, 10.0, Reported(True, Versions(7, 6)))
    assert theirs.state == 4
    assert not memory.report_needed(mine, report, 12.0, heartbeat=5.0)
    assert memory.report_needed(mine, report, 15.0, heartbeat=5.0)


def test_heartbeats_are_jittered_shorter_never_longer():
    """The wait for the next heartbeat is drawn between 90% and 100% of it, never longer."""
    report = NodeState(NODE)
    answer = Reported(False, Versions(7, 5))
    for jitter, due in [(0.0, 15.0), (0.5, 14.75), (0.999, 14.5005)]:
        m = memory.reported(PassMemory(), report, 10.0, answer, jitter)
        assert memory.heartbeat_due(m, 5.0) == pytest.approx(due)
        assert not memory.report_needed(m, report, due - 0.01, heartbeat=5.0)
        assert memory.report_needed(m, report, memory.heartbeat_due(m, 5.0), heartbeat=5.0)


def test_a_pass_uses_up_the_current_generation():
    """Starting a pass counts it and hands over the generation the watch reported, once."""
    m = memory.woken(PassMemory(), Versions(3, 8))
    current, m = memory.started_pass(m)
    assert (current, m.current_generation, m.passes, m.state) == (3, None, 1, 8)


def test_changes_calculated_from_the_same_inputs_are_reused():
    """The last pass's changes come back for an equal configuration (its records reused),
    view and observation; any difference in one of them asks for a new calculation."""
    from agent.policy import ClusterView
    from control.client.interface import NodeConfiguration
    from control.model import Dataset

    record = Dataset(dataset_id=UUID(int=9), primary=NODE)
    configuration = NodeConfiguration(generation=3, datasets=[record], leases=[])
    view, local, change = ClusterView(NODE), LocalState("i"), CreateVolume(UUID(int=9), 64)
    m = memory.calculated(PassMemory(), configuration, view, local, change)
    reused = configuration._replace(datasets=[record])
    assert memory.calculated_before(m, reused, ClusterView(NODE), LocalState("i")) is change
    moved = configuration._replace(datasets=[Dataset(dataset_id=UUID(int=9), primary=UUID(int=2))])
    assert memory.calculated_before(m, moved, view, local) is None
    assert memory.calculated_before(m, configuration._replace(generation=4), view, local) is None
    leased = ClusterView(NODE, leased_here=frozenset({UUID(int=9)}))
    assert memory.calculated_before(m, configuration, leased, local) is None
    assert memory.calculated_before(m, configuration, view, LocalState("j")) is None
    assert memory.calculated_before(PassMemory(), configuration, view, local) is None
