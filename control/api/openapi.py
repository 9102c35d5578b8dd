"""
The OpenAPI 3.1 document of the API, built from :mod:`control.api.schemas`.

:data:`OPERATIONS` lists every route and method the API serves; a test walks
the Klein URL map and checks that it and this table agree exactly.
"""

from __future__ import annotations

import re
from typing import Any

from attrs import frozen

from control.api import schemas as s

TAG_HEADER = "X-Configuration-Tag"
IF_HEADER = "X-If-Configuration-Matches"
LIVE_HEADER = "X-Shoal-Require-Live"

_REASONS = {
    200: "OK",
    201: "Created",
    400: "The request is malformed or breaks a rule.",
    403: "The client certificate's role may not do this, or it speaks for another node, "
    "or it was revoked.",
    404: "Not found.",
    405: "Not allowed on this resource now.",
    409: "Conflicts with the current configuration.",
    412: f"{IF_HEADER} does not match the current tag.",
    413: "The body is over 1 MiB.",
    415: "The body is not JSON.",
    503: "The database is unavailable.",
}
_BODY_ERRORS = (400, 413, 415)


@frozen
class Operation:
    """One route and method: what it takes and what it answers."""

    method: str
    path: str
    summary: str
    answers: dict[int, s.Schema]
    body: s.Schema | None = None
    refusals: tuple[int, ...] = ()
    query: dict[str, s.Schema] | None = None
    conditional: bool = False
    places: bool = False
    """Whether it places a dataset on a node (and so honours :data:`LIVE_HEADER`)."""


