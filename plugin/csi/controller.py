"""
The CSI Controller service: volumes and snapshots as cluster objects, over the control service.

Each method takes a request message and returns the response message; it runs
on the reactor thread and reaches Shoal through the shared
:class:`~control.client.interface.ShoalClient` only. A volume is a dataset (its
id is the volume id, its CSI name the ``name`` metadata), a publication is the
dataset's lease held by the node, a snapshot is a Shoal snapshot. Refusals are
:class:`~plugin.csi.errors.CsiError` with the spec's codes (see docs/csi.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from twisted.internet.defer import Deferred

from control.classes import default_of
from control.client.interface import NodeInfo, ShoalClient
from control.errors import Conflict, InvalidRequest, NotAllowed, NotFound
from control.model import (
    MINIMUM_DATASET_SIZE,
    UNBOUND,
    AccessMode,
    Dataset,
    DataSource,
    SourceKind,
)
from control.reactor import ReactorTime
from plugin.csi import rules
from plugin.csi.errors import Code, CsiError
from plugin.csi.gather import gather
from plugin.csi.inflight import InFlight
from plugin.csi.proto import csi_pb2 as csi
from plugin.csi.snapshots import SnapshotRPCs

RPC = csi.ControllerServiceCapability.RPC.Type
CAPABILITIES = (
    RPC.CREATE_DELETE_VOLUME,
    RPC.PUBLISH_UNPUBLISH_VOLUME,
    RPC.LIST_VOLUMES,
    RPC.LIST_VOLUMES_PUBLISHED_NODES,
    RPC.GET_CAPACITY,
    RPC.CREATE_DELETE_SNAPSHOT,
    RPC.LIST_SNAPSHOTS,
    RPC.GET_SNAPSHOT,
    RPC.CLONE_VOLUME,
    RPC.EXPAND_VOLUME,
    RPC.PUBLISH_READONLY,
    RPC.GET_VOLUME,
    RPC.VOLUME_CONDITION,
    RPC.SINGLE_NODE_MULTI_WRITER,
)
"""What ControllerGetCapabilities advertises; every one is implemented below."""

COMPLETE_CHUNK = 100
"""Dataset ids asked about in one request for their full records (the URL stays short)."""


class ControllerService(SnapshotRPCs):
    """The Controller RPCs over ``client``; ``snapshot_wait`` bounds how long CreateSnapshot
    waits for ready_to_use (the CO asks again after); ``max_volumes`` (0: no limit) is how
    many volumes one node may have published at once, as the nodes' NodeGetInfo says."""

    def __init__(
        self,
        client: ShoalClient,
        clock: ReactorTime,
        default_size: int | None = 1024**3,
        snapshot_wait: float = 30.0,
        max_volumes: int = 0,
    ) -> None:
        self._client = client
        self.max_volumes = max_volumes
        self._clock = clock
        self.default_size = default_size
        self.snapshot_wait = snapshot_wait
        self._inflight = InFlight()
        self._readonly: dict[tuple[UUID, UUID], bool] = {}
        """How each publication was made (read-only or not), while this process knows it."""

    # -- helpers ----------------------------------------------------------------------

    async def _datasets(self) -> list[Dataset]:
        return (await self._client.list_datasets()).datasets

    async def _dataset(self, volume_id: str) -> Dataset:
        """The live dataset of ``volume_id``, or NOT_FOUND."""
        found = rules.live(await self._datasets(), rules.parse_volume_id(volume_id))
        if found is None:
            raise CsiError(Code.NOT_FOUND, f"No volume {volume_id[:80]!r}: no live dataset.")
        return found

    async def _complete(self, datasets: Sequence[Dataset]) -> list[Dataset]:
        """``datasets`` with every field: the v1 listing leaves out the source, filesystem and
        class, which the agents' configuration route (asked about these ids) carries."""
        ids = [d.dataset_id for d in datasets]
        chunks = [ids[i:i + COMPLETE_CHUNK] for i in range(0, len(ids), COMPLETE_CHUNK)]
        answers = await gather(*(self._client.node_configuration(UNBOUND, c) for c in chunks))
        found = {d.dataset_id: d for answer in answers for d in answer.datasets}
        return [found.get(d.dataset_id, d) for d in datasets]

    async def _holder(self, dataset_id: UUID) -> UUID | None:
        return rules.holder(await self._client.list_leases(), dataset_id)

    async def _node_name(self, node: UUID) -> str:
        nodes = await self._client.list_nodes()
        name = next((n.node.display_name for n in nodes if n.node.uuid == node), None)
        return f"{name} ({node})" if name else str(node)

    def _volume(self, dataset: Dataset, nodes: Sequence[NodeInfo]) -> Any:
        volume = csi.Volume(
            capacity_bytes=dataset.maximum_size or 0,
            volume_id=str(dataset.dataset_id),
            volume_context={"filesystem": dataset.filesystem},
        )
        if dataset.source is not None:
            source_id = str(dataset.source.source_id)
            if dataset.source.kind is SourceKind.SNAPSHOT:
                volume.content_source.snapshot.snapshot_id = source_id
            else:
                volume.content_source.volume.volume_id = source_id
        for segments in rules.accessible(dataset, nodes):
            volume.accessible_topology.add(segments=segments)
        return volume

    async def _status(self, dataset: Dataset, status: Any) -> None:
        dataset_id = dataset.dataset_id
        holder = await self._holder(dataset_id)
        status.published_node_ids.extend(rules.published_nodes(dataset, holder))
        conditions = await self._client.list_conditions(dataset_id)
        status.volume_condition.CopyFrom(rules.volume_condition(conditions, dataset_id))

    # -- volumes ----------------------------------------------------------------------

    async def CreateVolume(self, request: Any) -> Any:
        """Create a dataset named ``request.name``, or answer the one made before."""
        rules.require(request.name, "name")
        rules.check_capabilities(request.volume_capabilities)
        rules.check_parameters(request.parameters)
        filesystem = rules.filesystem_of(request.volume_capabilities, request.parameters)
        source = rules.source_of(request)
        with self._inflight.claim("name:" + request.name, f"volume {request.name!r}"):
            return await self._create_volume(request, filesystem, source)

    async def _create_volume(
        self, request: Any, filesystem: str | None, source: tuple[str, str] | None
    ) -> Any:
        class_name = request.parameters.get("class") or None
        listing, nodes = await gather(self._client.list_datasets(), self._client.list_nodes())
        datasets = listing.datasets
        existing = rules.by_name(datasets, request.name)
        if existing is None:
            try:
                existing = await self._create_new(request, filesystem, source, datasets, nodes)
            except Conflict:
                existing = rules.by_name(await self._datasets(), request.name)
                if existing is None:
                    raise
                existing = (await self._complete([existing]))[0]
                rules.check_existing(existing, request, source, class_name)
        else:
            existing = (await self._complete([existing]))[0]
            rules.check_existing(existing, request, source, class_name)
        return csi.CreateVolumeResponse(volume=self._volume(existing, nodes))

    async def _create_new(
        self,
        request: Any,
        filesystem: str | None,
        source: tuple[str, str] | None,
        datasets: list[Dataset],
        nodes: list[NodeInfo],
    ) -> Dataset:
        class_name = request.parameters.get("class") or None
        default = None if source is not None else self.default_size
        size = rules.size_for(request.capacity_range, default)
        found = await self._source(source, datasets) if source is not None else None
        requirement = (
            request.accessibility_requirements
            if request.HasField("accessibility_requirements") else None
        )
        primary = rules.choose_node(nodes, requirement, size)
        if primary is None and found is None:
            placed_by_class = class_name is not None or (
                default_of(await self._client.list_classes()) is not None
            )
            if not placed_by_class:
                primary = rules.most_free(nodes, size)
                if primary is None:
                    raise CsiError(Code.UNAVAILABLE,
                                   "No live node can take a volume now; start an agent.")
        if class_name is not None and size == self.default_size and not (
            request.capacity_range.required_bytes or request.capacity_range.limit_bytes
        ):
            size = None  # the class's default size applies
        try:
            return await self._client.create_shoal_dataset(
                primary, size, {rules.NAME_KEY: request.name}, filesystem=filesystem,
                source=found, storage_class=class_name,
                access_mode=rules.access_mode_for(request.volume_capabilities),
            )
        except InvalidRequest as e:
            code = Code.OUT_OF_RANGE if "larger than" in e.description else Code.INVALID_ARGUMENT
            raise CsiError(code, e.description) from None
        except Conflict as e:
            if rules.by_name(await self._datasets(), request.name) is not None:
                raise
            raise CsiError(Code.RESOURCE_EXHAUSTED, e.description) from None

    async def _source(self, source: tuple[str, str], datasets: list[Dataset]) -> DataSource:
        kind, text = source
        source_id = rules.parse_volume_id(text)
        if kind == "volume":
            if rules.live(datasets, source_id) is None or source_id is None:
                raise CsiError(Code.NOT_FOUND, f"No source volume {text[:80]!r} to clone.")
            return DataSource(SourceKind.DATASET, source_id)
        try:
            if source_id is None:
                raise NotFound("not a snapshot id")
            snapshot = await self._client.get_snapshot(source_id)
        except NotFound:
            snapshot = None
        if snapshot is None or snapshot.deleted:
            raise CsiError(Code.NOT_FOUND, f"No source snapshot {text[:80]!r} to restore.")
        return DataSource(SourceKind.SNAPSHOT, snapshot.snapshot_id)

    async def DeleteVolume(self, request: Any) -> Any:
        """Delete the dataset (idempotent); FAILED_PRECONDITION while a node has it published."""
        rules.require(request.volume_id, "volume_id")
        dataset_id = rules.parse_volume_id(request.volume_id)
        dataset = rules.live(await self._datasets(), dataset_id)
        if dataset is None:
            return csi.DeleteVolumeResponse()
        with self._inflight.claim(request.volume_id, f"volume {request.volume_id}"):
            holder = await self._holder(dataset.dataset_id)
            if holder is not None:
                raise CsiError(
                    Code.FAILED_PRECONDITION,
                    f"Volume {request.volume_id} is published to node "
                    f"{await self._node_name(holder)}: unpublish it first.",
                )
            readers = (await self._complete([dataset]))[0].readers
            if readers:
                raise CsiError(
                    Code.FAILED_PRECONDITION,
                    f"Volume {request.volume_id} is published read-only to node "
                    f"{await self._node_name(min(readers, key=str))}: unpublish it there first.",
                )
            with contextlib.suppress(NotFound, NotAllowed):
                await self._client.delete_dataset(dataset.dataset_id)
        return csi.DeleteVolumeResponse()

    async def ControllerPublishVolume(self, request: Any) -> Any:
        """Lease the dataset to the node and make it the primary (a bind or a move)."""
        rules.require(request.volume_id, "volume_id")
        rules.require(request.node_id, "node_id")
        rules.require(request.HasField("volume_capability"), "volume_capability")
        rules.check_capabilities([request.volume_capability])
        wanted = rules.volume_uuid(request.volume_id)
        listing, nodes, leases, records = await gather(
            self._client.list_datasets(), self._client.list_nodes(), self._client.list_leases(),
            self._client.node_configuration(UNBOUND, [wanted]),
        )
        dataset = rules.live(listing.datasets, wanted)
        if dataset is None:
            raise CsiError(Code.NOT_FOUND,
                           f"No volume {request.volume_id[:80]!r}: no live dataset.")
        node = rules.parse_volume_id(request.node_id)
        if node is None or all(n.node.uuid != node for n in nodes):
            raise CsiError(Code.NOT_FOUND, f"No node {request.node_id[:80]!r} is registered.")
        dataset = rules.completed(dataset, records.datasets)
        rules.check_access(dataset, [request.volume_capability])
        with self._inflight.claim(request.volume_id, f"volume {request.volume_id}"):
            known = self._readonly.get((dataset.dataset_id, node))
            if known is not None and known != request.readonly:
                raise CsiError(
                    Code.ALREADY_EXISTS,
                    f"Volume {request.volume_id} is published to node {node} "
                    f"{'read-only' if known else 'read-write'}; unpublish it to publish it "
                    "the other way.",
                )
            if dataset.access_mode is AccessMode.ROX and dataset.bound and dataset.primary != node:
                await self._add_reader(dataset, node)
            else:
                await self._publish(dataset, node, rules.holder(leases, dataset.dataset_id))
            self._readonly[dataset.dataset_id, node] = request.readonly
        return csi.ControllerPublishVolumeResponse(publish_context={"node": str(node)})

    async def _publish(self, dataset: Dataset, node: UUID, holder: UUID | None) -> None:
        if holder is not None and holder != node:
            raise CsiError(
                Code.FAILED_PRECONDITION,
                f"Volume {dataset.dataset_id} is published to node "
                f"{await self._node_name(holder)}; unpublish it there first.",
            )
        if holder is None:  # the lease and the move in one write: the agents wake once
            await self._check_limit(node)
            await self._client.acquire_lease(
                dataset.dataset_id, node, None, move=dataset.primary != node
            )
        elif dataset.primary != node:
            await self._client.move_dataset(dataset.dataset_id, node)

    async def _add_reader(self, dataset: Dataset, node: UUID) -> None:
        """Publish a ReadOnlyMany volume bound elsewhere to ``node`` as one of its readers (no
        lease, no move: its primary keeps it; every node mounts it read-only)."""
        try:
            await self._client.add_reader(dataset.dataset_id, node)
        except Conflict as e:
            raise CsiError(Code.FAILED_PRECONDITION, e.description) from None

    async def _check_limit(self, node: UUID) -> None:
        """RESOURCE_EXHAUSTED when ``node`` already has ``max_volumes`` volumes published."""
        if not self.max_volumes:
            return
        held = [lease for lease in await self._client.list_leases() if lease.node_uuid == node]
        if len(held) >= self.max_volumes:
            raise CsiError(
                Code.RESOURCE_EXHAUSTED,
                f"Node {await self._node_name(node)} already has {len(held)} volumes published, "
                f"its limit (--max-volumes {self.max_volumes}); unpublish one first.",
            )

    async def ControllerUnpublishVolume(self, request: Any) -> Any:
        """Release the node's lease (idempotent: a volume not published there is done)."""
        rules.require(request.volume_id, "volume_id")
        dataset_id = rules.parse_volume_id(request.volume_id)
        if dataset_id is None:
            return csi.ControllerUnpublishVolumeResponse()
        with self._inflight.claim(request.volume_id, f"volume {request.volume_id}"):
            leases, records = await gather(
                self._client.list_leases(), self._client.node_configuration(UNBOUND, [dataset_id])
            )
            holder = rules.holder(leases, dataset_id)
            if holder is not None and (not request.node_id or request.node_id == str(holder)):
                with contextlib.suppress(NotFound):
                    await self._client.release_lease(dataset_id)
                self._readonly.pop((dataset_id, holder), None)
            record = next((d for d in records.datasets if d.dataset_id == dataset_id), None)
            for reader in sorted(record.readers if record is not None else (), key=str):
                if not request.node_id or request.node_id == str(reader):
                    with contextlib.suppress(NotFound):
                        await self._client.remove_reader(dataset_id, reader)
                    self._readonly.pop((dataset_id, reader), None)
        return csi.ControllerUnpublishVolumeResponse()

    async def ValidateVolumeCapabilities(self, request: Any) -> Any:
        """Confirm the capabilities when Shoal serves every one for this volume."""
        rules.require(request.volume_id, "volume_id")
        rules.require(len(request.volume_capabilities), "volume_capabilities")
        dataset = (await self._complete([await self._dataset(request.volume_id)]))[0]
        reasons = [rules.unsupported_capability(c) for c in request.volume_capabilities]
        reasons += [
            f"the volume's filesystem is {dataset.filesystem}, not {c.mount.fs_type}"
            for c in request.volume_capabilities
            if c.WhichOneof("access_type") == "mount"
            and c.mount.fs_type not in ("", dataset.filesystem)
            and not dataset.raw
        ]
        reasons.append(rules.access_mismatch(dataset, request.volume_capabilities))
        try:
            rules.check_parameters(request.parameters)
        except CsiError as e:
            reasons.append(e.message)
        problems = [r for r in reasons if r]
        if problems:
            return csi.ValidateVolumeCapabilitiesResponse(message="; ".join(problems))
        confirmed = csi.ValidateVolumeCapabilitiesResponse.Confirmed(
            volume_context=request.volume_context,
            volume_capabilities=request.volume_capabilities,
            parameters=request.parameters,
        )
        return csi.ValidateVolumeCapabilitiesResponse(confirmed=confirmed)

    async def ListVolumes(self, request: Any) -> Any:
        """Every live dataset, by id, a page at a time, with its node and condition."""
        datasets = sorted(
            (d for d in await self._datasets() if not d.deleted and not d.released),
            key=lambda d: str(d.dataset_id),
        )
        chosen, token = rules.page(datasets, request.max_entries, request.starting_token)
        complete, nodes, leases, conditions = await gather(
            Deferred.fromCoroutine(self._complete(chosen)), self._client.list_nodes(),
            self._client.list_leases(), self._client.list_conditions(),
        )
        response = csi.ListVolumesResponse(next_token=token)
        for dataset in complete:
            entry = response.entries.add()
            entry.volume.CopyFrom(self._volume(dataset, nodes))
            holder = rules.holder(leases, dataset.dataset_id)
            entry.status.published_node_ids.extend(rules.published_nodes(dataset, holder))
            entry.status.volume_condition.CopyFrom(
                rules.volume_condition(conditions, dataset.dataset_id)
            )
        return response

    async def ControllerGetVolume(self, request: Any) -> Any:
        """One volume with its node and condition; NOT_FOUND for an unknown id."""
        rules.require(request.volume_id, "volume_id")
        dataset = (await self._complete([await self._dataset(request.volume_id)]))[0]
        response = csi.ControllerGetVolumeResponse()
        response.volume.CopyFrom(self._volume(dataset, await self._client.list_nodes()))
        await self._status(dataset, response.status)
        return response

    async def GetCapacity(self, request: Any) -> Any:
        """Free bytes the live nodes in the topology report (a shared backend counted once)."""
        rules.check_parameters(request.parameters)
        backend = None
        if request.parameters.get("class"):
            backend = (await self._client.get_class(request.parameters["class"])).backend
        unsupported = any(rules.unsupported_capability(c) for c in request.volume_capabilities)
        topology = request.accessible_topology if request.HasField("accessible_topology") else None
        available, largest = rules.capacity_in(await self._client.list_nodes(), topology, backend)
        response = csi.GetCapacityResponse(available_capacity=0 if unsupported else available)
        response.minimum_volume_size.value = MINIMUM_DATASET_SIZE
        if largest is not None:
            response.maximum_volume_size.value = 0 if unsupported else largest
        return response

    async def ControllerGetCapabilities(self, request: Any) -> Any:
        """The RPCs of :data:`CAPABILITIES`."""
        response = csi.ControllerGetCapabilitiesResponse()
        for rpc in CAPABILITIES:
            response.capabilities.add().rpc.type = rpc
        return response

    async def ControllerExpandVolume(self, request: Any) -> Any:
        """Grow the dataset (its primary grows the volume and filesystem online)."""
        rules.require(request.volume_id, "volume_id")
        rules.require(request.HasField("capacity_range"), "capacity_range")
        dataset = await self._dataset(request.volume_id)
        size = rules.size_for(request.capacity_range, None)
        if size is None:
            raise CsiError(Code.INVALID_ARGUMENT, "The capacity range asks for no size.")
        block = (
            request.HasField("volume_capability")
            and request.volume_capability.WhichOneof("access_type") == "block"
        )
        with self._inflight.claim(request.volume_id, f"volume {request.volume_id}"):
            if dataset.maximum_size is None or size > dataset.maximum_size:
                try:
                    dataset = await self._client.resize_dataset(dataset.dataset_id, size)
                except InvalidRequest as e:
                    raise CsiError(Code.OUT_OF_RANGE, e.description) from None
            published = await self._holder(dataset.dataset_id) is not None
        return csi.ControllerExpandVolumeResponse(
            capacity_bytes=dataset.maximum_size or size,
            node_expansion_required=published and not block,
        )
