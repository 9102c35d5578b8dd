"""
The node's health as conditions: pool space, volumes that do not fit, I/O errors (pure).

Discovery observes the backend's :class:`~control.model.Capacity` and the
kernel's error lines for the devices attached here
(:mod:`agent.kernlog`); :func:`with_health` turns them into the
:class:`~control.model.Condition` values of the node's report:

- ``pool_low`` (node level, ``dataset_id`` ``None``): less than
  :data:`POOL_LOW_FRACTION` of the backend's storage is free;
- ``too_large`` (permanent) or ``no_space``: a dataset this node must create
  does not fit (larger than the whole storage, or than what is free now); the
  policy does not try the create (:func:`fits`), so a dataset that cannot be
  created never makes the loop fail pass after pass;
- ``io_error``: the kernel logged an error for the dataset's device, quoted.

A condition keeps the ``since`` of the same condition in the previous report,
so an unchanged condition does not make every pass a new observation.
Capacity figures are rounded (:func:`steady`) for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING
from uuid import UUID

from attrs import evolve

from control.model import Capacity, Condition, ConditionKind, Dataset, NodeState
from control.units import describe_size

if TYPE_CHECKING:
    from agent.discovery import LocalState

POOL_LOW_FRACTION = 0.10
"""A node reports ``pool_low`` when less than this share of its storage is free."""
STEPS = 128
"""Reported free space is rounded down to 1/STEPS of the storage (at least :data:`MiB`)."""
MiB = 1024 * 1024


def steady(capacity: Capacity | None) -> Capacity | None:
    """``capacity`` with free space rounded down to a coarse step, so writes don't change it."""
    if capacity is None or capacity.total is None or capacity.free is None:
        return capacity
    step = max(MiB, capacity.total // STEPS)
    free = capacity.free // step * step
    maximum = capacity.maximum_volume_size
    if maximum is not None and capacity.free - step <= maximum <= capacity.free:
        maximum = min(maximum, free) // MiB * MiB
    return evolve(capacity, free=free, maximum_volume_size=maximum)


def fits(capacity: Capacity | None, size: int) -> bool:
    """Whether a new volume of ``size`` bytes fits (an unknown capacity fits anything)."""
    if capacity is None or capacity.maximum_volume_size is None:
        return True
    return size <= capacity.maximum_volume_size


def _where(capacity: Capacity) -> str:
    total = "" if capacity.total is None else f" of {describe_size(capacity.total)}"
    return f"this node's {capacity.backend} storage{total}"


def capacity_condition(dataset_id: UUID, size: int, capacity: Capacity, now: float) -> Condition:
    """The ``too_large`` or ``no_space`` condition of a volume of ``size`` that does not fit."""
    largest = describe_size(capacity.maximum_volume_size or 0)
    if capacity.total is None or size > capacity.total:
        return Condition(
            dataset_id,
            ConditionKind.ERROR,
            "too_large",
            f"A volume of {describe_size(size)} can never fit in {_where(capacity)}: the "
            f"largest it can create is {largest}. Delete the dataset and create it smaller, "
            "or move it to a node with more storage.",
            now,
            step="create",
            permanent=True,
        )
    return Condition(
        dataset_id,
        ConditionKind.ERROR,
        "no_space",
        f"A volume of {describe_size(size)} does not fit in {_where(capacity)} now: the "
        f"largest that fits is {largest}. Free space (delete datasets), or move it to "
        "another node; the agent creates it once it fits.",
        now,
        step="create",
    )


def pool_low(capacity: Capacity | None, now: float) -> Condition | None:
    """The node's ``pool_low`` condition, if less than 10% of its storage is free."""
    if capacity is None or not capacity.total or capacity.free is None:
        return None
    if capacity.free >= capacity.total * POOL_LOW_FRACTION:
        return None
    return Condition(
        None,
        ConditionKind.ERROR,
        "pool_low",
        f"Only {describe_size(capacity.free)} of {describe_size(capacity.total)} is free in "
        f"this node's {capacity.backend} storage: new volumes may not fit, and volumes of a "
        "thin pool fail writes when it is full. Free space or grow the pool.",
        now,
    )


def io_error(dataset_id: UUID, device: str, line: str, now: float) -> Condition:
    """The ``io_error`` condition of a dataset whose device the kernel complained about."""
    return Condition(
        dataset_id,
        ConditionKind.ERROR,
        "io_error",
        f"The kernel logged an error for {device}: {line!r}. Data written to this dataset "
        "may be lost: stop writing, then unmount it and check its filesystem (fsck).",
        now,
    )


def health_conditions(
    capacity: Capacity | None,
    device_errors: Mapping[str, str],
    devices: Mapping[UUID, str],
    to_create: Iterable[tuple[UUID, int]],
    now: float,
) -> tuple[Condition, ...]:
    """
    Every health condition of one observation (see the module docstring).

    ``devices`` maps the datasets attached here to their device paths;
    ``to_create`` lists the ``(dataset id, size)`` of the volumes this node
    must create.
    """
    found: list[Condition] = []
    low = pool_low(capacity, now)
    if low is not None:
        found.append(low)
    for dataset_id, size in to_create:
        if capacity is not None and not fits(capacity, size):
            found.append(capacity_condition(dataset_id, size, capacity, now))
    if not device_errors:  # the common case: no sorting of every device by dataset id
        return tuple(found)
    for dataset_id, device in sorted(devices.items(), key=lambda item: str(item[0])):
        line = device_errors.get(device)
        if line is not None:
            found.append(io_error(dataset_id, device, line, now))
    return tuple(found)


def keep_since(
    conditions: Iterable[Condition], previous: Iterable[Condition]
) -> tuple[Condition, ...]:
    """``conditions``, each with the ``since`` of the same (dataset, reason) in ``previous``."""
    before = {(c.dataset_id, c.reason): c.since for c in previous}
    return tuple(evolve(c, since=before.get((c.dataset_id, c.reason), c.since)) for c in conditions)


def volumes_to_create(
    desired: Mapping[UUID, Dataset], existing: Iterable[UUID], node_uuid: UUID, default_size: int
) -> list[tuple[UUID, int]]:
    """``(dataset id, size)`` of the live datasets of ``node_uuid`` that have no volume yet."""
    have = set(existing)
    return [
        (d.dataset_id, d.maximum_size or default_size)
        for d in desired.values()
        if d.primary == node_uuid and not d.deleted and d.dataset_id not in have
    ]


def with_health(
    report: NodeState,
    capacity: Capacity | None,
    conditions: Iterable[Condition],
    previous: NodeState | None,
) -> NodeState:
    """``report`` with the node's capacity and health ``conditions`` added to its own."""
    kept = keep_since(conditions, previous.conditions if previous is not None else ())
    return evolve(report, capacity=capacity, conditions=(*report.conditions, *kept))


def observed_health(
    local: LocalState,
    desired: Mapping[UUID, Dataset],
    node_uuid: UUID,
    default_size: int,
    now: float,
) -> tuple[Condition, ...]:
    """The health conditions of the observation ``local`` (see :func:`health_conditions`)."""
    devices = {d.dataset_id: d.device for d in local.datasets.values() if d.device is not None}
    existing = (d.dataset_id for d in local.datasets.values() if d.blockdevice_id is not None)
    return health_conditions(
        local.capacity,
        local.device_errors,
        devices,
        volumes_to_create(desired, existing, node_uuid, default_size),
        now,
    )
