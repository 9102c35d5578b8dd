"""Who may call which route: the table, and the API refusing by role (403) for every route."""

from __future__ import annotations

import re
from uuid import UUID

import pytest

from control.api.app import ControlAPI
from control.api.guard import openapi_path, route_of
from control.api.openapi import OPERATIONS
from control.api.permissions import RULES, decide
from control.roles import Principal, Role
from tests.control.api.harness import DATASET_1, NODE_A, NODE_B, Harness, principal

AUTOMATIC = {"HEAD", "OPTIONS"}
SNAPSHOT = UUID("55555555-0000-4000-8000-000000000005")
PARAMETERS = {
    "node_uuid": str(NODE_A),
    "dataset_id": str(DATASET_1),
    "snapshot_id": str(SNAPSHOT),
    "era": "e1",
    "blockdevice_id": "vol-1",
    "name": "fast",
}
QUERIES = {"/v1/shoal/watch": "?configuration=0&state=0&timeout=0"}


def served() -> set[tuple[str, str]]:
    """Every (method, OpenAPI path) the Klein app serves, from its URL map."""
    routes = set()
    for rule in ControlAPI.app.url_map.iter_rules():
        for method in set(rule.methods or ()) - AUTOMATIC:
            routes.add((method.lower(), openapi_path(rule.rule)))
    return routes


ROUTES = sorted(served())

READ_ONLY_FOR_ADMINS = {("get", "/v1/shoal/revocations")}
OPERATOR_FAMILIES = ("/v1/configuration/datasets", "/v1/shoal/datasets", "/v1/shoal/snapshots",
                     "/v1/configuration/leases")
NODE_OWN = {
    ("put", "/v1/shoal/nodes/{node_uuid}"),
    ("put", "/v1/shoal/state/{node_uuid}"),
    ("get", "/v1/shoal/nodes/{node_uuid}/configuration"),
}
NODE_ANY = {
    ("get", "/v1/shoal/watch"), ("get", "/v1/version"), ("get", "/v1/openapi.json"),
    ("get", "/v1/shoal/whoami"),
}
AGENT_ONLY = {("put", "/v1/shoal/nodes/{node_uuid}"), ("put", "/v1/shoal/state/{node_uuid}")}


def expected(role: str, method: str, path: str, own: bool) -> bool:
    """The issue's rules, written independently of the table: may ``role`` call the route?

    ``own``: the node uuid in the path is the node certificate's own.
    """
    route = (method, path)
    if role == "control":
        return True
    if role == "node":
        return route in NODE_ANY or (route in NODE_OWN and own)
    if route in AGENT_ONLY:
        return False
    if method == "get":
        return role in ("viewer", "operator", "admin") and (
            route not in READ_ONLY_FOR_ADMINS or role == "admin"
        )
    if role == "admin":
        return True
    operator_writes = path.startswith(OPERATOR_FAMILIES)
    return role == "operator" and operator_writes


def concrete(path: str, node: UUID = NODE_A) -> str:
    """An OpenAPI path with its parameters filled in (the node one with ``node``)."""
    values = {**PARAMETERS, "node_uuid": str(node)}
    return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], path) + QUERIES.get(path, "")


def test_every_route_has_a_rule() -> None:
    """The table covers exactly the routes served and documented: a new route needs a rule."""
    documented = {(op.method, op.path) for op in OPERATIONS}
    assert set(RULES) == served() == documented


def test_plain_http_allows_everything() -> None:
    """Without TLS there is no principal, and every route is allowed."""
    assert all(decide(None, method, path, {}) is None for method, path in ROUTES)


def test_route_of_finds_the_rule_and_its_parameters() -> None:
    """A request path is matched to its OpenAPI route and path parameters; HEAD reads as GET."""
    url_map = ControlAPI.app.url_map
    assert route_of(url_map, "PUT", f"/v1/shoal/state/{NODE_B}") == (
        "put", "/v1/shoal/state/{node_uuid}", {"node_uuid": str(NODE_B)}
    )
    assert route_of(url_map, "HEAD", "/v1/version") == ("get", "/v1/version", {})
    assert route_of(url_map, "GET", "/v1/nowhere") is None
    assert route_of(url_map, "PATCH", "/v1/version") is None


