"""
JSON schemas (draft 2020-12) of every request and response body of the API.

The API validates request bodies against these, and the OpenAPI document
(:mod:`control.api.openapi`) is built from the very same values, so the
documentation cannot drift from what is enforced.
"""

from __future__ import annotations

from typing import Any

from control.model import (
    MAX_METADATA_ITEMS,
    MAX_METADATA_KEY,
    MAX_METADATA_VALUE,
    ConditionKind,
    VolumeStatus,
)

Schema = dict[str, Any]

UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

NO_NUL = "^[^\\x00]*$"
"""Text a database can store: no NUL characters (PostgreSQL refuses them)."""

LARGEST = 2**63 - 1
"""The largest integer a database column holds (signed 64 bits)."""

UUID: Schema = {"type": "string", "format": "uuid", "pattern": UUID_PATTERN}
NULLABLE_STRING: Schema = {"type": ["string", "null"], "maxLength": 4096, "pattern": NO_NUL}
SIZE: Schema = {
    "type": ["integer", "null"],
    "maximum": LARGEST,
    "description": "Bytes: at least 64 MiB and a multiple of 1024, or null for the default.",
}
METADATA: Schema = {
    "type": "object",
    "maxProperties": MAX_METADATA_ITEMS,
    "propertyNames": {"minLength": 1, "maxLength": MAX_METADATA_KEY, "pattern": NO_NUL},
    "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE, "pattern": NO_NUL},
}
LABELS: Schema = {
    "type": "object",
    "maxProperties": 64,
    "propertyNames": {"minLength": 1, "maxLength": 253, "pattern": NO_NUL},
    "additionalProperties": {"type": "string", "maxLength": 256, "pattern": NO_NUL},
}
COUNTER: Schema = {"type": "integer", "minimum": 0, "maximum": LARGEST}
ERA: Schema = {"type": ["string", "null"], "maxLength": 255, "pattern": NO_NUL}


def _object(required: list[str], **properties: Schema) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _list(item: Schema) -> Schema:
    return {"type": "array", "items": item}


# -- request bodies -----------------------------------------------------------

