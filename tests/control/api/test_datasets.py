"""Tests for the dataset configuration routes and /v1/version."""

from __future__ import annotations

from control import FLOCKER_API_VERSION, __version__
from tests.control.api.harness import DATASET_1, NODE_A, NODE_B, GiB, Harness

DATASETS = "/v1/configuration/datasets"


def test_version() -> None:
    """The version route names the Flocker API and Shoal versions, and that the one
    process (no replicas) leads."""
    answer = Harness().call("GET", "/v1/version")
    expected = {"flocker": FLOCKER_API_VERSION, "shoal": __version__, "leader": True}
    assert (answer.code, answer.body) == (200, expected)


def test_list_empty_has_tag() -> None:
    """An empty configuration lists nothing and carries tag 0."""
    answer = Harness().call("GET", DATASETS)
    assert (answer.code, answer.body, answer.header("X-Configuration-Tag")) == (200, [], "0")


def test_create_with_id() -> None:
    """Creating a dataset answers 201 with it and the new tag, and it is listed."""
    h = Harness()
    h.register()
    answer = h.create(dataset_id=str(DATASET_1).upper(), maximum_size=GiB, metadata={"name": "db"})
    expected = {
        "dataset_id": str(DATASET_1),
        "primary": str(NODE_A),
        "metadata": {"name": "db"},
        "deleted": False,
        "maximum_size": GiB,
    }
    assert (answer.code, answer.body, answer.header("X-Configuration-Tag")) == (201, expected, "1")
    listed = h.call("GET", DATASETS)
    assert (listed.body, listed.header("X-Configuration-Tag")) == ([expected], "1")


def test_create_generates_id() -> None:
    """Without a dataset_id the API asks new_uuid for one; with no size, none is listed."""
    h = Harness()
    h.register()
    answer = h.create()
    assert answer.body["dataset_id"] == "cccccccc-0000-4000-8000-000000000001"
    assert "maximum_size" not in answer.body
    assert "maximum_size" not in h.call("GET", DATASETS).body[0]


def test_create_refusals() -> None:
    """Id in use or an unregistered primary is 409, a stale tag 412; none changes anything."""
    h = Harness()
    h.register()
    h.create(dataset_id=str(DATASET_1))
    assert h.create(dataset_id=str(DATASET_1)).code == 409
    unknown = h.create(primary=NODE_B)
    assert unknown.code == 409 and str(NODE_B) in unknown.body["description"]
    stale = h.call(
        "POST", DATASETS, {"primary": str(NODE_A)}, headers={"X-If-Configuration-Matches": "0"}
    )
    assert stale.code == 412
    assert h.generation() == 1


def test_create_with_matching_tag() -> None:
    """A conditional create with the current tag succeeds."""
    h = Harness()
    h.register()
    answer = h.call(
        "POST", DATASETS, {"primary": str(NODE_A)}, headers={"X-If-Configuration-Matches": "0"}
    )
    assert (answer.code, answer.header("X-Configuration-Tag")) == (201, "1")


def test_create_bad_size_is_400() -> None:
    """A size under 64 MiB, not a multiple of 1024, or with a fraction is a 400 stating the rule."""
    h = Harness()
    h.register()
    for size in (1000 * 1024, 64 * 1024**2 + 1, 67108864.0):
        answer = h.create(maximum_size=size)
        assert answer.code == 400, size
        assert "at least 67108864 (64 MiB) and a multiple of 1024" in answer.body["description"]
    assert h.generation() == 0


def test_move_without_primary_is_a_no_op() -> None:
    """A move with ``{}`` answers the dataset unchanged with 200, as Flocker does."""
    h = Harness()
    h.register()
    created = h.create(dataset_id=str(DATASET_1)).body
    answer = h.call("POST", f"{DATASETS}/{DATASET_1}", {})
    assert (answer.code, answer.body, answer.header("X-Configuration-Tag")) == (200, created, "1")
    assert h.generation() == 1


def test_move_without_primary_refusals() -> None:
    """A no-op move of an unknown dataset is 404, with a stale tag 412."""
    h = Harness()
    h.register()
    assert h.call("POST", f"{DATASETS}/{DATASET_1}", {}).code == 404
    h.create(dataset_id=str(DATASET_1))
    stale = h.call(
        "POST", f"{DATASETS}/{DATASET_1}", {}, headers={"X-If-Configuration-Matches": "0"}
    )
    assert stale.code == 412


def test_empty_condition_is_400() -> None:
    """An empty X-If-Configuration-Matches is a malformed request, not a stale tag."""
    h = Harness()
    h.register()
    body = {"primary": str(NODE_A)}
    answer = h.call("POST", DATASETS, body, headers={"X-If-Configuration-Matches": ""})
    assert answer.code == 400 and "X-If-Configuration-Matches" in answer.body["description"]
    assert h.generation() == 0


def test_containers_are_empty() -> None:
    """Flocker's container routes, which old clients call, answer an empty list."""
    h = Harness()
    configured = h.call("GET", "/v1/configuration/containers")
    assert (configured.code, configured.body, configured.header("X-Configuration-Tag")) == (
        200,
        [],
        "0",
    )
    actual = h.call("GET", "/v1/state/containers")
    assert (actual.code, actual.body) == (200, [])


