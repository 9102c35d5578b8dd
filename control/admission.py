"""
Admission: refuse a dataset size that no node can create (pure rules).

Agents report their backend's :class:`~control.model.Capacity` in every state
report; the API asks these rules, fed with the cluster state, before a create
or a move reaches the store. Every refusal is an
:class:`~control.errors.InvalidRequest` (400, as Flocker answers bad input)
whose message names the limit and the node that has it.

- Any size above :data:`SIZE_CEILING` is refused, reports or not.
- A create is refused when its size exceeds every live node's
  ``maximum_volume_size`` (nodes that reported none do not count), and when
  it exceeds the primary's own (if the primary is live and reported one).
- A move is refused when the new primary would have to create the volume
  (no node reports it yet, or the target's backend is not shared) and its
  reported ``maximum_volume_size`` is smaller than the dataset.

Capacity changes between a report and a create, so admission is advice
checked early: an agent that still cannot create the volume reports a
``too_large`` or ``no_space`` condition instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from control.errors import InvalidRequest
from control.model import Capacity, ClusterState, Dataset, Node
from control.units import describe_size

TiB = 1024**4
SIZE_CEILING = 64 * TiB
"""The largest dataset size accepted whatever nodes report: the largest volume of the
common cloud block stores (EBS, Persistent Disk, Azure managed disks), four times the
largest file of an ext4 pool with 4 KiB blocks."""


_Found = tuple[Node, Capacity, int]
_memo: tuple[ClusterState, list[_Found], dict[UUID, _Found]] | None = None


def _sorted_capacities(state: ClusterState) -> tuple[list[_Found], dict[UUID, _Found]]:
    """``(node, capacity, maximum_volume_size)`` of each node that reported a maximum, live
    or not, largest first (then by name), and the same by node. Computed once for the last
    state asked about (creates that shared a read share its state; the result depends on
    ``state`` only), so that a create costs the same with a thousand nodes as with one."""
    global _memo
    memo = _memo
    if memo is not None and memo[0] is state:
        return memo[1], memo[2]
    found = []
    for node_uuid, node in state.nodes.items():
        report = state.reports.get(node_uuid)
        capacity = _roomiest(report.all_capacities()) if report is not None else None
        if capacity is not None and capacity.maximum_volume_size is not None:
            found.append((node, capacity, capacity.maximum_volume_size))
    found.sort(key=lambda item: (-item[2], item[0].display_name))
    by_node = {item[0].uuid: item for item in found}
    _memo = (state, found, by_node)
    return found, by_node


def _roomiest(capacities: Iterable[Capacity]) -> Capacity | None:
    """Of a node's backends, the one that can create the largest volume (a node with
    several backends takes a volume any of them can hold; placement picks which)."""
    known = [c for c in capacities if c.maximum_volume_size is not None]
    return max(known, key=lambda c: c.maximum_volume_size or 0, default=None)


def _where(node: Node, capacity: Capacity) -> str:
    free = "" if capacity.free is None else f", {describe_size(capacity.free)} free"
    return f"{node.display_name}, {capacity.backend} backend{free}"


def check_ceiling(size: int | None) -> None:
    """Refuse a size above :data:`SIZE_CEILING`."""
    if size is not None and size > SIZE_CEILING:
        raise InvalidRequest(
            f"maximum_size {describe_size(size)} is larger than any volume Shoal creates: "
            f"the ceiling is {describe_size(SIZE_CEILING)}."
        )


def check_create(
    size: int | None, primary: UUID, state: ClusterState, now: float, node_timeout: float
) -> None:
    """Refuse a new dataset of ``size`` bytes on ``primary`` that no live node can create."""
    if size is None:
        return
    found, by_node = _sorted_capacities(state)
    live = (item for item in found if item[0].is_live(now, node_timeout))
    best_found = next(live, None)  # the first live node of the largest first: O(1) mostly
    if best_found is None:
        check_ceiling(size)
        return
    best, best_capacity, largest = best_found
    if size > largest:
        raise InvalidRequest(
            f"maximum_size {describe_size(size)} is larger than any live node can create: "
            f"the largest is {describe_size(largest)} ({_where(best, best_capacity)})."
        )
    own = by_node.get(primary)
    if own is not None and own[0].is_live(now, node_timeout) and size > own[2]:
        node, capacity, maximum = own
        raise InvalidRequest(
            f"maximum_size {describe_size(size)} is larger than node {node.display_name} "
            f"can create: at most {describe_size(maximum)} ({_where(node, capacity)}). "
            f"Choose another primary, such as {best.display_name} (up to "
            f"{describe_size(largest)}), or free space on {node.display_name}."
        )
    check_ceiling(size)


def _has_volume(dataset_id: UUID, state: ClusterState) -> bool:
    reports: Iterable = state.reports.values()
    return any(dataset_id in report.datasets for report in reports)


def check_move(
    dataset: Dataset, target: UUID, state: ClusterState, now: float, node_timeout: float
) -> None:
    """Refuse moving ``dataset`` to ``target`` when ``target`` would have to create a
    volume larger than it reports it can (only ``target``'s own report is looked at: a
    move costs the same with a thousand nodes as with one)."""
    size = dataset.maximum_size
    if size is None or target == dataset.primary:
        return
    node, report = state.nodes.get(target), state.reports.get(target)
    if node is None or report is None or not node.is_live(now, node_timeout):
        return
    capacity = _roomiest(report.all_capacities())
    maximum = None if capacity is None else capacity.maximum_volume_size
    if capacity is None or maximum is None or size <= maximum:
        return
    if capacity.shared and _has_volume(dataset.dataset_id, state):
        return  # the existing volume moves with it: no new space is needed
    raise InvalidRequest(
        f"Dataset {dataset.dataset_id} ({describe_size(size)}) cannot move to node "
        f"{node.display_name}: it can create volumes of at most {describe_size(maximum)} "
        f"({_where(node, capacity)}). Choose another node or free space there."
    )