CREATE_DATASET = _object(
    ["primary"], primary=UUID, dataset_id=UUID, maximum_size=SIZE, metadata=METADATA
)
MOVE_DATASET = _object(["primary"], primary=UUID)
ACQUIRE_LEASE = _object(
    ["dataset_id", "node_uuid"],
    dataset_id=UUID,
    node_uuid=UUID,
    expires={
        "type": ["number", "null"],
        "exclusiveMinimum": 0,
        "maximum": 10**9,
        "description": "Seconds from now until the lease expires, or null for never.",
    },
)
ABSOLUTE_PATH: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 4096,
    "pattern": "^/[^\\x00]*$",
}
REGISTER_NODE = _object(
    ["host"],
    host={"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_NUL},
    era=ERA,
    labels=LABELS,
    mount_root={
        **ABSOLUTE_PATH,
        "description": "The directory under which the agent mounts datasets; "
        "reported paths must lie below it.",
    },
)
DATASET_STATE = _object(
    ["dataset_id", "status"],
    dataset_id=UUID,
    status={"enum": [s.value for s in VolumeStatus]},
    maximum_size={"type": ["integer", "null"], "minimum": 0, "maximum": LARGEST},
    device=NULLABLE_STRING,
    path=NULLABLE_STRING,
)
SHORT_TEXT: Schema = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NO_NUL}
NULLABLE_UUID: Schema = {"anyOf": [UUID, {"type": "null"}]}
BYTES: Schema = {"type": ["integer", "null"], "minimum": 0, "maximum": LARGEST}
CONDITION = _object(
    ["kind", "reason", "message", "since"],
    dataset_id=NULLABLE_UUID,
    kind={"enum": [k.value for k in ConditionKind]},
    reason=SHORT_TEXT,
    step={"type": ["string", "null"], "maxLength": 64, "pattern": NO_NUL},
    message={"type": "string", "maxLength": 4096, "pattern": NO_NUL},
    since={"type": "number"},
    attempts={**COUNTER, "description": "How many times the step was tried."},
    permanent={"type": "boolean"},
)
CAPACITY = _object(
    ["backend"],
    backend=SHORT_TEXT,
    total=BYTES,
    free=BYTES,
    maximum_volume_size=BYTES,
    shared={"type": "boolean"},
)
ORPHAN = _object(
    ["blockdevice_id"],
    blockdevice_id={"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_NUL},
    dataset_id=NULLABLE_UUID,
    size=BYTES,
)
REPORT_STATE = _object(
    ["generation", "datasets"],
    era=ERA,
    generation=COUNTER,
    datasets={**_list(DATASET_STATE), "maxItems": 10000},
    conditions={**_list(CONDITION), "maxItems": 10000},
    capacity={"anyOf": [CAPACITY, {"type": "null"}]},
    orphans={**_list(ORPHAN), "maxItems": 10000},
)

# -- response bodies ----------------------------------------------------------

ERROR = _object(
    ["description"], description={"type": "string"}, errors=_list({"type": "string"})
)
VERSION = _object(["flocker", "shoal"], flocker={"type": "string"}, shoal={"type": "string"})
DATASET = _object(
    ["dataset_id", "primary", "metadata", "deleted", "maximum_size"],
    dataset_id=UUID,
    primary=UUID,
    metadata=METADATA,
    deleted={"type": "boolean"},
    maximum_size=SIZE,
)
LEASE = _object(
    ["dataset_id", "node_uuid", "expires"],
    dataset_id=UUID,
    node_uuid=UUID,
    expires={"type": ["number", "null"], "minimum": 0},
)
STATE_DATASET = _object(
    ["dataset_id", "maximum_size"],
    dataset_id=UUID,
    primary=UUID,
    path={"type": ["string", "null"]},
    maximum_size=SIZE,
)
STATE_NODE = _object(["host", "uuid"], host={"type": "string"}, uuid=UUID)
ERA_NODE = _object(["uuid"], uuid=UUID)
NODE = _object(
    ["uuid", "host", "era", "labels", "last_seen", "live"],
    uuid=UUID,
    host={"type": "string"},
    era={"type": ["string", "null"]},
    labels=LABELS,
    last_seen={"type": ["number", "null"]},
    live={"type": "boolean"},
    mount_root={"type": ["string", "null"]},
    identity={
        "type": ["string", "null"],
        "description": "SHA-256 fingerprint (hex) of the client certificate that registered "
        "the node; null without TLS. Only that certificate may register or report for it.",
    },
)
EVENT = _object(
    ["id", "at", "kind", "message", "dataset_id", "node_uuid", "actor", "details"],
    id={"type": ["integer", "null"]},
    at={"type": "number"},
    kind={"type": "string"},
    message={"type": "string"},
    dataset_id=NULLABLE_UUID,
    node_uuid=NULLABLE_UUID,
    actor={"type": ["string", "null"]},
    details={"type": "object"},
)
REPORTED_ORPHAN = _object(
    ["node_uuid", "blockdevice_id", "dataset_id", "size"],
    node_uuid=UUID,
    **ORPHAN["properties"],
)
VERSIONS = _object(["configuration", "state"], configuration=COUNTER, state=COUNTER)
REPORT_RESULT = _object(
    ["changed", "configuration", "state"],
    changed={"type": "boolean"},
    configuration=COUNTER,
    state=COUNTER,
)
NODE_CONFIGURATION = _object(
    ["generation", "datasets", "leases"],
    generation=COUNTER,
    datasets=_list(DATASET),
    leases=_list(LEASE),
)
OPENAPI_DOCUMENT: Schema = {"type": "object", "description": "This OpenAPI document."}

DATASETS = _list(DATASET)
LEASES = _list(LEASE)
STATE_DATASETS = _list(STATE_DATASET)
STATE_NODES = _list(STATE_NODE)
NODES = _list(NODE)
REPORTED_ORPHANS = _list(REPORTED_ORPHAN)
