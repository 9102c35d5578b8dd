"""
Test doubles for the plugin: a simulated node agent and an in-memory mount store.

:class:`FakeAgent` plays one node's agent against any client (tests use
:class:`~control.client.testing.MemoryControl`'s): each
:meth:`~FakeAgent.converge` reports as mounted, at ``<mount-root>/<dataset id>``,
the live datasets whose primary is its node (and the ReadOnlyMany datasets it
reads), except those another node still reports attached (as a real agent
waits for the old primary to let go), so a dataset moved away disappears from
the old node's report first. Tests call it when they want the "agent" to act,
which lets them check that a waiting Mount is woken by the report. It also
plays this node's kernel mount table: what it reports mounted is mounted (from
``/dev/fake/<dataset id>``), which :meth:`FakeAgent.guard` checks as the real
:class:`~plugin.hostmounts.MountGuard` checks ``/proc/self/mountinfo``.
"""

from __future__ import annotations

import os
from uuid import UUID

from control.client.interface import ShoalClient
from control.model import DatasetState, NodeState, VolumeStatus
from plugin.hostmounts import MountEntry, MountGuard
from plugin.mounts import MountTable


class FakeAgent:
    """One simulated node agent that mounts what the configuration gives its node."""

    def __init__(self, client: ShoalClient, node: UUID, name: str, mount_root: str) -> None:
        self.client = client
        self.node = node
        self.name = name
        self.mount_root = mount_root
        self.kernel_mounts: list[MountEntry] = []

    async def register(self) -> None:
        """Register the node, as an agent does when it starts."""
        await self.client.register_node(self.node, self.name, None, {}, self.mount_root)

    def guard(self) -> MountGuard:
        """This node's mount checks over the fake mount table (block devices: ``/dev/...``)."""
        return MountGuard(
            lambda: self.mount_root,
            read_mounts=lambda: list(self.kernel_mounts),
            block_device=lambda source: source.startswith("/dev/"),
            realpath=lambda path: path,
        )

    async def converge(self) -> None:
        """Report every live dataset whose primary is this node as mounted here."""
        configuration = await self.client.node_configuration(self.node)
        elsewhere = {
            state.dataset_id
            for state in await self.client.list_state_datasets()
            if state.primary is not None and state.primary != self.node
        }
        datasets = {
            d.dataset_id: DatasetState(
                dataset_id=d.dataset_id,
                status=VolumeStatus.MOUNTED,
                maximum_size=d.maximum_size,
                path=os.path.join(self.mount_root, str(d.dataset_id)),
            )
            for d in configuration.datasets
            if not d.deleted
            and (
                (d.primary == self.node and d.dataset_id not in elsewhere)
                or (d.read_only and self.node in d.holders())
            )
        }
        report = NodeState(
            node_uuid=self.node, generation=configuration.generation, datasets=datasets
        )
        self.kernel_mounts = [
            MountEntry(str(state.path), f"/dev/fake/{state.dataset_id}", "ext4")
            for state in datasets.values()
        ]
        await self.client.report_state(report)


class MemoryMounts:
    """A :class:`~plugin.volumes.MountStore` in memory, counting saves."""

    def __init__(self, table: MountTable | None = None) -> None:
        self.table = table if table is not None else MountTable()
        self.saves = 0

    def load(self) -> MountTable:
        """The table last saved."""
        return self.table

    def save(self, table: MountTable) -> None:
        """Keep ``table``."""
        self.table = table
        self.saves += 1


def mount_path(mount_root: str, dataset_id: UUID) -> str:
    """Where a :class:`FakeAgent` with ``mount_root`` mounts ``dataset_id``."""
    return os.path.join(mount_root, str(dataset_id))
