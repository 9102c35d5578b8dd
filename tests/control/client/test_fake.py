"""The fake client passes the client contract."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from control.client.fake import FakeClient
from control.client.interface import ShoalClient

from .suite import START, ClientContract, ClientHarness


class TestFakeClient(ClientContract):
    """The in-memory client behaves as the HTTP client does."""

    @pytest.fixture
    def harness(self) -> ClientHarness:
        """A fake client over a fresh memory store and clock."""
        clock = Clock()
        clock.advance(START)
        return ClientHarness(FakeClient(clock=clock), clock)


def test_provides_interface() -> None:
    """The fake client is a ShoalClient."""
    assert isinstance(FakeClient(), ShoalClient)
