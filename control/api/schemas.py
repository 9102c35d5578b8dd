"""
JSON schemas (draft 2020-12) of every request and response body of the API.

The API validates request bodies against these, and the OpenAPI document
(:mod:`control.api.openapi`) is built from the very same values, so the
documentation cannot drift from what is enforced.
"""

from __future__ import annotations

from typing import Any

from control.admission import SIZE_CEILING
from control.api import pages
from control.events import DEFAULT_LIMIT, MAXIMUM_LIMIT
from control.failover_rules import MAXIMUM_FAILOVER_GRACE
from control.model import (
    FILESYSTEMS,
    FORMATS,
    MAX_METADATA_ITEMS,
    MAX_METADATA_KEY,
    MAX_METADATA_VALUE,
    MINIMUM_DATASET_SIZE,
    MINIMUM_LEASE_SECONDS,
    SIZE_MULTIPLE,
    AccessMode,
    ConditionKind,
    SourceKind,
    VolumeStatus,
)
from control.snapshots import NAME_PATTERN as SNAPSHOT_NAME_PATTERN
from control.topology import KEY_PATTERN as LABEL_KEY_PATTERN
from control.topology import VALUE_PATTERN as LABEL_VALUE_PATTERN
from control.topology import BindingMode, ReclaimPolicy
from control.units import describe_size

Schema = dict[str, Any]

UUID_TEXT = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
UUID_PATTERN = f"^{UUID_TEXT}$"

MAX_ALSO = 400
"""The most dataset ids one ``?also=`` may list: with them the request line stays under 16 KiB."""

UUID_LIST_PATTERN = f"^({UUID_TEXT}(,{UUID_TEXT}){{0,{MAX_ALSO - 1}}})?$"
"""Comma-separated UUIDs, no spaces, none empty (or no ids at all)."""

NO_NUL = "^[^\\x00]*$"
"""Text a database can store: no NUL characters (PostgreSQL refuses them)."""

LARGEST = 2**63 - 1
"""The largest integer a database column holds (signed 64 bits)."""

UNIQUE_BY = "x-unique-by"
"""An extension keyword on an array: the property whose value no two items share.

JSON Schema cannot state this rule, so the API checks it in code
(:func:`control.wire.node_state_from_json`) and refuses a duplicate with 400."""

