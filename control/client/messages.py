"""
The JSON a client sends, and the client-only values it reads back.

Model values go through :mod:`control.wire`, shared with the API; this module
adds the request bodies and the answers that have no model type. The fake
client builds the very same bodies and checks them against the API's schemas,
so both clients refuse the same requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from control.client.interface import (
    DatasetFailover,
    NodeCondition,
    NodeInfo,
    Reported,
    ServiceVersion,
    StateDataset,
)
from control.errors import InvalidRequest
from control.wire import (
    JSON,
    capacity_from_json,
    condition_from_json,
    node_from_json,
    parse_uuid,
    versions_from_json,
)


def create_dataset_body(
    primary: UUID,
    maximum_size: int | None,
    metadata: Mapping[str, str] | None,
    dataset_id: UUID | None,
) -> JSON:
    """The body of ``POST /v1/configuration/datasets``."""
    body: JSON = {"primary": str(primary)}
    if maximum_size is not None:
        body["maximum_size"] = maximum_size
    if metadata:
        body["metadata"] = dict(metadata)
    if dataset_id is not None:
        body["dataset_id"] = str(dataset_id)
    return body


def move_dataset_body(primary: UUID) -> JSON:
    """The body of ``POST /v1/configuration/datasets/<id>``."""
    return {"primary": str(primary)}


def acquire_lease_body(
    dataset_id: UUID, node_uuid: UUID, expires: float | None, move: bool = False
) -> JSON:
    """The body of ``POST /v1/configuration/leases`` (``move`` only when asked)."""
    body: JSON = {"dataset_id": str(dataset_id), "node_uuid": str(node_uuid), "expires": expires}
    if move:
        body["move"] = True
    return body


def register_node_body(
    host: str, era: str | None, labels: Mapping[str, str], mount_root: str | None = None
) -> JSON:
    """The body of ``PUT /v1/shoal/nodes/<uuid>`` (``mount_root`` only when known)."""
    body: JSON = {"host": host, "era": era, "labels": dict(labels)}
    if mount_root is not None:
        body["mount_root"] = mount_root
    return body


def _get(obj: Any, key: str) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise InvalidRequest(f"The service's answer lacks {key!r}.")
    return obj[key]


def service_version_from_json(obj: Any) -> ServiceVersion:
    """The answer of ``GET /v1/version``."""
    leader = obj.get("leader")
    return ServiceVersion(
        flocker=str(_get(obj, "flocker")),
        shoal=str(obj.get("shoal", "")),
        leader=leader if isinstance(leader, bool) else None,
    )


def state_dataset_from_json(obj: Any) -> StateDataset:
    """One entry of ``GET /v1/state/datasets``."""
    primary = obj.get("primary") if isinstance(obj, Mapping) else None
    return StateDataset(
        dataset_id=parse_uuid(_get(obj, "dataset_id"), "dataset_id"),
        primary=None if primary is None else parse_uuid(primary, "primary"),
        path=obj.get("path"),
        maximum_size=obj.get("maximum_size"),
        device=obj.get("device"),
    )


def node_info_from_json(obj: Any) -> NodeInfo:
    """One entry of ``GET /v1/shoal/nodes``."""
    liveness = obj.get("liveness") if isinstance(obj, dict) else None
    capacity = obj.get("capacity") if isinstance(obj, dict) else None
    capacities = (obj.get("capacities") if isinstance(obj, dict) else None) or ()
    return NodeInfo(
        node=node_from_json(obj),
        live=bool(_get(obj, "live")),
        liveness=liveness,
        capacity=None if capacity is None else capacity_from_json(capacity),
        capacities=tuple(capacity_from_json(c) for c in capacities),
    )


def dataset_failover_from_json(obj: Any) -> DatasetFailover:
    """The answer of ``PUT /v1/shoal/datasets/<id>/failover``."""
    grace = obj.get("grace") if isinstance(obj, dict) else None
    return DatasetFailover(
        dataset_id=parse_uuid(_get(obj, "dataset_id"), "dataset_id"),
        primary=parse_uuid(_get(obj, "primary"), "primary"),
        epoch=int(_get(obj, "epoch")),
        enabled=_get(obj, "enabled"),
        grace=None if grace is None else float(grace),
        effective_grace=float(_get(obj, "effective_grace")),
    )


def reported_from_json(obj: Any) -> Reported:
    """The answer of ``PUT /v1/shoal/state/<uuid>``."""
    return Reported(changed=bool(_get(obj, "changed")), versions=versions_from_json(obj))


def era_node_from_json(obj: Any) -> UUID:
    """The answer of ``GET /v1/state/nodes/by_era/<era>``."""
    return parse_uuid(_get(obj, "uuid"), "uuid")


def node_condition_from_json(obj: Mapping[str, Any]) -> NodeCondition:
    """A condition with its node, from ``/v1/shoal/conditions``."""
    return NodeCondition(parse_uuid(obj["node_uuid"], "node_uuid"), condition_from_json(obj))


def events_query(
    dataset_id: UUID | None, node_uuid: UUID | None, since: int | None, limit: int | None
) -> dict[str, str]:
    """The query parameters of ``/v1/shoal/events``."""
    params = {}
    if dataset_id is not None:
        params["dataset"] = str(dataset_id)
    if node_uuid is not None:
        params["node"] = str(node_uuid)
    if since is not None:
        params["since"] = str(since)
    if limit is not None:
        params["limit"] = str(limit)
    return params