ROLES = ["viewer", "operator", "admin", "control", "node"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_role_on_every_route(role: str, method: str, path: str) -> None:
    """Each role is allowed exactly what the issue says on each route, through the real API;
    a refusal is 403 naming the role needed and the role held."""
    harness = Harness()
    harness.register(NODE_A)
    node = NODE_A if role == "node" else None
    headers = principal(role, node)
    body = {} if method in ("post", "put", "patch") else None
    answer = harness.call(method.upper(), concrete(path), body, headers=headers)
    if expected(role, method, path, own=True):
        assert answer.code != 403, (role, method, path, answer.body)
    else:
        assert answer.code == 403, (role, method, path, answer.body)
        description = answer.body["description"]
        assert f"has the role {role}" in description
        assert "needs the role" in description or "needs a node certificate" in description


@pytest.mark.parametrize(("method", "path"), sorted(NODE_OWN))
def test_a_node_cannot_speak_for_another(method: str, path: str) -> None:
    """Node B's certificate is refused on node A's own routes, whatever the body."""
    harness = Harness()
    harness.register(NODE_A)
    body = {} if method == "put" else None
    answer = harness.call(method.upper(), concrete(path), body, headers=principal("node", NODE_B))
    assert answer.code == 403
    assert f"for node {NODE_B}" in answer.body["description"]
    assert str(NODE_A) in answer.body["description"]


def test_impersonation_changes_nothing() -> None:
    """A node certificate registering or reporting as another node's uuid is refused, and the
    node's registration and report stay as they were."""
    harness = Harness()
    harness.register(NODE_A, headers=principal("node", NODE_A))
    before = harness.call("GET", "/v1/shoal/nodes").body
    forged = {"host": "10.9.9.9", "era": "e1", "mount_root": "/mnt"}
    refused = harness.call(
        "PUT", f"/v1/shoal/nodes/{NODE_A}", forged, headers=principal("node", NODE_B)
    )
    report = {"era": "e1", "generation": 0, "datasets": []}
    reported = harness.call(
        "PUT", f"/v1/shoal/state/{NODE_A}", report, headers=principal("node", NODE_B)
    )
    assert (refused.code, reported.code) == (403, 403)
    assert harness.call("GET", "/v1/shoal/nodes").body == before


def test_a_user_cannot_send_agent_reports() -> None:
    """Even an admin's certificate may not report a node's state or register it."""
    harness = Harness()
    harness.register(NODE_A)
    report = {"era": "e1", "generation": 0, "datasets": []}
    answer = harness.call(
        "PUT", f"/v1/shoal/state/{NODE_A}", report, headers=principal("admin")
    )
    assert answer.code == 403
    assert "a node certificate for node" in answer.body["description"]


def test_a_node_cannot_create_move_or_delete_datasets() -> None:
    """The defect of the issue: a node certificate moving, deleting or releasing is refused."""
    harness = Harness()
    harness.register(NODE_A)
    harness.register(NODE_B, host="10.0.0.2")
    assert harness.create(NODE_A).code == 201
    own = principal("node", NODE_B)
    calls = [
        ("POST", "/v1/configuration/datasets", {"primary": str(NODE_B)}),
        ("POST", f"/v1/configuration/datasets/{DATASET_1}", {"primary": str(NODE_B)}),
        ("DELETE", f"/v1/configuration/datasets/{DATASET_1}", None),
        ("DELETE", f"/v1/configuration/leases/{DATASET_1}", None),
    ]
    for method, path, body in calls:
        assert harness.call(method, path, body, headers=own).code == 403, path


def test_a_certificate_without_a_role_may_do_nothing() -> None:
    """A certificate from before roles is refused even reads, told how to reissue it."""
    harness = Harness()
    answer = harness.call("GET", "/v1/configuration/datasets", headers=principal("user"))
    assert answer.code == 403
    assert "shoal ca issue user NAME --role" in answer.body["description"]


def test_unrouted_requests_still_answer_404() -> None:
    """An unknown path with a certificate is answered 404 by the router, not 403."""
    harness = Harness()
    assert harness.call("GET", "/v1/nowhere", headers=principal("viewer")).code == 404


def test_decide_names_the_path_node() -> None:
    """The refusal of a node route names the node in the path."""
    node = Principal("node-b", Role.NODE, 9, "ff", NODE_B)
    refusal = decide(node, "put", "/v1/shoal/state/{node_uuid}", {"node_uuid": str(NODE_A)})
    assert refusal is not None and f"for node {NODE_A} itself" in refusal


def test_a_revoked_certificate_may_do_nothing() -> None:
    """Once an admin revokes a serial, every request with it is refused 403, saying so; the
    revocation records the admin as its actor."""
    harness = Harness()
    assert harness.call("GET", "/v1/version", headers=principal("viewer", serial=77)).code == 200
    revoke = {"serial": "4D", "subject": "user-viewer", "reason": "left"}
    denied = harness.call("POST", "/v1/shoal/revocations", revoke, headers=principal("operator"))
    assert denied.code == 403 and "needs the role admin" in denied.body["description"]
    made = harness.call("POST", "/v1/shoal/revocations", revoke, headers=principal("admin"))
    assert made.code == 201 and made.body["actor"] == "user-admin (admin)"
    again = harness.call("POST", "/v1/shoal/revocations", revoke, headers=principal("admin"))
    assert again.code == 200 and again.body == made.body
    refused = harness.call("GET", "/v1/version", headers=principal("viewer", serial=77))
    assert refused.code == 403 and "was revoked" in refused.body["description"]
    assert harness.call("GET", "/v1/version", headers=principal("viewer", serial=78)).code == 200


def test_writes_record_subject_and_role() -> None:
    """The event of a write names the certificate's subject and role."""
    harness = Harness()
    harness.register(NODE_A)
    created = harness.call(
        "POST", "/v1/configuration/datasets", {"primary": str(NODE_A)},
        headers=principal("operator"),
    )
    assert created.code == 201
    events = harness.call("GET", "/v1/shoal/events", headers=principal("viewer")).body
    assert [(e["kind"], e["actor"]) for e in events] == [("created", "user-operator (operator)")]


@pytest.mark.parametrize(
    "spelling",
    [
        "/v1/configuration/dataset%73/{}",
        "/v1/configuration/%64atasets/{}",
        "/v1%2Fconfiguration/datasets/{}",
    ],
)
def test_encoded_paths_are_authorised_as_the_route_they_reach(spelling: str) -> None:
    """A percent-encoded path is authorised as the route Klein routes it to: a node cannot move
    a dataset by spelling the path differently."""
    harness = Harness()
    harness.register(NODE_A)
    harness.register(NODE_B, host="10.0.0.2")
    created = harness.create(NODE_A)
    path = spelling.format(created.body["dataset_id"])
    moved = {"primary": str(NODE_B)}
    answer = harness.call("POST", path, moved, headers=principal("node", NODE_B))
    assert answer.code == 403, answer.body
    shown = harness.call("GET", "/v1/configuration/datasets").body
    assert [d["primary"] for d in shown] == [str(NODE_A)]
    assert harness.call("POST", path, moved, headers=principal("operator")).code == 200


def test_a_node_s_own_uuid_in_any_spelling() -> None:
    """A node's own uuid in capitals is still its own; another node's in any spelling is not."""
    node = Principal("node-a", Role.NODE, 9, "ff", NODE_A)
    path = "/v1/shoal/state/{node_uuid}"
    assert decide(node, "put", path, {"node_uuid": str(NODE_A).upper()}) is None
    assert decide(node, "put", path, {"node_uuid": NODE_B.hex}) is not None
    assert decide(node, "put", path, {"node_uuid": "not-a-uuid"}) is not None


def test_whoami_says_who_the_certificate_is() -> None:
    """``GET /v1/shoal/whoami`` gives the certificate's subject, role and node (none over HTTP)."""
    harness = Harness()
    plain = harness.call("GET", "/v1/shoal/whoami")
    assert plain.code == 200
    assert plain.body == {"tls": False, "subject": None, "role": None, "node": None}
    viewer = harness.call("GET", "/v1/shoal/whoami", headers=principal("viewer"))
    assert viewer.body == {"tls": True, "subject": "user-viewer", "role": "viewer", "node": None}
    node = harness.call("GET", "/v1/shoal/whoami", headers=principal("node", NODE_A))
    assert node.body["role"] == "node" and node.body["node"] == str(NODE_A)