UUID: Schema = {"type": "string", "format": "uuid", "pattern": UUID_PATTERN}
NULLABLE_STRING: Schema = {"type": ["string", "null"], "maxLength": 4096, "pattern": NO_NUL}
SIZE: Schema = {
    "type": "integer",
    "minimum": MINIMUM_DATASET_SIZE,
    "maximum": LARGEST,
    "multipleOf": SIZE_MULTIPLE,
    "description": (
        f"a size in bytes is an integer of at least {MINIMUM_DATASET_SIZE} (64 MiB) "
        f"and a multiple of {SIZE_MULTIPLE}."
    ),
}
NEW_SIZE: Schema = {
    **SIZE,
    "type": ["integer", "null"],
    "maximum": SIZE_CEILING,
    "description": (
        f"{SIZE['description']} A new dataset is at most {describe_size(SIZE_CEILING)} (the "
        "ceiling), and no larger than some live node reports it can create. Null or absent "
        "means the default size."
    ),
}
REPORTED_SIZE: Schema = {
    "type": "integer",
    "minimum": 0,
    "maximum": LARGEST,
    "description": "Bytes, as the node's backend reports the volume.",
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
ERA_PARAMETER: Schema = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_NUL}
BLOCKDEVICE_ID_PARAMETER: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": NO_NUL,
    "description": "A backend volume's id, as `GET /v1/shoal/orphans` lists it.",
}
TAG: Schema = {
    "type": "string",
    "pattern": "^[!-~]+$",
    "maxLength": 64,
    "description": "A tag as read from X-Configuration-Tag: 1 to 64 visible ASCII characters.",
}


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
    ["primary"], primary=UUID, dataset_id=UUID, maximum_size=NEW_SIZE, metadata=METADATA
)
MOVE_DATASET = {
    **_object([], primary=UUID),
    "description": "The new primary; without one (`{}`) the move changes nothing, as in Flocker.",
}
ACQUIRE_LEASE = _object(
    ["dataset_id", "node_uuid"],
    dataset_id=UUID,
    node_uuid=UUID,
    expires={
        "type": ["number", "null"],
        "minimum": MINIMUM_LEASE_SECONDS,
        "maximum": 10**9,
        "description": (
            f"Seconds from now until the lease expires (at least {MINIMUM_LEASE_SECONDS:g}), "
            "or null for never."
        ),
    },
    move={
        "type": "boolean",
        "description": (
            "Also make node_uuid the dataset's primary (bind or move it there), in the same "
            "write: both happen or neither (a CSI ControllerPublishVolume). Default false."
        ),
    },
)
NORMAL_PATH = "^(/([^./\\x00][^/\\x00]*|\\.[^./\\x00][^/\\x00]*|\\.\\.[^/\\x00]+))+$"
"""An absolute, normalised path below ``/``: no empty, ``.`` or ``..`` part, no trailing ``/``."""
ABSOLUTE_PATH: Schema = {
    "type": "string",
    "minLength": 2,
    "maxLength": 4096,
    "pattern": NORMAL_PATH,
}
REGISTER_NODE = _object(
    ["host"],
    host={"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_NUL},
    era=ERA,
    labels=LABELS,
    mount_root={
        **ABSOLUTE_PATH,
        "description": "The directory under which the agent mounts datasets: an absolute, "
        "normalised path other than / (no '.', '..', '//' or trailing '/'). Reported paths "
        "must lie below it.",
    },
)
DATASET_STATE = _object(
    ["dataset_id", "status"],
    dataset_id=UUID,
    status={"enum": [s.value for s in VolumeStatus]},
    maximum_size={**REPORTED_SIZE, "type": ["integer", "null"]},
    device=NULLABLE_STRING,
    path={
        **ABSOLUTE_PATH,
        "type": ["string", "null"],
        "description": "Where the volume is mounted: an absolute, normalised path strictly "
        "below the mount_root the node registered (409 otherwise), or null.",
    },
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
    snapshot_method={"anyOf": [SHORT_TEXT, {"type": "null"}]},
    read_only_many={"type": "boolean", "description": "Whether it attaches a volume read-only "
                    "to several nodes at once (ReadOnlyMany readers)."},
)
ORPHAN = _object(
    ["blockdevice_id"],
    blockdevice_id={"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_NUL},
    dataset_id=NULLABLE_UUID,
    size=BYTES,
)
REPORTED_SNAPSHOT = _object(
    ["snapshot_id", "size"],
    snapshot_id=UUID,
    size={"type": "integer", "minimum": 0, "maximum": LARGEST},
)
REPORT_STATE = _object(
    ["generation", "datasets"],
    era=ERA,
    generation=COUNTER,
    datasets={
        **_list(DATASET_STATE),
        "maxItems": 10000,
        UNIQUE_BY: "dataset_id",
        "description": "Each dataset at most once: a dataset_id listed twice is refused (400).",
    },
    conditions={**_list(CONDITION), "maxItems": 10000},
    capacity={"anyOf": [CAPACITY, {"type": "null"}]},
    capacities={**_list(CAPACITY), "maxItems": 16,
                "description": "Every backend of the node, its first (default) one first."},
    orphans={**_list(ORPHAN), "maxItems": 10000},
    snapshots={**_list(REPORTED_SNAPSHOT), "maxItems": 100000},
)

# -- query parameters (name -> schema; the description is the refusal's hint) ---

WATCH_DEFAULT = 30.0
"""Seconds a watch waits when no ``timeout`` is given."""

WATCH_MAXIMUM = 300.0
"""The longest ``timeout`` a watch accepts, in seconds."""

WATCH_QUERY: dict[str, Schema] = {
    "configuration": {
        **COUNTER,
        "description": "A configuration generation (an integer from 0): wake when it is passed.",
    },
    "state": {
        **COUNTER,
        "description": "A state version (an integer from 0): wake when it is passed.",
    },
    "timeout": {
        "type": "number",
        "minimum": 0,
        "maximum": WATCH_MAXIMUM,
        "description": (
            f"Seconds to wait, from 0 to {WATCH_MAXIMUM:g} (default {WATCH_DEFAULT:g})."
        ),
    },
    "node": {
        **UUID,
        "description": (
            "A node uuid: wake on the configuration and the state only for changes that "
            "concern this node (or everyone), not for every write (an agent watching its own "
            "node)."
        ),
    },
    "datasets": {
        "type": "string",
        "pattern": UUID_LIST_PATTERN,
        "maxLength": MAX_ALSO * 37 - 1,
        "description": (
            f"Dataset ids (UUIDs) separated by commas, at most {MAX_ALSO}: wake on the "
            "configuration and the state only for changes that concern one of them, or the "
            "node, or everyone."
        ),
    },
}
NODE_CONFIGURATION_QUERY: dict[str, Schema] = {
    "also": {
        "type": "string",
        "pattern": UUID_LIST_PATTERN,
        "maxLength": MAX_ALSO * 37 - 1,
        "description": (
            f"Dataset ids (UUIDs) to include as well, separated by commas without spaces; "
            f"at most {MAX_ALSO}."
        ),
    },
}

STATE_DATASETS_QUERY: dict[str, Schema] = {
    "node": {**UUID, "description": "Only what this node reports (a node uuid): where a "
             "ReadOnlyMany dataset its readers mount is seen on each of them."},
}
CONDITIONS_QUERY: dict[str, Schema] = {
    "dataset": {**UUID, "description": "Only this dataset's conditions (a dataset id, a UUID)."},
}
EVENTS_QUERY: dict[str, Schema] = {
    "dataset": {**UUID, "description": "Only this dataset's events (a dataset id, a UUID)."},
    "node": {**UUID, "description": "Only this node's events (a node uuid)."},
    "since": {
        **COUNTER,
        "description": "Only events after this event id, oldest first (else the newest).",
    },
    "limit": {
        "type": "integer",
        "minimum": 1,
        "maximum": MAXIMUM_LIMIT,
        "description": (
            f"At most this many events, from 1 to {MAXIMUM_LIMIT} "
            f"(default {DEFAULT_LIMIT})."
        ),
    },
}

FENCE_NODE = {
    **_object([], reason={"type": "string", "minLength": 1, "maxLength": 1024, "pattern": NO_NUL}),
    "description": "Why the node is fenced: `{}` to give no reason.",
}
SET_FAILOVER = {
    **_object(
        [],
        enabled={"type": ["boolean", "null"]},
        grace={
            "type": ["number", "null"],
            "exclusiveMinimum": 0,
            "maximum": MAXIMUM_FAILOVER_GRACE,
        },
    ),
    "description": (
        "enabled: true, false, or null (the default: on for a shared backend); grace: seconds "
        "of silence before the dataset fails over, never shorter than the cluster's grace "
        "(null: the cluster's). Absent means null."
    ),
}

# -- response bodies ----------------------------------------------------------

ERROR = _object(
    ["description"], description={"type": "string"}, errors=_list({"type": "string"})
)
VERSION = _object(
    ["flocker", "shoal"],
    flocker={"type": "string"},
    shoal={"type": "string"},
    leader={"type": "boolean", "description": "whether this replica runs the background work"},
)
WHOAMI = _object(
    ["tls", "subject", "role", "node"],
    tls={"type": "boolean", "description": "whether the caller presented a client certificate"},
    subject={"type": ["string", "null"], "description": "the certificate's common name"},
    role={"type": ["string", "null"], "description": "admin, operator, viewer, node or control"},
    node={"type": ["string", "null"], "description": "the node a node certificate speaks for"},
)
DATASET = _object(
    ["dataset_id", "primary", "metadata", "deleted"],
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
    ["dataset_id"],
    dataset_id=UUID,
    primary=UUID,
    path={"type": ["string", "null"]},
    maximum_size=REPORTED_SIZE,
    device={"type": "string", "description": "The device path on ``primary`` while the volume "
            "is attached or mounted there (a Shoal addition: a raw dataset is used by it)."},
)
STATE_NODE = _object(["host", "uuid"], host={"type": "string"}, uuid=UUID)
ERA_NODE = _object(["uuid"], uuid=UUID)
FENCE: Schema = _object(
    ["at", "reason", "actor", "automatic", "rejoined_at"],
    at={"type": "number"},
    reason={"type": "string"},
    actor={"type": ["string", "null"]},
    automatic={"type": "boolean"},
    rejoined_at={"type": ["number", "null"]},
)
"""Why and since when a node is fenced (docs/failover.md)."""
LIVENESS: Schema = {
    "enum": ["live", "suspect", "dead", None],
    "description": "live; suspect after two missed heartbeats; dead after the failover grace.",
}
NODE = _object(
    ["uuid", "host", "era", "labels", "last_seen", "live"],
    uuid=UUID,
    host={"type": "string"},
    era={"type": ["string", "null"]},
    labels=LABELS,
    last_seen={"type": ["number", "null"]},
    live={"type": "boolean"},
    mount_root={"type": ["string", "null"]},
    capacity={
        "anyOf": [CAPACITY, {"type": "null"}],
        "description": "What the node's backend last reported it can hold, and how it makes "
        "snapshots (snapshot_method); null before its first report.",
    },
    capacities={
        **_list(CAPACITY),
        "description": "Every backend of the node (an agent may run several), its first "
        "(default) one first; empty before its first report.",
    },
    identity={
        "type": ["string", "null"],
        "description": "Who registered the node: its certificate's node URI "
        "(urn:shoal:node:UUID), or the SHA-256 fingerprint (hex) of a certificate without one; "
        "null without TLS. Only that certificate, or one bound to this node, may register or "
        "report for it.",
    },
    liveness=LIVENESS,
    fence={"anyOf": [FENCE, {"type": "null"}]},
    draining={"type": "boolean"},
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
NODE_CONDITION = {
    **CONDITION,
    "properties": {**CONDITION["properties"], "node_uuid": UUID},
    "required": [*CONDITION["required"], "node_uuid"],
}
"""A condition with the node that reports it."""
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
DATA_SOURCE = _object(
    ["kind", "id"],
    kind={"enum": [k.value for k in SourceKind]},
    id=UUID,
)
NODE_DATASET = _object(
    ["dataset_id", "primary", "metadata", "deleted", "epoch", "filesystem", "source"],
    **DATASET["properties"],
    epoch={**COUNTER, "description": "The fencing token: grows with every change of primary."},
    filesystem={"enum": list(FORMATS)},
    source={"anyOf": [DATA_SOURCE, {"type": "null"}]},
    storage_class={"type": ["string", "null"], "description": "The dataset's storage class."},
    released={"type": "boolean", "description": "Deleted with its volume retained (no node); "
              "the Flocker v1 routes show it deleted."},
    released_from={"anyOf": [UUID, {"type": "null"}],
                   "description": "The node a released dataset was on (adopted there by default)."},
    access_mode={"enum": [m.value for m in AccessMode],
                 "description": "ReadOnlyMany datasets are mounted read-only."},
    readers={**_list(UUID), "description": "The nodes besides the primary that mount a "
             "ReadOnlyMany dataset read-only."},
    backend={"type": ["string", "null"], "description": "The backend of the dataset's volume "
             "(null: the primary's first backend)."},
)
NODE_CONFIGURATION = _object(
    ["generation", "datasets", "leases"],
    generation=COUNTER,
    datasets=_list(NODE_DATASET),
    leases=_list(LEASE),
    fenced={"type": "boolean", "description": "This node is fenced: let go of everything."},
    fenced_nodes={**_list(UUID), "description": "Every fenced node's uuid."},
    node_lease={
        "type": "number",
        "description": "Seconds without a successful report after which the agent fences "
        "itself (half the failover grace).",
    },
    heartbeat={"type": "number", "description": "Report at least this often (seconds)."},
)
DATASET_FAILOVER = _object(
    ["dataset_id", "primary", "epoch", "enabled", "grace", "effective_grace"],
    dataset_id=UUID,
    primary=UUID,
    epoch=COUNTER,
    enabled={"type": ["boolean", "null"]},
    grace={"type": ["number", "null"]},
    effective_grace={"type": "number"},
)
OPENAPI_DOCUMENT: Schema = {"type": "object", "description": "This OpenAPI document."}

DATASETS = _list(DATASET)
LEASES = _list(LEASE)
STATE_DATASETS = _list(STATE_DATASET)
STATE_NODES = _list(STATE_NODE)
CONTAINERS: Schema = {"type": "array", "maxItems": 0, "description": "Always empty."}
NODES = _list(NODE)
EVENTS = _list(EVENT)
NODE_CONDITIONS = _list(NODE_CONDITION)
REPORTED_ORPHANS = _list(REPORTED_ORPHAN)

# -- snapshots, restore, clone and resize (issue 8) ------------------------------

SNAPSHOT_NAME: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 253,
    "pattern": SNAPSHOT_NAME_PATTERN,
    "description": "A snapshot name: 1 to 253 characters, no '/' or control characters, no "
    "space at either end; unique among snapshots that are not deleted.",
}
CREATE_SNAPSHOT = _object(
    ["dataset_id"],
    dataset_id={**UUID, "description": "The dataset to snapshot."},
    name={**SNAPSHOT_NAME, "description": f"{SNAPSHOT_NAME['description']} Asking again "
          "with the same name and dataset answers the existing snapshot (200). Default: "
          "generated from the dataset's name."},
)
SNAPSHOT = _object(
    ["snapshot_id", "name", "dataset_id", "created", "node", "size", "ready", "deleted",
     "filesystem"],
    snapshot_id=UUID,
    name={"type": "string"},
    dataset_id={**UUID, "description": "The source dataset (which the snapshot outlives)."},
    created={"type": "number", "description": "When it was asked for (seconds since the epoch)."},
    node={**UUID, "description": "The node in charge of making it."},
    size={**BYTES, "description": "The restore size in bytes, once ready."},
    ready={"type": "boolean"},
    deleted={"type": "boolean"},
    filesystem={"enum": list(FORMATS)},
)
SNAPSHOTS = _list(SNAPSHOT)
SNAPSHOTS_QUERY: dict[str, Schema] = {
    "dataset": {**UUID, "description": "Only this dataset's snapshots (a dataset id, a UUID)."},
}
SOURCE_REQUEST: Schema = {
    **_object(
        ["kind"],
        kind={"enum": [k.value for k in SourceKind]},
        id=UUID,
        name={"type": "string", "minLength": 1, "maxLength": 253, "pattern": NO_NUL},
    ),
    "oneOf": [{"required": ["id"]}, {"required": ["name"]}],
    "description": "What the new dataset's data starts from: a snapshot (a restore) or a "
    "dataset (a clone), by id or by name (a live snapshot's or dataset's name).",
}
ACCESS_MODE: Schema = {
    "enum": [m.value for m in AccessMode if m is not AccessMode.RWX],
    "description": "ReadWriteMany is refused: ext4 or xfs on a block device cannot have "
    "writers on several nodes. Use ReadWriteOnce, ReadWriteOncePod or ReadOnlyMany.",
}
_CREATE_SHOAL_DATASET = _object(
    [],
    primary={**UUID, "description": "The node to create it on. Required without a source; "
             "with one, defaults to the node where the source is."},
    dataset_id=UUID,
    maximum_size={**NEW_SIZE, "description": f"{NEW_SIZE['description']} With a source: "
                  "defaults to the source's size, and may be larger, never smaller."},
    metadata=METADATA,
    filesystem={"enum": list(FORMATS), "description": "The filesystem made on a new "
                "volume (default ext4; raw: none, a block-mode dataset whose device is "
                "attached, never formatted or mounted); a restore or clone keeps its source's."},
    source=SOURCE_REQUEST,
    storage_class={"type": "string", "minLength": 1, "maxLength": 63, "pattern": NO_NUL,
                   "description": "The dataset's storage class (default: the default "
                   "class, if one is marked); fixed for its life."},
    access_mode={**ACCESS_MODE, "description": f"One of the modes its class allows (default: "
                 f"the class's first). {ACCESS_MODE['description']}"},
)
CREATE_SHOAL_DATASET: Schema = {
    **_CREATE_SHOAL_DATASET,
    "description": "A new dataset names its primary, or its storage class places it (an "
    "Immediate class at once, a WaitForFirstConsumer class on first use); a restore or "
    "clone names its source (and may name a primary).",
}
RESIZE_DATASET = _object(
    ["maximum_size"],
    maximum_size={**SIZE, "maximum": SIZE_CEILING, "description": f"{SIZE['description']} "
                  "The new size: at least the current one (datasets only grow)."},
)
SHOAL_DATASET = NODE_DATASET
SHOAL_DATASETS = _list(SHOAL_DATASET)
"""A dataset with its epoch, filesystem and source, as the /v1/shoal/ routes answer it."""
SHOAL_DATASET_PAGE = {
    **_object(["items", "continue"], items=SHOAL_DATASETS,
              **{"continue": {"type": ["string", "null"],
                              "description": "The token of the next page, null after the last."}}),
    "description": "One page of datasets by id (`?limit=`), and the token of the next page.",
}
SHOAL_DATASETS_ANSWER = {"oneOf": [SHOAL_DATASETS, SHOAL_DATASET_PAGE]}
"""Every dataset (an array), or one page of them with ``limit``."""
MAXIMUM_PAGE = 10_000
SHOAL_DATASETS_QUERY: dict[str, Schema] = {
    "limit": {
        "type": "integer", "minimum": 1, "maximum": MAXIMUM_PAGE,
        "description": f"Answer one page of at most this many datasets (1 to {MAXIMUM_PAGE}), "
        "by id, as `{items, continue}`; without it (or `continue`), every dataset as one array.",
    },
    "continue": {
        "type": "string", "pattern": pages.TOKEN_PATTERN,
        "description": "The `continue` token of the previous page: answers the page after it.",
    },
}
NODE_CONFIGURATION["properties"]["snapshots"] = {
    **_list(SNAPSHOT),
    "description": "The snapshots this node is in charge of that are not ready yet (to make) "
    "or deleted (to destroy).",
}

# -- storage classes (issue 9, docs/placement.md) ----------------------------------

CLASS_NAME: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 63,
    "pattern": "^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$",
    "description": "A class name: 1 to 63 lower-case letters, digits, '-' or '.'.",
}
TOPOLOGY_TERM: Schema = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 16,
    "propertyNames": {
        "minLength": 1, "maxLength": 317, "pattern": LABEL_KEY_PATTERN,
        "description": "A label key: an optional DNS prefix and '/', then up to 63 letters, "
        "digits, '-', '_' or '.' (e.g. topology.kubernetes.io/zone).",
    },
    "additionalProperties": {
        "type": "array",
        "minItems": 1,
        "maxItems": 64,
        "items": {
            "type": "string", "maxLength": 63, "pattern": LABEL_VALUE_PATTERN,
            "description": "A label value: up to 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit.",
        },
    },
    "description": "A label key to the values it may take; a node matches a term when it "
    "matches every key of it.",
}
ALLOWED_TOPOLOGIES: Schema = {
    **_list(TOPOLOGY_TERM),
    "maxItems": 64,
    "description": "A node must match one term; empty means anywhere.",
}
CLASS_PARAMETERS: Schema = {
    "type": "object",
    "maxProperties": 32,
    "propertyNames": {"minLength": 1, "maxLength": 253, "pattern": NO_NUL},
    "additionalProperties": {"type": "string", "maxLength": 1024, "pattern": NO_NUL},
    "description": "Free-form parameters passed to the backend.",
}
_CLASS_FIELDS: dict[str, Schema] = {
    "backend": {"anyOf": [SHORT_TEXT, {"type": "null"}],
                "description": "The backend its volumes live on; null: any a node has."},
    "filesystem": {"enum": list(FILESYSTEMS)},
    "default_size": {**NEW_SIZE, "description": "The size of a dataset that names none."},
    "reclaim_policy": {"enum": [p.value for p in ReclaimPolicy]},
    "binding_mode": {"enum": [b.value for b in BindingMode]},
    "allowed_topologies": ALLOWED_TOPOLOGIES,
    "access_modes": {
        **_list(ACCESS_MODE), "minItems": 1, "maxItems": 3, "uniqueItems": True,
        "description": "The modes a dataset may ask for (the first is the default); "
        "ReadWriteMany is refused.",
    },
    "parameters": CLASS_PARAMETERS,
    "failover": {"type": ["boolean", "null"], "description": "Whether its datasets fail over "
                 "when their node dies (null: on for a shared backend); a dataset may override."},
    "failover_grace": {"type": ["number", "null"], "exclusiveMinimum": 0,
                       "maximum": MAXIMUM_FAILOVER_GRACE,
                       "description": "Seconds of silence before its datasets fail over, never "
                       "shorter than the cluster's grace (null: the cluster's)."},
    "default": {"type": "boolean", "description": "Whether it is the default class (one is)."},
}
CREATE_CLASS = _object(["name"], name=CLASS_NAME, **_CLASS_FIELDS)
UPDATE_CLASS = {
    **_object(
        [],
        parameters=CLASS_PARAMETERS,
        default_size=_CLASS_FIELDS["default_size"],
        default=_CLASS_FIELDS["default"],
    ),
    "description": "Only these fields of a class change after it is made.",
}
STORAGE_CLASS = _object(
    ["name", *_CLASS_FIELDS, "created"],
    name=CLASS_NAME,
    **_CLASS_FIELDS,
    created={"type": "number", "description": "When it was made (seconds since the epoch)."},
)
STORAGE_CLASSES = _list(STORAGE_CLASS)
ADD_READER = _object(
    ["node"],
    node={**UUID, "description": "The node that mounts the ReadOnlyMany dataset read-only."},
)
ADOPT_DATASET = _object(
    [],
    primary={**UUID, "description": "The node to adopt it on (default: the first node, by "
             "uuid, that reports its volume)."},
)

# -- revoked certificates (control.revocations) -------------------------------------

SERIAL: Schema = {
    "type": "string",
    "pattern": "^(0[xX])?0*[1-9A-Fa-f][0-9A-Fa-f]{0,39}$",
    "maxLength": 128,
    "description": "A certificate serial in hex, as `openssl x509 -noout -serial` shows it "
    "(at most 20 octets, not 0).",
}
REVOKE = _object(
    ["serial", "subject"],
    serial=SERIAL,
    subject={"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_NUL,
             "description": "Who the certificate names (its common name, e.g. node-n1)."},
    reason={"type": "string", "maxLength": 1024, "pattern": NO_NUL},
)
REVOCATION = _object(
    ["serial", "subject", "at", "actor", "reason"],
    serial={"type": "string", "pattern": "^[0-9a-f]{1,40}$",
            "description": "The serial, lower-case hex."},
    subject={"type": "string"},
    at={"type": "number", "description": "When it was revoked (seconds since the epoch)."},
    actor={"type": ["string", "null"], "description": "Who revoked it (subject and role)."},
    reason={"type": ["string", "null"]},
)
REVOCATIONS = _list(REVOCATION)
