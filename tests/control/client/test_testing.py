"""The public test double of the client (MemoryControl) passes the client contract."""

from __future__ import annotations

from uuid import uuid4

import pytest

from control.client.testing import FlushingClock, MemoryControl, result_of

from .suite import START, ClientContract, ClientHarness


class TestMemoryControl(ClientContract):
    """The real client against the real API in memory, as CLI, agent and plugin tests use it."""

    @pytest.fixture
    def harness(self) -> ClientHarness:
        """A fresh in-memory control service; its clock delivers answers by itself."""
        clock = FlushingClock()
        clock.advance(START)
        control = MemoryControl(clock)
        return ClientHarness(control.client, control.clock)


def test_a_write_delivers_the_watch_it_wakes() -> None:
    """A watch woken by a write has its answer when the write returns, with no flush."""
    control = MemoryControl()
    now = control.client.watch(0, 0, timeout=0)
    control.clock.advance(0)
    versions = result_of(now)
    woken = control.client.watch(versions.configuration, versions.state, timeout=60)
    assert not woken.called
    result_of(control.client.register_node(uuid4(), "node1", "e1", {}))
    assert result_of(woken).state > versions.state


def test_a_timeout_delivers_the_watch() -> None:
    """A watch that times out answers when the clock passes its timeout."""
    control = MemoryControl()
    now = control.client.watch(0, 0, timeout=0)
    control.clock.advance(0)
    versions = result_of(now)
    d = control.client.watch(versions.configuration, versions.state, timeout=5)
    control.clock.advance(4)
    assert not d.called
    control.clock.advance(1)
    assert result_of(d) == versions
