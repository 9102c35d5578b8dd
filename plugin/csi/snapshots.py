"""
The Controller service's snapshot RPCs: a CSI snapshot is a Shoal snapshot.

A mixin of :class:`~plugin.csi.controller.ControllerService`, which provides
the client, the clock, the in-flight guard and the dataset lookup it uses.
"""

from __future__ import annotations

import contextlib
from typing import Any

from control.client.interface import ShoalClient
from control.errors import Conflict, NotFound
from control.model import Dataset, DatasetSnapshot, Versions
from control.reactor import ReactorTime
from plugin.csi import rules
from plugin.csi.errors import Code, CsiError
from plugin.csi.inflight import InFlight
from plugin.csi.proto import csi_pb2 as csi


class SnapshotRPCs:
    """CreateSnapshot, DeleteSnapshot, ListSnapshots and GetSnapshot."""

    _client: ShoalClient
    _clock: ReactorTime
    _inflight: InFlight
    snapshot_wait: float

    async def _dataset(self, volume_id: str) -> Dataset:
        raise NotImplementedError

    async def CreateSnapshot(self, request: Any) -> Any:
        """Snapshot the dataset by name (idempotent), waiting a while for it to be ready."""
        rules.require(request.source_volume_id, "source_volume_id")
        rules.require(request.name, "name")
        dataset = await self._dataset(request.source_volume_id)
        with self._inflight.claim("snapshot:" + request.name, f"snapshot {request.name!r}"):
            try:
                snapshot = await self._client.create_snapshot(dataset.dataset_id, request.name)
            except Conflict:
                named = [
                    s for s in await self._client.list_snapshots()
                    if s.name == request.name and not s.deleted
                ]
                if named and named[0].dataset_id != dataset.dataset_id:
                    raise CsiError(
                        Code.ALREADY_EXISTS,
                        f"Snapshot {request.name!r} already exists, of volume "
                        f"{named[0].dataset_id}: use another name.",
                    ) from None
                raise
            snapshot = await self._ready(snapshot)
        return csi.CreateSnapshotResponse(snapshot=rules.snapshot_message(snapshot))

    async def _ready(self, snapshot: DatasetSnapshot) -> DatasetSnapshot:
        """``snapshot`` once ready, or as it is after ``snapshot_wait`` seconds (woken by the
        watch)."""
        deadline = self._clock.seconds() + self.snapshot_wait
        seen = Versions(0, 0)
        while not snapshot.ready and not snapshot.deleted:
            left = deadline - self._clock.seconds()
            if left <= 0:
                break
            seen = await self._client.watch(seen.configuration, seen.state, min(left, 30.0))
            snapshot = await self._client.get_snapshot(snapshot.snapshot_id)
        return snapshot

    async def DeleteSnapshot(self, request: Any) -> Any:
        """Delete a snapshot (idempotent)."""
        rules.require(request.snapshot_id, "snapshot_id")
        snapshot_id = rules.parse_volume_id(request.snapshot_id)
        if snapshot_id is not None:
            with contextlib.suppress(NotFound):
                await self._client.delete_snapshot(snapshot_id)
        return csi.DeleteSnapshotResponse()

    async def ListSnapshots(self, request: Any) -> Any:
        """Live snapshots, oldest first, filtered by id or source volume, a page at a time."""
        snapshots = [s for s in await self._client.list_snapshots() if not s.deleted]
        if request.snapshot_id:
            snapshots = [s for s in snapshots if str(s.snapshot_id) == request.snapshot_id]
        if request.source_volume_id:
            snapshots = [s for s in snapshots if str(s.dataset_id) == request.source_volume_id]
        snapshots.sort(key=lambda s: (s.created, str(s.snapshot_id)))
        chosen, token = rules.page(snapshots, request.max_entries, request.starting_token)
        response = csi.ListSnapshotsResponse(next_token=token)
        for snapshot in chosen:
            response.entries.add().snapshot.CopyFrom(rules.snapshot_message(snapshot))
        return response

    async def GetSnapshot(self, request: Any) -> Any:
        """One snapshot; NOT_FOUND for an unknown or deleted one."""
        rules.require(request.snapshot_id, "snapshot_id")
        snapshot_id = rules.parse_volume_id(request.snapshot_id)
        try:
            if snapshot_id is None:
                raise NotFound("not a snapshot id")
            snapshot = await self._client.get_snapshot(snapshot_id)
        except NotFound:
            snapshot = None
        if snapshot is None or snapshot.deleted:
            raise CsiError(Code.NOT_FOUND, f"No snapshot {request.snapshot_id[:80]!r}.")
        return csi.GetSnapshotResponse(snapshot=rules.snapshot_message(snapshot))
