"""A fenced agent rejoins: it registers again, learns its unfence, and never backs off for
longer than a heartbeat (docs/failover.md)."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from tests.agent.test_loop import World
from tests.agent.test_loop_fencing import advance, partitioned_node


def test_fenced_agent_registers_again_then_reports() -> None:
    """Told it is fenced, the running agent registers once more (the fence records its rejoin)
    and reports after; it does not keep registering."""
    world = World()
    node, other = world.node(0), world.node(1)
    advance(world, 1.0)
    fenced: list[Any] = []
    with capture_logs() as logs:
        world.control.client.fence_node(node.uuid, "test").addCallback(fenced.append)
        assert fenced and fenced[0].node.fence.rejoined_at is None
        world.create(other)  # a new generation: the agents fetch their configurations
        advance(world, 12.0)
    events = [e["event"] for e in logs if e.get("node") in (None, str(node.uuid))]
    assert "agent.fenced" in events
    assert events.count("agent.rejoined") == 1, events
    assert "agent.registered" not in events
    assert "agent.observed" in events[events.index("agent.rejoined"):]
    nodes: list[Any] = []
    world.control.client.list_nodes().addCallback(nodes.append)
    fence = next(n for n in nodes[0] if n.node.uuid == node.uuid).node.fence
    assert fence is not None and fence.rejoined_at is not None


def test_unfenced_agent_learns_it_without_a_new_generation() -> None:
    """An unfence is a state write (the generation stays): a fenced agent still learns it
    within a heartbeat, and attaches again."""
    world = World()
    node, other = world.node(0), world.node(1)
    advance(world, 1.0)
    world.control.client.fence_node(node.uuid, "test")
    world.create(other)
    advance(world, 12.0)
    assert node.loop.memory.fenced
    world.control.client.unfence_node(node.uuid)
    advance(world, 12.0)
    assert not node.loop.memory.fenced
    dataset_id = world.create(node)
    advance(world, 12.0)
    assert node.mounted(dataset_id)


def test_backing_off_never_waits_longer_than_a_heartbeat() -> None:
    """Cut off for a minute, the agent retries at least every heartbeat, so that a control
    service that comes back hears from it before the grace can end."""
    world = World()
    node, partition = partitioned_node(world)
    advance(world, 1.0)
    partition.cut = True
    with capture_logs() as logs:
        advance(world, 60.0)
    delays = [e["seconds"] for e in logs if e["event"] == "agent.backing_off"]
    assert len(delays) > 10
    assert max(delays) <= node.loop.heartbeat