def test_move() -> None:
    """A move answers 200 with the new primary and tag."""
    h = Harness()
    h.register()
    h.register(NODE_B, "10.0.0.2", "e2")
    h.create(dataset_id=str(DATASET_1))
    answer = h.call("POST", f"{DATASETS}/{DATASET_1}", {"primary": str(NODE_B)})
    assert (answer.code, answer.body["primary"], answer.header("X-Configuration-Tag")) == (
        200,
        str(NODE_B),
        "2",
    )


def test_move_refusals() -> None:
    """Unknown is 404, deleted 405, leased elsewhere 409, stale tag 412."""
    h = Harness()
    h.register()
    h.register(NODE_B, "10.0.0.2", "e2")
    move = {"primary": str(NODE_B)}
    assert h.call("POST", f"{DATASETS}/{DATASET_1}", move).code == 404
    h.create(dataset_id=str(DATASET_1))
    lease = {"dataset_id": str(DATASET_1), "node_uuid": str(NODE_A), "expires": None}
    assert h.call("POST", "/v1/configuration/leases", lease).code == 201
    held = h.call("POST", f"{DATASETS}/{DATASET_1}", move)
    assert held.code == 409 and "lease" in held.body["description"]
    stale = h.call(
        "POST", f"{DATASETS}/{DATASET_1}", move, headers={"X-If-Configuration-Matches": "1"}
    )
    assert stale.code == 412
    h.call("DELETE", f"/v1/configuration/leases/{DATASET_1}")
    h.call("DELETE", f"{DATASETS}/{DATASET_1}")
    assert h.call("POST", f"{DATASETS}/{DATASET_1}", move).code == 405


def test_delete() -> None:
    """Deleting answers the dataset marked deleted; it stays listed."""
    h = Harness()
    h.register()
    h.create(dataset_id=str(DATASET_1))
    answer = h.call("DELETE", f"{DATASETS}/{DATASET_1}")
    assert (answer.code, answer.body["deleted"], answer.header("X-Configuration-Tag")) == (
        200,
        True,
        "2",
    )
    assert h.call("GET", DATASETS).body[0]["deleted"] is True


def test_delete_refusals() -> None:
    """Unknown is 404, leased is 409, stale tag is 412."""
    h = Harness()
    h.register()
    assert h.call("DELETE", f"{DATASETS}/{DATASET_1}").code == 404
    h.create(dataset_id=str(DATASET_1))
    stale = h.call("DELETE", f"{DATASETS}/{DATASET_1}", headers={"X-If-Configuration-Matches": "0"})
    assert stale.code == 412
    lease = {"dataset_id": str(DATASET_1), "node_uuid": str(NODE_A)}
    h.call("POST", "/v1/configuration/leases", lease)
    assert h.call("DELETE", f"{DATASETS}/{DATASET_1}").code == 409
    assert h.call("GET", DATASETS).body[0]["deleted"] is False


def test_malformed_path_id_is_named() -> None:
    """A malformed id in the path is a 400 naming it."""
    h = Harness()
    answer = h.call("DELETE", f"{DATASETS}/not-a-uuid")
    assert answer.code == 400 and "'not-a-uuid'" in answer.body["description"]


def test_name_in_use_is_409_naming_the_dataset() -> None:
    """A create with a name in use is 409 naming the dataset that has it, and writes nothing."""
    h = Harness()
    h.register()
    first = h.create(metadata={"name": "db"}).body["dataset_id"]
    answer = h.create(metadata={"name": "db"})
    assert answer.code == 409
    assert first in answer.body["description"] and "'db'" in answer.body["description"]
    assert h.generation() == 1


def test_require_live_opt_in() -> None:
    """With X-Shoal-Require-Live: true, a create or move onto a silent node is 409; without, 2xx."""
    h = Harness()
    h.register(NODE_B, "10.0.0.2")
    h.clock.advance(60)
    h.register()
    live = {"X-Shoal-Require-Live": "true"}
    path = "/v1/configuration/datasets"
    refused = h.call("POST", path, {"primary": str(NODE_B)}, headers=live)
    assert refused.code == 409
    assert "is not live: it was last heard from 60 s ago" in refused.body["description"]
    created = h.call("POST", path, {"primary": str(NODE_A)}, headers=live)
    assert created.code == 201
    move = f"{path}/{created.body['dataset_id']}"
    assert h.call("POST", move, {"primary": str(NODE_B)}, headers=live).code == 409
    assert h.call("POST", move, {"primary": str(NODE_B)}).code == 200
    bad = h.call("POST", path, {"primary": str(NODE_A)}, headers={"X-Shoal-Require-Live": "yes"})
    assert bad.code == 400 and h.generation() == 2


def test_malformed_live_header_refused_on_an_empty_move() -> None:
    """A move that changes nothing still refuses a malformed X-Shoal-Require-Live (400)."""
    h = Harness()
    h.register()
    assert h.create(dataset_id=str(DATASET_1)).code == 201
    answer = h.call("POST", f"/v1/configuration/datasets/{DATASET_1}", {},
                    headers={"X-Shoal-Require-Live": "maybe", "X-If-Configuration-Matches": "x"})
    assert answer.code == 400 and "X-Shoal-Require-Live" in answer.body["description"]
