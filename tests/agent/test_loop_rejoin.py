"""A fenced agent registers again, so that the control service can lift an automatic fence."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from tests.agent.test_loop import World
from tests.agent.test_loop_fencing import advance


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
    assert "agent.observed" in events[events.index("agent.rejoined"):]
    nodes: list[Any] = []
    world.control.client.list_nodes().addCallback(nodes.append)
    fence = next(n for n in nodes[0] if n.node.uuid == node.uuid).node.fence
    assert fence is not None and fence.rejoined_at is not None
