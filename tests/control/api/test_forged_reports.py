"""Forged and stale state reports are refused and change nothing (issue 14, sections 1 and 2)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.control.api.harness import (
    DATASET_1,
    IDENTITY_HEADER,
    NODE_A,
    NODE_B,
    Answer,
    GiB,
    Harness,
)

CERT_A = {IDENTITY_HEADER: "a1" * 32}
CERT_B = {IDENTITY_HEADER: "b2" * 32}


def _mounted(path: str) -> dict[str, object]:
    return {
        "dataset_id": str(DATASET_1),
        "status": "mounted",
        "maximum_size": GiB,
        "device": "/dev/loop7",
        "path": path,
    }


def _report(
    h: Harness, datasets: list[object], generation: int = 0, era: str = "e1", **kw: Any
) -> Answer:
    body = {"era": era, "generation": generation, "datasets": datasets}
    return h.call("PUT", f"/v1/shoal/state/{NODE_A}", body, **kw)


@pytest.mark.parametrize("path", ["/etc", "/mnt", "/mntx/y"])
def test_path_outside_mount_root_refused(path: str) -> None:
    """A normalised path not strictly below the node's mount root is a 409, not recorded."""
    h = Harness()
    h.register()
    answer = _report(h, [_mounted(path)])
    assert answer.code == 409
    assert "strictly below" in answer.body["description"] and "'/mnt'" in answer.body["description"]
    assert h.call("GET", "/v1/state/datasets").body == []


@pytest.mark.parametrize("path", ["/mnt/../etc", "/mnt/x/../../etc", "mnt/x", "/mnt//x"])
def test_unnormalised_path_refused(path: str) -> None:
    """A path that is not absolute and normalised breaks the schema: a 400, not recorded."""
    h = Harness()
    h.register()
    answer = _report(h, [_mounted(path)])
    assert answer.code == 400
    assert "normalised" in answer.body["description"]
    assert h.call("GET", "/v1/state/datasets").body == []


def test_path_below_mount_root_accepted() -> None:
    """The agent's own mount point, ``<mount root>/<dataset id>``, is accepted."""
    h = Harness()
    h.register()
    assert _report(h, [_mounted(f"/mnt/{DATASET_1}")]).code == 200


def test_path_without_mount_root_refused() -> None:
    """A node that registered no mount root may report no path."""
    h = Harness()
    assert h.call("PUT", f"/v1/shoal/nodes/{NODE_A}", {"host": "h", "era": "e1"}).code == 200
    answer = _report(h, [_mounted(f"/mnt/{DATASET_1}")])
    assert answer.code == 409 and "no mount_root" in answer.body["description"]


def test_mount_root_of_slash_refused() -> None:
    """Registering ``/`` as the mount root (every path below it) is refused."""
    h = Harness()
    answer = h.call("PUT", f"/v1/shoal/nodes/{NODE_A}", {"host": "h", "mount_root": "/"})
    assert answer.code == 400 and "mount_root" in answer.body["description"]
    assert h.call("GET", "/v1/shoal/nodes").body == []


def test_other_nodes_certificate_cannot_report() -> None:
    """Node B's certificate can neither report for node A nor take over its registration."""
    h = Harness()
    h.register(headers=CERT_A)
    h.register(NODE_B, "10.0.0.2", "e2", headers=CERT_B)
    forged = _report(h, [_mounted(f"/mnt/{DATASET_1}")], headers=CERT_B)
    assert forged.code == 403
    assert "Only the certificate that registered a node" in forged.body["description"]
    assert h.call("GET", "/v1/state/datasets").body == []
    hijack = h.call(
        "PUT", f"/v1/shoal/nodes/{NODE_A}", {"host": "evil", "mount_root": "/"}, headers=CERT_B
    )
    assert hijack.code in (400, 403)
    hijack = h.call(
        "PUT", f"/v1/shoal/nodes/{NODE_A}", {"host": "evil", "mount_root": "/x"}, headers=CERT_B
    )
    assert hijack.code == 403
    assert h.call("GET", "/v1/shoal/nodes").body[0]["host"] == "10.0.0.1"
    assert _report(h, [_mounted(f"/mnt/{DATASET_1}")], headers=CERT_A).code == 200


def _deleted(h: Harness) -> None:
    h.register()
    h.create(dataset_id=str(DATASET_1))
    assert _report(h, [_mounted(f"/mnt/{DATASET_1}")], generation=1).code == 200
    h.call("DELETE", f"/v1/configuration/datasets/{DATASET_1}")


@pytest.mark.parametrize(
    ("generation", "era"),
    [(0, "e1"), (99, "e1"), (2, "forged-era")],
    ids=["older-generation", "future-generation", "wrong-era"],
)
def test_forged_empty_report_keeps_deleted_record(generation: int, era: str) -> None:
    """``datasets: []`` from the past, the future or another era is a 409 and purges nothing."""
    h = Harness()
    _deleted(h)
    answer = _report(h, [], generation=generation, era=era)
    assert answer.code == 409, answer.body
    records = h.call("GET", "/v1/configuration/datasets").body
    assert [(d["dataset_id"], d["deleted"]) for d in records] == [(str(DATASET_1), True)]


def test_current_empty_report_purges() -> None:
    """The primary's own current report of no volume does purge the record."""
    h = Harness()
    _deleted(h)
    assert _report(h, [], generation=2).code == 200
    assert h.call("GET", "/v1/configuration/datasets").body == []
