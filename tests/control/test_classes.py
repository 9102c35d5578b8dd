"""Unit tests of storage classes: validation, JSON, the need a class gives, access modes."""

from __future__ import annotations

import pytest

from control.classes import StorageClass, class_from_json, class_to_json, update_class
from control.errors import InvalidRequest
from control.model import AccessMode
from control.placement import Need
from control.topology import ZONE, BindingMode, ReclaimPolicy
from tests.control.store.class_conformance import ZONE_A, fast

GiB = 1024**3


def test_json_round_trip() -> None:
    """A class goes to JSON and back unchanged."""
    assert class_from_json(class_to_json(fast())) == fast()


def test_defaults_from_a_bare_body() -> None:
    """A body with only a name is a class with the documented defaults."""
    cls = class_from_json({"name": "basic"})
    assert (cls.backend, cls.filesystem, cls.default_size) == (None, "ext4", None)
    assert cls.reclaim_policy is ReclaimPolicy.DELETE
    assert cls.binding_mode is BindingMode.IMMEDIATE
    assert cls.access_modes == (AccessMode.RWO,) and not cls.default


def test_enum_values_by_short_name_too() -> None:
    """Access modes and policies may be given by value or short name (RWO, ROX)."""
    cls = class_from_json({"name": "x", "access_modes": ["RWO", "ReadOnlyMany"]})
    assert cls.access_modes == (AccessMode.RWO, AccessMode.ROX)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "Bad_Name"}, "is not valid"),
        ({"name": "x", "access_modes": ["ReadWriteMany"]}, "ReadWriteMany is not supported"),
        ({"name": "x", "access_modes": []}, "at least one access mode"),
        ({"name": "x", "binding_mode": "Later"}, "binding_mode 'Later' is not one of"),
        ({"name": "x", "filesystem": "zfs"}, "filesystem 'zfs'"),
        ({"name": "x", "default_size": 1000}, "too small"),
        ({"name": "x", "allowed_topologies": [{ZONE: []}]}, "lists no values"),
    ],
)
def test_invalid_classes_are_refused(body: dict, message: str) -> None:
    """Each invalid field is refused with a message naming it."""
    with pytest.raises(InvalidRequest, match=message):
        class_from_json(body)


def test_need_and_access_mode() -> None:
    """A class gives the need placement checks; asking a mode it does not allow is a 400."""
    cls = fast()
    assert cls.need(None) == Need("loopback", GiB, (ZONE_A,), AccessMode.RWO)
    assert cls.need(2 * GiB, AccessMode.ROX).size == 2 * GiB
    assert cls.access_mode(None) is AccessMode.RWO
    assert cls.access_mode(AccessMode.ROX) is AccessMode.ROX
    with pytest.raises(InvalidRequest, match="does not allow access mode ReadWriteOncePod"):
        cls.access_mode(AccessMode.RWOP)


def test_update_refuses_fixed_fields() -> None:
    """Only the mutable fields change; the message names the others."""
    with pytest.raises(InvalidRequest, match="binding_mode, filesystem of storage class"):
        update_class(StorageClass("x"), "x", {"filesystem": "xfs", "binding_mode": "x"})
