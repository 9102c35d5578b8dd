"""
The CSI Node service: a volume on this node, staged, published, measured and grown.

The agent on this node attaches and mounts a dataset once it is the dataset's
primary (ControllerPublishVolume made it so). NodeStageVolume waits, woken by
the control service's watch, until the agent reports it mounted here, checks
that mount on this node (:class:`~plugin.hostmounts.MountGuard`), and
bind-mounts it at the staging path. NodePublishVolume bind-mounts the staging
path at the target path (read-only when asked); for block access it binds the
device node under the agent's mount onto a file at the target path instead.
Methods run on the reactor; every mount, stat and path check goes to
``run_blocking``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol
from uuid import UUID

from control.client.interface import ShoalClient, StateDataset
from control.client.waiting import Reached, wait_for_state
from control.model import UNBOUND, AccessMode, Dataset, Versions
from control.reactor import ReactorTime
from control.runners import Runner
from plugin.common.mounted import wait_mounted
from plugin.csi import hostfs, rules
from plugin.csi.errors import Code, CsiError
from plugin.csi.gather import gather
from plugin.csi.inflight import InFlight
from plugin.csi.proto import csi_pb2 as csi
from plugin.hostmounts import MountGuard, UntrustedMount, expected_path

RPC = csi.NodeServiceCapability.RPC.Type
CAPABILITIES = (
    RPC.STAGE_UNSTAGE_VOLUME,
    RPC.GET_VOLUME_STATS,
    RPC.EXPAND_VOLUME,
    RPC.VOLUME_CONDITION,
    RPC.SINGLE_NODE_MULTI_WRITER,
)
"""What NodeGetCapabilities advertises; every one is implemented below."""


class ThisNode(Protocol):
    """This node: its uuid when called, and its agent's mount root (:class:`AgentNode`)."""

    def __call__(self) -> UUID:
        """This node's uuid, or a ShoalError saying why it is not known yet."""
        ...

    def mount_root(self) -> str:
        """Where this node's agent mounts datasets."""
        ...


def is_block(capability: Any) -> bool:
    """Whether a VolumeCapability asks for block access."""
    return bool(capability.WhichOneof("access_type") == "block")


