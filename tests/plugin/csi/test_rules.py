"""The CSI driver's pure rules: sizes, paging, error codes, in-flight operations."""

from __future__ import annotations

import grpc
import pytest

from control.client.waiting import WaitTimedOut
from control.errors import Conflict, NotAllowed, NotFound, PreconditionFailed
from plugin.csi import rules
from plugin.csi.errors import CsiError, status_of
from plugin.csi.inflight import InFlight
from plugin.csi.proto import csi_pb2 as csi

MiB = 1024 * 1024
Code = grpc.StatusCode


@pytest.mark.parametrize(("required", "limit", "size"), [
    (0, 0, 5 * MiB), (1, 0, 64 * MiB), (100 * MiB + 1, 0, 100 * MiB + 1024),
    (0, 200 * MiB, 64 * MiB),
])
def test_size_for(required: int, limit: int, size: int) -> None:
    """The smallest valid dataset size within the range (the default when none is asked)."""
    capacity = csi.CapacityRange(required_bytes=required, limit_bytes=limit)
    assert rules.size_for(capacity, 5 * MiB) == size


def test_size_above_the_limit_is_out_of_range() -> None:
    """A limit below what Shoal can make is OUT_OF_RANGE."""
    with pytest.raises(CsiError) as caught:
        rules.size_for(csi.CapacityRange(required_bytes=10, limit_bytes=MiB), None)
    assert caught.value.code is Code.OUT_OF_RANGE


def test_page_walks_and_refuses_foreign_tokens() -> None:
    """Pages of two over five items, then the end; a token past the end is ABORTED."""
    items = list(range(5))
    assert rules.page(items, 2, "") == ([0, 1], "2")
    assert rules.page(items, 2, "4") == ([4], "")
    assert rules.page(items, 0, "") == (items, "")
    with pytest.raises(CsiError) as caught:
        rules.page(items, 2, "9")
    assert caught.value.code is Code.ABORTED


@pytest.mark.parametrize(("error", "code"), [
    (NotFound("x"), Code.NOT_FOUND),
    (NotAllowed("x"), Code.NOT_FOUND),
    (Conflict("x"), Code.FAILED_PRECONDITION),
    (PreconditionFailed("x"), Code.ABORTED),
    (WaitTimedOut("the mount"), Code.DEADLINE_EXCEEDED),
    (CsiError(Code.OUT_OF_RANGE, "x"), Code.OUT_OF_RANGE),
    (RuntimeError("x"), Code.INTERNAL),
])
def test_status_of(error: BaseException, code: grpc.StatusCode) -> None:
    """Shoal's refusals map onto the CSI spec's codes."""
    assert status_of(error)[0] is code


def test_a_second_operation_on_a_volume_is_aborted() -> None:
    """While one operation holds a volume, another is ABORTED; after it, it may run."""
    inflight = InFlight()
    with inflight.claim("v", "volume v"), pytest.raises(CsiError) as caught, \
            inflight.claim("v", "volume v"):
        pass
    assert caught.value.code is Code.ABORTED
    with inflight.claim("v", "volume v"):
        pass


@pytest.mark.parametrize(("mode", "access", "ok"), [
    ("SINGLE_NODE_WRITER", "block", True), ("SINGLE_NODE_MULTI_WRITER", "block", True),
    ("MULTI_NODE_READER_ONLY", "mount", True), ("MULTI_NODE_READER_ONLY", "block", False),
    ("MULTI_NODE_MULTI_WRITER", "mount", False), ("MULTI_NODE_SINGLE_WRITER", "mount", False),
])
def test_served_modes(mode: str, access: str, ok: bool) -> None:
    """A Shoal volume is written on one node at a time; a ReadOnlyMany mount volume is read on
    several, and a raw block volume cannot be one."""
    cap = csi.VolumeCapability()
    getattr(cap, access).SetInParent()
    cap.access_mode.mode = csi.VolumeCapability.AccessMode.Mode.Value(mode)
    assert (rules.unsupported_capability(cap) is None) is ok


def test_class_terms_expand_to_topologies() -> None:
    """A term with two zones is two topologies."""
    terms = [{"zone": ["a", "b"], "region": ["eu"]}]
    assert rules.expand_topologies(terms) == [
        {"region": "eu", "zone": "a"}, {"region": "eu", "zone": "b"}]