OPERATIONS: tuple[Operation, ...] = (
    Operation("get", "/v1/version", "Versions of the API and of Shoal.", {200: s.VERSION}),
    Operation("get", "/v1/openapi.json", "This document.", {200: s.OPENAPI_DOCUMENT}),
    Operation(
        "get", "/v1/shoal/whoami", "Who the caller's client certificate says it is.",
        {200: s.WHOAMI},
    ),
    Operation("get", "/v1/configuration/datasets", "Every dataset.", {200: s.DATASETS}),
    Operation(
        "post", "/v1/configuration/datasets", "Create a dataset.", {201: s.DATASET},
        s.CREATE_DATASET, (409,), conditional=True, places=True,
    ),
    Operation(
        "post", "/v1/configuration/datasets/{dataset_id}", "Move a dataset to a new primary.",
        {200: s.DATASET}, s.MOVE_DATASET, (404, 405, 409), conditional=True, places=True,
    ),
    Operation(
        "delete", "/v1/configuration/datasets/{dataset_id}", "Delete a dataset.",
        {200: s.DATASET}, None, (400, 404, 409), conditional=True,
    ),
    Operation(
        "get", "/v1/configuration/containers", "Flocker's containers: always none.",
        {200: s.CONTAINERS},
    ),
    Operation(
        "get", "/v1/state/containers", "Flocker's containers: always none.", {200: s.CONTAINERS}
    ),
    Operation(
        "get", "/v1/state/datasets", "Where datasets actually are.", {200: s.STATE_DATASETS},
        None, (400,), s.STATE_DATASETS_QUERY,
    ),
    Operation("get", "/v1/state/nodes", "Every registered node.", {200: s.STATE_NODES}),
    Operation(
        "get", "/v1/state/nodes/by_era/{era}", "The node with this era.", {200: s.ERA_NODE},
        None, (404,),
    ),
    Operation("get", "/v1/configuration/leases", "Every unexpired lease.", {200: s.LEASES}),
    Operation(
        "post", "/v1/configuration/leases",
        "Acquire (201) or renew (200) a lease; with move, also make its node the primary.",
        {201: s.LEASE, 200: s.LEASE}, s.ACQUIRE_LEASE, (404, 405, 409), conditional=True,
    ),
    Operation(
        "delete", "/v1/configuration/leases/{dataset_id}", "Release a dataset's lease.",
        {200: s.LEASE}, None, (400, 404), conditional=True,
    ),
    Operation("get", "/v1/shoal/nodes", "Registered nodes and their liveness.", {200: s.NODES}),
    Operation(
        "put", "/v1/shoal/nodes/{node_uuid}", "Register or update a node (agents).",
        {200: s.NODE}, s.REGISTER_NODE, (403,),
    ),
    Operation(
        "put", "/v1/shoal/state/{node_uuid}", "Report a node's observed state (agents).",
        {200: s.REPORT_RESULT}, s.REPORT_STATE, (403, 404, 409),
    ),
    Operation(
        "post", "/v1/shoal/nodes/{node_uuid}/fence",
        "Fence a node by hand: its datasets fail over; it stays fenced until unfenced.",
        {200: s.NODE}, s.FENCE_NODE, (404,),
    ),
    Operation(
        "delete", "/v1/shoal/nodes/{node_uuid}/fence",
        "Unfence a node (409 while it still holds a dataset now primary elsewhere).",
        {200: s.NODE}, None, (400, 404, 409),
    ),
    Operation(
        "post", "/v1/shoal/nodes/{node_uuid}/drain",
        "Drain a node: its datasets move off it (leased ones once released).",
        {200: s.NODE}, None, (400, 404),
    ),
    Operation(
        "delete", "/v1/shoal/nodes/{node_uuid}/drain", "Stop draining a node.",
        {200: s.NODE}, None, (400, 404),
    ),
    Operation(
        "get", "/v1/shoal/datasets/{dataset_id}/failover",
        "A dataset's failover options and the grace that applies.",
        {200: s.DATASET_FAILOVER}, None, (400, 404),
    ),
    Operation(
        "put", "/v1/shoal/datasets/{dataset_id}/failover",
        "Set a dataset's failover options (on, off, default; a longer grace).",
        {200: s.DATASET_FAILOVER}, s.SET_FAILOVER, (404, 405), conditional=True,
    ),
    Operation(
        "get", "/v1/shoal/nodes/{node_uuid}/configuration",
        "The datasets and leases one node needs.", {200: s.NODE_CONFIGURATION},
        None, (400,), s.NODE_CONFIGURATION_QUERY,
    ),
    Operation(
        "get", "/v1/shoal/conditions", "What blocks datasets and nodes, as the agents report.",
        {200: s.NODE_CONDITIONS}, None, (400,), s.CONDITIONS_QUERY,
    ),
    Operation(
        "get", "/v1/shoal/events", "The event history, oldest first.",
        {200: s.EVENTS}, None, (400,), s.EVENTS_QUERY,
    ),
    Operation(
        "get", "/v1/shoal/orphans",
        "Backend volumes no dataset owns, as nodes report them.", {200: s.REPORTED_ORPHANS},
    ),
    Operation(
        "delete", "/v1/shoal/orphans/{blockdevice_id}",
        "Destroy an orphaned volume: record its dataset deleted (primary: a node that sees it).",
        {200: s.DATASET}, None, (400, 404, 409), conditional=True,
    ),
    Operation(
        "get", "/v1/shoal/snapshots", "Snapshots (of one dataset, if asked), deleted ones too.",
        {200: s.SNAPSHOTS}, None, (400,), s.SNAPSHOTS_QUERY,
    ),
    Operation(
        "post", "/v1/shoal/snapshots",
        "Snapshot a dataset (201); the same name and dataset again answers it (200).",
        {201: s.SNAPSHOT, 200: s.SNAPSHOT}, s.CREATE_SNAPSHOT, (404, 409), conditional=True,
    ),
    Operation(
        "get", "/v1/shoal/snapshots/{snapshot_id}", "One snapshot.", {200: s.SNAPSHOT},
        None, (400, 404),
    ),
    Operation(
        "delete", "/v1/shoal/snapshots/{snapshot_id}",
        "Delete a snapshot (its node destroys it); restored datasets are untouched.",
        {200: s.SNAPSHOT}, None, (400, 404, 409), conditional=True,
    ),
    Operation(
        "get", "/v1/shoal/datasets",
        "Every dataset (deleted ones too) with its class, access mode, epoch and filesystem; "
        "one page of them with `limit` (and `continue`).",
        {200: s.SHOAL_DATASETS_ANSWER}, None, (400,), s.SHOAL_DATASETS_QUERY,
    ),
    Operation(
        "post", "/v1/shoal/datasets",
        "Create a dataset: new, restored from a snapshot or cloned from a dataset.",
        {201: s.SHOAL_DATASET}, s.CREATE_SHOAL_DATASET, (404, 409), conditional=True,
        places=True,
    ),
    Operation(
        "post", "/v1/shoal/datasets/{dataset_id}/resize",
        "Grow a dataset (never shrink); its primary grows the volume and filesystem online.",
        {200: s.SHOAL_DATASET}, s.RESIZE_DATASET, (404, 405, 409), conditional=True,
    ),
    Operation(
        "get", "/v1/shoal/released",
        "Released datasets: deleted with their volume retained (a Retain class).",
        {200: s.SHOAL_DATASETS},
    ),
    Operation(
        "post", "/v1/shoal/datasets/{dataset_id}/adopt",
        "Make a released dataset live again on a node, with its volume and data.",
        {200: s.SHOAL_DATASET}, s.ADOPT_DATASET, (404, 409), conditional=True, places=True,
    ),
    Operation(
        "post", "/v1/shoal/datasets/{dataset_id}/readers",
        "Let a node mount a ReadOnlyMany dataset read-only beside its primary (a reader).",
        {200: s.SHOAL_DATASET}, s.ADD_READER, (404, 409), conditional=True, places=True,
    ),
    Operation(
        "delete", "/v1/shoal/datasets/{dataset_id}/readers/{node_uuid}",
        "Stop a node reading a ReadOnlyMany dataset (it unmounts and detaches it).",
        {200: s.SHOAL_DATASET}, None, (400, 404), conditional=True,
    ),
    Operation(
        "get", "/v1/shoal/classes", "Every storage class, by name.", {200: s.STORAGE_CLASSES}
    ),
    Operation(
        "post", "/v1/shoal/classes",
        "Create a storage class (201); the same name and settings again answers it (200).",
        {201: s.STORAGE_CLASS, 200: s.STORAGE_CLASS}, s.CREATE_CLASS, (409,),
    ),
    Operation(
        "get", "/v1/shoal/classes/{name}", "One storage class.", {200: s.STORAGE_CLASS},
        None, (400, 404),
    ),
    Operation(
        "patch", "/v1/shoal/classes/{name}",
        "Change a class's mutable fields (parameters, default_size, default).",
        {200: s.STORAGE_CLASS}, s.UPDATE_CLASS, (404,),
    ),
    Operation(
        "delete", "/v1/shoal/classes/{name}",
        "Delete a storage class no live dataset names (409 while one does).",
        {200: s.STORAGE_CLASS}, None, (400, 404, 409),
    ),
    Operation(
        "get", "/v1/shoal/revocations", "Revoked client certificates, oldest first (admin).",
        {200: s.REVOCATIONS},
    ),
    Operation(
        "post", "/v1/shoal/revocations",
        "Revoke a client certificate (201); revoking it again answers the first record (200).",
        {201: s.REVOCATION, 200: s.REVOCATION}, s.REVOKE,
    ),
    Operation(
        "get", "/v1/shoal/watch", "Wait until a counter passes the given value.",
        {200: s.VERSIONS}, None, (400,), s.WATCH_QUERY,
    ),
)