class NodeService:
    """The Node RPCs for ``node``; ``stage_timeout`` bounds the wait for the agent's mount."""

    def __init__(
        self,
        client: ShoalClient,
        clock: ReactorTime,
        node: ThisNode,
        guard: MountGuard,
        run_blocking: Runner,
        stage_timeout: float = 100.0,
        max_volumes: int = 0,
    ) -> None:
        self._client = client
        self._clock = clock
        self._node = node
        self._guard = guard
        self._run = run_blocking
        self.stage_timeout = stage_timeout
        self.max_volumes = max_volumes
        self._inflight = InFlight()
        self._targets: dict[str, frozenset[str]] = {}
        """The target paths each volume is published at, as this process published them."""

    async def _dataset_id(self, volume_id: str) -> UUID:
        """The live dataset id of ``volume_id``, or NOT_FOUND."""
        datasets = (await self._client.list_datasets()).datasets
        found = rules.live(datasets, rules.parse_volume_id(volume_id))
        if found is None:
            raise CsiError(Code.NOT_FOUND, f"No volume {volume_id[:80]!r}: no live dataset.")
        return found.dataset_id

    async def _verify(self, dataset_id: UUID, path: str) -> None:
        """FAILED_PRECONDITION, saying why, unless this node's checks accept ``path``."""
        try:
            await self._run(self._guard.verify, dataset_id, path)
        except UntrustedMount as e:
            raise CsiError(Code.FAILED_PRECONDITION, e.description) from None

    # -- staging ----------------------------------------------------------------------

    async def NodeStageVolume(self, request: Any) -> Any:
        """Wait for the agent's mount here, then bind it at the staging path."""
        rules.require(request.volume_id, "volume_id")
        rules.require(request.staging_target_path, "staging_target_path")
        rules.require(request.HasField("volume_capability"), "volume_capability")
        rules.check_capabilities([request.volume_capability])
        wanted = rules.volume_uuid(request.volume_id)
        listing, leases, records = await gather(
            self._client.list_datasets(), self._client.list_leases(),
            self._client.node_configuration(UNBOUND, [wanted]),
        )
        dataset = rules.live(listing.datasets, wanted)
        if dataset is None:
            raise CsiError(Code.NOT_FOUND,
                           f"No volume {request.volume_id[:80]!r}: no live dataset.")
        dataset = rules.completed(dataset, records.datasets)
        rules.check_access(dataset, [request.volume_capability])
        with self._inflight.claim(request.volume_id, f"volume {request.volume_id}"):
            await self._stage(dataset, rules.holder(leases, dataset.dataset_id), request)
        return csi.NodeStageVolumeResponse()

    async def _stage(self, dataset: Dataset, holder: UUID | None, request: Any) -> None:
        node = self._node()
        dataset_id = dataset.dataset_id
        reader = node in dataset.readers
        if dataset.primary != node and holder != node and not reader:
            raise CsiError(
                Code.FAILED_PRECONDITION,
                f"Volume {dataset_id} is not published to this node ({node}): "
                "ControllerPublishVolume it here first.",
            )
        if is_block(request.volume_capability):
            await self._raw_device(dataset_id, node)
            return
        # A ReadOnlyMany reader's mount is in its own report (its primary's report hides it).
        reported = await wait_mounted(self._client, self._clock, dataset_id, node,
                                      self.stage_timeout, own=reader)
        await self._verify(dataset_id, reported)
        await self._run(hostfs.make_directory, request.staging_target_path)
        await self._run(hostfs.bind, reported, request.staging_target_path,
                        dataset.access_mode is AccessMode.ROX)

    async def _raw_device(self, dataset_id: UUID, node: UUID) -> str:
        """The device of the raw dataset, once the agent reports it attached here (woken by
        the watch), checked on this node: a block device that nothing mounts."""
        device = await wait_for_state(
            self._client, self._clock, rules.attached_check(dataset_id, node),
            self.stage_timeout, dataset_id=dataset_id,
        )
        found: str = await self._run(hostfs.raw_device, device)
        return found

    async def NodeUnstageVolume(self, request: Any) -> Any:
        """Unmount the staging path (idempotent); the agent keeps its own mount. Refused
        (FAILED_PRECONDITION) while a raw block volume's device is still bound at a target
        path: its publications go first, so nothing detaches a device a pod uses."""
        rules.require(request.volume_id, "volume_id")
        rules.require(request.staging_target_path, "staging_target_path")
        with self._inflight.claim(request.volume_id, f"volume {request.volume_id}"):
            await self._check_unpublished(request.volume_id)
            await self._run(hostfs.unmount_all, request.staging_target_path)
        return csi.NodeUnstageVolumeResponse()

    async def _check_unpublished(self, volume_id: str) -> None:
        """FAILED_PRECONDITION while the device this node's agent reports for the volume is
        bind-mounted somewhere (a block publication not undone yet)."""
        dataset_id = rules.parse_volume_id(volume_id)
        if dataset_id is None:
            return
        states = await self._client.list_state_datasets(self._node())
        device = next((s.device for s in states if s.dataset_id == dataset_id and s.device), None)
        bound = [] if device is None else await self._run(hostfs.device_bound_at, device)
        if bound:
            raise CsiError(
                Code.FAILED_PRECONDITION,
                f"Volume {volume_id} is still published at {bound[0]} (its device {device} is "
                "bound there): NodeUnpublishVolume it first.",
            )

    # -- publishing -------------------------------------------------------------------

    async def NodePublishVolume(self, request: Any) -> Any:
        """Bind the staged volume (or its device, for block) at the target path."""
        rules.require(request.volume_id, "volume_id")
        rules.require(request.staging_target_path, "staging_target_path")
        rules.require(request.target_path, "target_path")
        rules.require(request.HasField("volume_capability"), "volume_capability")
        rules.check_capabilities([request.volume_capability])
        dataset_id = await self._dataset_id(request.volume_id)
        readonly = request.readonly or request.volume_capability.access_mode.mode in (
            rules.MODES.SINGLE_NODE_READER_ONLY, rules.MODES.MULTI_NODE_READER_ONLY
        )
        with self._inflight.claim(request.volume_id, f"volume {request.volume_id}"):
            await self._check_single_writer(request, dataset_id)
            if is_block(request.volume_capability):
                device = await self._raw_device(dataset_id, self._node())
                await self._run(hostfs.make_file, request.target_path)
                await self._run(hostfs.bind, device, request.target_path, readonly)
            else:
                staging = request.staging_target_path
                if not await self._run(hostfs.is_mount, staging):
                    raise CsiError(
                        Code.FAILED_PRECONDITION,
                        f"Volume {request.volume_id} is not staged at {staging}: "
                        "NodeStageVolume it first.",
                    )
                await self._run(hostfs.make_directory, request.target_path)
                await self._run(hostfs.bind, staging, request.target_path, readonly)
            known = self._targets.get(request.volume_id, frozenset())
            self._targets[request.volume_id] = known | {request.target_path}
        return csi.NodePublishVolumeResponse()

    async def _check_single_writer(self, request: Any, dataset_id: UUID) -> None:
        """FAILED_PRECONDITION: a SINGLE_NODE_SINGLE_WRITER volume published at another path,
        as this process published it or, for mount access, as the mount table shows (so a
        restarted driver still knows)."""
        if request.volume_capability.access_mode.mode != rules.MODES.SINGLE_NODE_SINGLE_WRITER:
            return
        others = set(self._targets.get(request.volume_id, frozenset()) - {request.target_path})
        if not is_block(request.volume_capability):
            agent = expected_path(self._node.mount_root(), dataset_id)
            known = {agent, request.staging_target_path, request.target_path}
            others |= set(await self._run(hostfs.other_mounts, agent, known))
        if others:
            raise CsiError(
                Code.FAILED_PRECONDITION,
                f"Volume {request.volume_id} is single-writer and already published at "
                f"{sorted(others)[0]}; unpublish it there first.",
            )

    async def NodeUnpublishVolume(self, request: Any) -> Any:
        """Unmount the target path and remove it (idempotent)."""
        rules.require(request.volume_id, "volume_id")
        rules.require(request.target_path, "target_path")
        with self._inflight.claim(request.volume_id, f"volume {request.volume_id}"):
            await self._run(hostfs.unmount_all, request.target_path)
            await self._run(hostfs.remove, request.target_path)
            left = self._targets.get(request.volume_id, frozenset()) - {request.target_path}
            if left:
                self._targets[request.volume_id] = left
            else:
                self._targets.pop(request.volume_id, None)
        return csi.NodeUnpublishVolumeResponse()

    # -- stats and expansion ----------------------------------------------------------

    async def NodeGetVolumeStats(self, request: Any) -> Any:
        """Bytes and inodes at the volume path (bytes only for block), and the condition."""
        rules.require(request.volume_id, "volume_id")
        rules.require(request.volume_path, "volume_path")
        dataset_id = await self._dataset_id(request.volume_id)
        path = request.volume_path
        if not await self._run(hostfs.exists, path):
            raise CsiError(Code.NOT_FOUND, f"Nothing is at the volume path {path[:200]!r}.")
        response = csi.NodeGetVolumeStatsResponse()
        if await self._run(hostfs.is_block, path):
            size = await self._run(hostfs.device_size, path)
            response.usage.add(total=size, unit=csi.VolumeUsage.BYTES)
        else:
            total, used, available, inodes, inodes_used, inodes_free = await self._run(
                hostfs.usage, path
            )
            response.usage.add(total=total, used=used, available=available,
                               unit=csi.VolumeUsage.BYTES)
            response.usage.add(total=inodes, used=inodes_used, available=inodes_free,
                               unit=csi.VolumeUsage.INODES)
        conditions = await self._client.list_conditions(dataset_id)
        response.volume_condition.CopyFrom(rules.volume_condition(conditions, dataset_id))
        return response

    async def NodeExpandVolume(self, request: Any) -> Any:
        """Wait until this node shows the grown size: the agent grows the volume, and the
        filesystem of a mount volume (online); for block access, the device's own size."""
        rules.require(request.volume_id, "volume_id")
        rules.require(request.volume_path, "volume_path")
        dataset_id = await self._dataset_id(request.volume_id)
        if not await self._run(hostfs.exists, request.volume_path):
            raise CsiError(Code.NOT_FOUND, f"Nothing is at {request.volume_path[:200]!r}.")
        datasets = (await self._client.list_datasets()).datasets
        dataset = rules.live(datasets, dataset_id)
        wanted = max(request.capacity_range.required_bytes,
                     (dataset.maximum_size if dataset else None) or 0)
        with self._inflight.claim(request.volume_id, f"volume {request.volume_id}"):
            if await self._run(hostfs.is_block, request.volume_path):
                size = await self._device_grown(request.volume_path, wanted)
            else:
                size = await wait_for_state(
                    self._client, self._clock, self._grown(dataset_id, wanted),
                    self.stage_timeout, dataset_id=dataset_id,
                )
        return csi.NodeExpandVolumeResponse(capacity_bytes=size)

    def _grown(self, dataset_id: UUID, wanted: int) -> Any:
        node = self._node()

        def grown(states: Sequence[StateDataset]) -> Reached[int] | str:
            state = next((s for s in states if s.dataset_id == dataset_id), None)
            size = None if state is None else state.maximum_size
            if state is not None and state.primary == node and (size or 0) >= wanted:
                return Reached(size or wanted)
            return f"the agent to report volume {dataset_id} grown to {wanted} bytes here"

        return grown

    async def _device_grown(self, path: str, wanted: int) -> int:
        """The size of the device at ``path`` once it is at least ``wanted`` bytes, looked at
        again whenever the cluster changes (the agent grows the volume)."""
        deadline = self._clock.seconds() + self.stage_timeout
        seen = Versions(0, 0)
        while True:
            size: int = await self._run(hostfs.device_size, path)
            left = deadline - self._clock.seconds()
            if size >= wanted or left <= 0:
                break
            seen = await self._client.watch(seen.configuration, seen.state, min(left, 5.0))
        if size < wanted:
            raise CsiError(Code.DEADLINE_EXCEEDED,
                           f"The device at {path} is still {size} bytes, not {wanted}: the agent "
                           "has not grown the volume yet; retry.")
        return size

    # -- about this node --------------------------------------------------------------

    async def NodeGetCapabilities(self, request: Any) -> Any:
        """The RPCs of :data:`CAPABILITIES`."""
        response = csi.NodeGetCapabilitiesResponse()
        for rpc in CAPABILITIES:
            response.capabilities.add().rpc.type = rpc
        return response

    async def NodeGetInfo(self, request: Any) -> Any:
        """This node's uuid, its labels as topology segments, and its volume limit."""
        node = self._node()
        info = next((n for n in await self._client.list_nodes() if n.node.uuid == node), None)
        if info is None:
            raise CsiError(Code.UNAVAILABLE,
                           f"Node {node} is not registered yet: is its agent running?")
        response = csi.NodeGetInfoResponse(
            node_id=str(node), max_volumes_per_node=self.max_volumes
        )
        response.accessible_topology.segments.update(rules.segments(info))
        return response