def _json(schema: s.Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for name in re.findall(r"{(\w+)}", op.path):
        schema = {
            "era": s.ERA_PARAMETER,
            "blockdevice_id": s.BLOCKDEVICE_ID_PARAMETER,
            "name": s.CLASS_NAME,
        }.get(name, s.UUID)
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    for name, schema in (op.query or {}).items():
        params.append(
            {"name": name, "in": "query", "schema": schema, "description": schema["description"]}
        )
    if op.conditional:
        params.append({"name": IF_HEADER, "in": "header", "schema": s.TAG})
    if op.places:
        params.append({
            "name": LIVE_HEADER, "in": "header", "schema": {"enum": ["true", "false"]},
            "description": "true: refuse (409) a primary that is not live.",
        })
    return params


def _responses(op: Operation) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for code, schema in sorted(op.answers.items()):
        answer: dict[str, Any] = {"description": _REASONS[code], "content": _json(schema)}
        if op.conditional or op.path.startswith("/v1/configuration"):
            answer["headers"] = {TAG_HEADER: {"schema": {"type": "string"}}}
        result[str(code)] = answer
    refusals = set(op.refusals) | {403, 503}  # 403: any route, by role (permissions.RULES)
    if op.body is not None:
        refusals |= set(_BODY_ERRORS)
    if op.conditional:
        refusals.add(412)
    for code in sorted(refusals):
        result[str(code)] = {"description": _REASONS[code], "content": _json(s.ERROR)}
    return result


def _operation(op: Operation) -> dict[str, Any]:
    result: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{op.method}_{re.sub(r'[^a-z0-9]+', '_', op.path.lower()).strip('_')}",
        "parameters": _parameters(op),
        "responses": _responses(op),
    }
    if op.body is not None:
        result["requestBody"] = {"required": True, "content": _json(op.body)}
    return result


_DESCRIPTION = f"""Flocker v1 compatible, plus Shoal's own endpoints under /v1/shoal/.

The API validates every request body, path and query parameter against the
schemas in this document, with two additions JSON Schema cannot state:
- an integer is written without a fraction or exponent (`67108864.0` is refused,
  as Flocker does);
- an array marked `{s.UNIQUE_BY}: NAME` holds no two items with the same NAME
  (a duplicate is refused with 400).

Every refusal is JSON `{{"description": ..., "errors": [...]}}` with the status listed.

Over mutual TLS every route is authorised by the role in the client certificate
(viewer, operator, admin, node, control; docs/operations.md, "Roles"): a refusal
is 403 naming the role needed. Over plain HTTP (loopback) everything is allowed."""


def document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the whole API."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Shoal control service",
            "version": version,
            "description": _DESCRIPTION,
        },
        "paths": paths,
    }
