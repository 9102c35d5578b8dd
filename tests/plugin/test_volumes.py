"""The volume service against the fake client and simulated agents."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from twisted.internet.defer import Deferred

from control.classes import StorageClass
from control.client.http import HTTPClient
from control.errors import Conflict, InvalidRequest, NotFound, ShoalError
from control.model import UNBOUND, AccessMode, Condition, ConditionKind, Dataset, NodeState
from control.topology import HOSTNAME, BindingMode, Requirement, TopologyTerm
from plugin.mounts import MountFile, MountTable
from plugin.testing import MemoryMounts, mount_path
from plugin.volumes import VolumeService

from .harness import (
    MOUNT_TIMEOUT,
    NODE1,
    NODE2,
    START,
    Cluster,
    failure,
    make_cluster,
    result,
    start,
)

GiB = 1024**3


@pytest.fixture
def cluster() -> Cluster:
    """Two nodes with a plugin service each."""
    return make_cluster()


def create(cluster: Cluster, node: UUID, name: str = "vol", **opts: str) -> Dataset:
    """Create volume ``name`` from ``node`` and return its dataset."""
    result(cluster.services[node].create(name, opts))
    return next(d for d in cluster.datasets() if d.metadata.get("name") == name)


class TestCreate:
    """Create makes one named dataset on this node."""

    def test_creates_on_this_node_with_the_name(self, cluster: Cluster) -> None:
        """The dataset's primary is this node and its metadata carries the name."""
        dataset = create(cluster, NODE2, "data", size="1G")
        assert (dataset.primary, dataset.maximum_size) == (NODE2, GiB)

    def test_default_size_applies(self, cluster: Cluster) -> None:
        """Without a size option the configured default is used."""
        cluster.services[NODE1].default_size = 2 * GiB
        assert create(cluster, NODE1).maximum_size == 2 * GiB

    def test_existing_name_is_accepted_once(self, cluster: Cluster) -> None:
        """Creating the same name again, from any node, keeps the one dataset."""
        first = create(cluster, NODE1)
        assert create(cluster, NODE2) == first
        assert len(cluster.datasets()) == 1

    def test_unknown_option_creates_nothing(self, cluster: Cluster) -> None:
        """An unknown option is refused before anything is written."""
        error = failure(start(cluster.services[NODE1].create("vol", {"fss": "xfs"})))
        assert isinstance(error, InvalidRequest) and "size" in error.description
        assert cluster.datasets() == []

    def test_invalid_name_is_refused(self, cluster: Cluster) -> None:
        """A name that could be a path is refused."""
        error = failure(start(cluster.services[NODE1].create("../etc", {})))
        assert isinstance(error, InvalidRequest)

    def test_concurrent_create_ends_with_one_dataset(self) -> None:
        """When another node wins the race for a name, the 409 makes Create accept its dataset."""

        class Racing(HTTPClient):
            """A client where node2 creates the same name just before our write lands."""

            raced = False

            def create_dataset(self, primary: UUID, *args: Any, **kw: Any) -> Any:
                if not self.raced:
                    self.raced = True
                    result(super().create_dataset(NODE2, None, {"name": "vol"}))
                return super().create_dataset(primary, *args, **kw)

        cluster = make_cluster(Racing)
        result(cluster.services[NODE1].create("vol", {}))
        assert cluster.client.raced  # type: ignore[attr-defined]
        assert [d.primary for d in cluster.datasets()] == [NODE2]


class TestMount:
    """Mount brings the volume here, holds its lease, and waits for the agent."""

    def test_mount_on_primary_waits_for_the_agent_report(self, cluster: Cluster) -> None:
        """The Mount answers only when the agent reports the volume mounted, with no timer."""
        dataset = create(cluster, NODE1)
        d = start(cluster.services[NODE1].mount("vol", "c1"))
        assert not d.called
        cluster.converge(NODE1)
        assert result(d) == mount_path("/mnt/node1", dataset.dataset_id)
        assert cluster.lease_holder(dataset.dataset_id) == NODE1
        assert cluster.services[NODE1].table.count("vol") == 1

    def test_lease_is_recorded_before_it_is_taken(self) -> None:
        """A crash right after acquiring the lease cannot leak it: the table already names it."""
        recorded: list[dict[str, UUID]] = []

        class Recording(HTTPClient):
            """Notes what the plugin had persisted when it asked for the lease."""

            def acquire_lease(self, *args: Any, **kw: Any) -> Any:
                recorded.append(dict(cluster.mounts[NODE1].table.leases))
                return super().acquire_lease(*args, **kw)

        cluster = make_cluster(Recording)
        dataset = create(cluster, NODE1)
        d = start(cluster.services[NODE1].mount("vol", "c1"))
        cluster.converge(NODE1)
        result(d)
        assert recorded == [{"vol": dataset.dataset_id}]

    def test_mount_moves_a_free_volume_here(self, cluster: Cluster) -> None:
        """A volume on another node with no lease is leased here, moved, then mounted."""
        dataset = create(cluster, NODE2)
        cluster.converge(NODE2)
        d = start(cluster.services[NODE1].mount("vol", "c1"))
        assert cluster.lease_holder(dataset.dataset_id) == NODE1
        assert cluster.datasets()[0].primary == NODE1
        cluster.converge(NODE1)  # node2 has not let go yet
        assert not d.called
        cluster.converge(NODE2)
        assert not d.called and cluster.mounted_on(dataset.dataset_id) == []
        cluster.converge(NODE1)
        assert cluster.mounted_on(dataset.dataset_id) == [NODE1]
        assert result(d) == mount_path("/mnt/node1", dataset.dataset_id)

    def test_mount_elsewhere_fails_at_once_while_in_use(self, cluster: Cluster) -> None:
        """While a container on node2 uses the volume, node1's Mount fails naming node2."""
        dataset = create(cluster, NODE2)
        cluster.converge(NODE2)
        result(cluster.services[NODE2].mount("vol", "c2"))
        error = failure(start(cluster.services[NODE1].mount("vol", "c1")))
        assert isinstance(error, Conflict)
        assert f"node2 ({NODE2})" in error.description
        assert cluster.datasets()[0].primary == NODE2
        assert cluster.lease_holder(dataset.dataset_id) == NODE2
        assert cluster.services[NODE1].table == MountTable()

    def test_mount_of_unknown_volume(self, cluster: Cluster) -> None:
        """Mounting a name that is no volume fails with "no such volume"."""
        error = failure(start(cluster.services[NODE1].mount("ghost", "c1")))
        assert isinstance(error, NotFound) and "no such volume" in error.description

    def test_timeout_says_what_it_waits_for_and_gives_the_lease_back(
        self, cluster: Cluster
    ) -> None:
        """A Mount that times out names the node still holding the volume and frees it."""
        dataset = create(cluster, NODE2)
        cluster.converge(NODE2)
        d = start(cluster.services[NODE1].mount("vol", "c1"))
        cluster.clock.advance(MOUNT_TIMEOUT - 1)
        assert not d.called
        cluster.clock.advance(1)
        error = failure(d)
        assert isinstance(error, ShoalError)
        assert "Timed out after 60 s" in error.description
        assert f"still attached to node node2 ({NODE2})" in error.description
        assert cluster.lease_holder(dataset.dataset_id) is None
        assert cluster.services[NODE1].table == MountTable()

    def test_permanent_agent_error_fails_the_mount_at_once(self, cluster: Cluster) -> None:
        """An agent reporting a permanent error ends the Mount with its reason, lease freed."""
        dataset = create(cluster, NODE1)
        d = start(cluster.services[NODE1].mount("vol", "c1"))
        assert not d.called
        too_large = Condition(dataset.dataset_id, ConditionKind.ERROR, "too_large",
                              "create failed: File too large", START, "create", 1, True)
        report = NodeState(NODE1, era=None, generation=2, conditions=(too_large,))
        result(cluster.client.report_state(report))
        cluster.clock.advance(0)
        error = failure(d)
        assert isinstance(error, ShoalError)
        assert error.description.startswith(
            f"Volume 'vol' cannot be mounted: node node1 ({NODE1}) reports create failed: "
            "File too large."
        )
        assert cluster.lease_holder(dataset.dataset_id) is None

    def test_another_nodes_permanent_error_does_not_end_the_mount(
        self, cluster: Cluster
    ) -> None:
        """A permanent error another node reports for the dataset (a stale epoch of a node it
        has left) does not end a Mount waiting on this node; this node's mount does."""
        dataset = create(cluster, NODE1)
        d = start(cluster.services[NODE1].mount("vol", "c1"))
        stale = Condition(dataset.dataset_id, ConditionKind.ERROR, "stale_epoch",
                          "attach failed: stale epoch", START, "attach", 1, True)
        result(cluster.client.report_state(
            NodeState(NODE2, era=None, generation=2, conditions=(stale,))))
        cluster.clock.advance(0)
        assert not d.called
        cluster.converge(NODE1)
        cluster.clock.advance(0)
        assert isinstance(result(d), str)

    def test_timeout_without_any_report(self, cluster: Cluster) -> None:
        """With no agent report at all, the timeout message says so."""
        create(cluster, NODE1)
        d = start(cluster.services[NODE1].mount("vol", "c1"))
        cluster.clock.advance(MOUNT_TIMEOUT)
        assert "not yet reported by any agent" in failure(d).args[0]

    def test_cancelled_mount_is_not_counted(self, cluster: Cluster) -> None:
        """A Mount abandoned by its caller leaves no user and no lease behind."""
        dataset = create(cluster, NODE1)
        d = start(cluster.services[NODE1].mount("vol", "c1"))
        d.cancel()
        failure(d)
        assert cluster.lease_holder(dataset.dataset_id) is None
        assert cluster.services[NODE1].table == MountTable()


class TestReferenceCounts:
    """The lease is held while any Mount ID uses the volume on this node."""

    def test_lease_released_at_the_last_unmount(self, cluster: Cluster) -> None:
        """Two IDs mount; the lease stays after the first Unmount and goes after the last."""
        dataset = create(cluster, NODE1)
        cluster.converge(NODE1)
        service = cluster.services[NODE1]
        result(service.mount("vol", "create"))
        result(service.mount("vol", "start"))
        result(service.unmount("vol", "create"))
        assert cluster.lease_holder(dataset.dataset_id) == NODE1
        result(service.unmount("vol", "start"))
        assert cluster.lease_holder(dataset.dataset_id) is None

    def test_unmount_finishes_when_the_caller_hangs_up(self) -> None:
        """A cancelled Unmount (Podman gave up) still forgets the ID and releases the lease."""
        gate: list[Deferred[Any]] = []

        class Slow(HTTPClient):
            """A control service whose lease release answers only when the test says so."""

            def release_lease(self, dataset_id: UUID) -> Any:
                release = super().release_lease
                later: Deferred[Any] = Deferred()
                gate.append(later)
                return later.addCallback(lambda _: result(release(dataset_id)))

        cluster = make_cluster(Slow)
        dataset = create(cluster, NODE1)
        cluster.converge(NODE1)
        service = cluster.services[NODE1]
        result(service.mount("vol", "c1"))
        d = start(service.unmount("vol", "c1"))
        d.cancel()
        failure(d)
        gate[0].callback(None)
        assert cluster.lease_holder(dataset.dataset_id) is None
        assert service.table.count("vol") == 0 and service.table.leases == {}

    def test_same_id_twice_counts_once(self, cluster: Cluster) -> None:
        """Podman's one ID per volume: one Unmount ends it, however many runs came before."""
        dataset = create(cluster, NODE1)
        cluster.converge(NODE1)
        service = cluster.services[NODE1]
        result(service.mount("vol", "podman"))
        result(service.mount("vol", "podman"))
        result(service.unmount("vol", "podman"))
        assert cluster.lease_holder(dataset.dataset_id) is None

    def test_unknown_unmount_is_harmless(self, cluster: Cluster) -> None:
        """An Unmount of something never mounted succeeds and changes nothing."""
        result(cluster.services[NODE1].unmount("vol", "nobody"))
        assert cluster.services[NODE1].table == MountTable()

    def test_counts_survive_a_restart(self, cluster: Cluster, tmp_path: str) -> None:
        """A new plugin process on the same state dir keeps the users and the lease."""
        dataset = create(cluster, NODE1)
        cluster.converge(NODE1)
        result(cluster.service(NODE1, MountFile(str(tmp_path))).mount("vol", "c1"))
        restarted = cluster.service(NODE1, MountFile(str(tmp_path)))
        result(restarted.release_unused())
        assert cluster.lease_holder(dataset.dataset_id) == NODE1
        assert failure(start(cluster.services[NODE1].remove("vol"))).args
        result(restarted.unmount("vol", "c1"))
        assert cluster.lease_holder(dataset.dataset_id) is None

    def test_restart_releases_leases_nobody_uses(self, cluster: Cluster) -> None:
        """A lease left behind with no users is released when the plugin starts."""
        dataset = create(cluster, NODE1)
        result(cluster.client.acquire_lease(dataset.dataset_id, NODE1, None))
        table = MountTable().leased("vol", dataset.dataset_id)
        cluster.mounts[NODE1].save(table)
        result(cluster.service(NODE1).release_unused())
        assert cluster.lease_holder(dataset.dataset_id) is None
        assert cluster.mounts[NODE1].table == MountTable()

    def test_never_releases_another_nodes_lease(self, cluster: Cluster) -> None:
        """A stale entry for a volume now leased by another node leaves that lease alone."""
        dataset = create(cluster, NODE2)
        result(cluster.client.acquire_lease(dataset.dataset_id, NODE2, None))
        cluster.mounts[NODE1].save(MountTable().leased("vol", dataset.dataset_id))
        result(cluster.service(NODE1).release_unused())
        assert cluster.lease_holder(dataset.dataset_id) == NODE2


class TestRemove:
    """Remove deletes the dataset unless something uses it."""

    def test_removes_an_unused_volume(self, cluster: Cluster) -> None:
        """An unused volume is deleted and is gone for Get."""
        create(cluster, NODE1)
        result(cluster.services[NODE2].remove("vol"))
        assert cluster.datasets() == []
        assert isinstance(failure(start(cluster.services[NODE1].get("vol"))), NotFound)

    def test_refused_while_used_here(self, cluster: Cluster) -> None:
        """A volume mounted by a container on this node is not removed."""
        create(cluster, NODE1)
        cluster.converge(NODE1)
        result(cluster.services[NODE1].mount("vol", "c1"))
        error = failure(start(cluster.services[NODE1].remove("vol")))
        assert isinstance(error, Conflict) and "this node" in error.description
        assert len(cluster.datasets()) == 1

    def test_refused_while_used_on_another_node(self, cluster: Cluster) -> None:
        """A volume in use on another node is not removed, and the message names the node."""
        create(cluster, NODE1)
        cluster.converge(NODE1)
        result(cluster.services[NODE1].mount("vol", "c1"))
        error = failure(start(cluster.services[NODE2].remove("vol")))
        assert isinstance(error, Conflict) and "node1" in error.description

    def test_unknown_volume(self, cluster: Cluster) -> None:
        """Removing an unknown name says there is no such volume."""
        error = failure(start(cluster.services[NODE1].remove("ghost")))
        assert isinstance(error, NotFound) and "no such volume" in error.description


class TestReports:
    """Get, Path and List report where volumes really are."""

    def test_get_unknown_volume_fails(self, cluster: Cluster) -> None:
        """Get of an unknown name fails (Docker asks before every Create)."""
        assert isinstance(failure(start(cluster.services[NODE1].get("vol"))), NotFound)

    def test_path_only_on_the_node_that_has_it(self, cluster: Cluster) -> None:
        """Path is the mount path on the node where it is mounted, empty elsewhere."""
        dataset = create(cluster, NODE1)
        assert result(cluster.services[NODE1].path("vol")) == ""
        cluster.converge(NODE1)
        here = mount_path("/mnt/node1", dataset.dataset_id)
        assert result(cluster.services[NODE1].path("vol")) == here
        assert result(cluster.services[NODE2].path("vol")) == ""

    def test_list_from_any_node(self, cluster: Cluster) -> None:
        """List shows every volume from every node."""
        create(cluster, NODE1, "one")
        create(cluster, NODE2, "two")
        names = [v["Name"] for v in result(cluster.services[NODE1].list())]
        assert names == ["one", "two"]

    def test_unknown_identity_is_explained(self, cluster: Cluster) -> None:
        """When the node is not known yet, the identity's error reaches the caller."""

        def no_identity() -> UUID:
            raise ShoalError("No node identity at /x/identity.json: start the agent.")

        cluster.services[NODE1]._node = no_identity
        assert "start the agent" in failure(start(cluster.services[NODE1].list())).args[0]


def test_mount_table_is_saved_through_the_blocking_runner() -> None:
    """Every save of the mount table and the mount check run through the injected runner."""
    cluster = make_cluster()
    mounts = MemoryMounts()
    ran: list[Any] = []

    def recording_runner(f: Any, *args: Any) -> Deferred[Any]:
        ran.append(f)
        return Deferred.fromCoroutine(_call(f, *args))

    guard = cluster.agents[NODE1].guard()
    service = VolumeService(
        cluster.client, lambda: NODE1, cluster.clock, mounts, guard, run_blocking=recording_runner
    )
    cluster.services[NODE1] = service
    create(cluster, NODE1)
    d = start(service.mount("vol", "c1"))
    cluster.converge(NODE1)
    result(d)
    assert mounts.save in ran and guard.verify in ran
    assert all(f in (mounts.save, guard.verify) for f in ran)
    assert mounts.load().count("vol") == 1


async def _call(f: Any, *args: Any) -> Any:
    return f(*args)


class TestStorageClasses:
    """The ``class`` option: the control service places the volume, or binds it on first use."""

    @staticmethod
    def _wait_class(cluster: Cluster, **fields: Any) -> None:
        cls = StorageClass("wffc", binding_mode=BindingMode.WAIT, default_size=GiB, **fields)
        result(cluster.client.create_class(cls))

    def test_wait_for_first_consumer_binds_on_first_mount(self, cluster: Cluster) -> None:
        """A class=wffc volume is created unbound and bound to the node that mounts it first."""
        self._wait_class(cluster)
        dataset = create(cluster, NODE2, "vol", **{"class": "wffc"})
        assert (dataset.primary, dataset.maximum_size) == (UNBOUND, GiB)
        d = start(cluster.services[NODE1].mount("vol", "c1"))
        assert cluster.datasets()[0].primary == NODE1
        cluster.converge(NODE1)
        assert result(d) == mount_path("/mnt/node1", dataset.dataset_id)

    def test_first_mount_outside_the_topology_is_refused_naming_the_term(
        self, cluster: Cluster
    ) -> None:
        """A first mount on a node the class does not allow fails, naming the label term."""
        only_node1 = TopologyTerm((Requirement(HOSTNAME, ("node1",)),))
        self._wait_class(cluster, allowed_topologies=(only_node1,))
        create(cluster, NODE2, "vol", **{"class": "wffc"})
        error = failure(start(cluster.services[NODE2].mount("vol", "c1")))
        assert isinstance(error, Conflict)
        assert f"[{HOSTNAME}=node1] (it has {HOSTNAME}=node2)" in error.description
        assert cluster.datasets()[0].primary == UNBOUND
        assert cluster.lease_holder(cluster.datasets()[0].dataset_id) is None


class TestAccessModes:
    """ReadWriteOncePod: one container at a time, even on one node; ReadOnlyMany on many."""

    def test_read_only_many_is_read_on_a_second_node(self, cluster: Cluster) -> None:
        """A ROX volume bound to node1 is read on node2 beside it (no lease, no move), each
        node answers its own path, and node2's last Unmount stops it reading."""
        result(cluster.client.create_class(StorageClass("ro", access_modes=(AccessMode.ROX,))))
        dataset = create(cluster, NODE1, "shared", **{"class": "ro"})
        first, second = (NODE1, NODE2) if dataset.primary == NODE1 else (NODE2, NODE1)
        d = start(cluster.services[first].mount("shared", "c1"))
        cluster.converge(first)
        result(d)
        d = start(cluster.services[second].mount("shared", "c2"))
        cluster.converge(second)
        path = result(d)
        assert path == mount_path(f"/mnt/node{2 if second == NODE2 else 1}", dataset.dataset_id)
        assert cluster.datasets()[0].primary == first
        assert cluster.lease_holder(dataset.dataset_id) == first
        assert result(cluster.services[second].path("shared")) == path
        assert result(cluster.services[first].path("shared")) != path
        result(cluster.services[second].unmount("shared", "c2"))
        config = result(cluster.client.node_configuration(second, [dataset.dataset_id]))
        assert [d.readers for d in config.datasets] == [frozenset()]

    def test_read_write_once_volume_still_moves(self, cluster: Cluster) -> None:
        """A RWO volume bound elsewhere is moved here on Mount, as before (no reader)."""
        dataset = create(cluster, NODE1, "vol")
        d = start(cluster.services[NODE2].mount("vol", "c1"))
        cluster.converge(NODE1)
        cluster.converge(NODE2)
        result(d)
        assert cluster.datasets()[0].primary == NODE2 and dataset.readers == frozenset()

    def test_second_container_refused_for_read_write_once_pod(self, cluster: Cluster) -> None:
        """A second Mount ID of an RWOP volume fails; the first may mount again; RWO shares."""
        cls = StorageClass("pod", access_modes=(AccessMode.RWOP, AccessMode.RWO))
        result(cluster.client.create_class(cls))
        create(cluster, NODE1, "solo", **{"class": "pod"})
        create(cluster, NODE1, "shared", **{"class": "pod", "access-mode": "RWO"})
        for name in ("solo", "shared"):
            d = start(cluster.services[NODE1].mount(name, "c1"))
            cluster.converge(NODE1)
            result(d)
        error = failure(start(cluster.services[NODE1].mount("solo", "c2")))
        assert isinstance(error, Conflict) and "ReadWriteOncePod" in error.description
        assert "c1" in error.description
        result(cluster.services[NODE1].mount("solo", "c1"))
        result(cluster.services[NODE1].mount("shared", "c2"))
        result(cluster.services[NODE1].unmount("solo", "c1"))
        d = start(cluster.services[NODE1].mount("solo", "c2"))
        cluster.converge(NODE1)
        result(d)


class TestRawVolumes:
    """A raw (block-mode) dataset is for the CSI driver's Block volumes only."""

    def test_mount_of_a_raw_dataset_is_refused(self, cluster: Cluster) -> None:
        """Mounting a raw dataset fails with a message naming it raw; no lease is left behind."""
        made = result(cluster.client.create_shoal_dataset(
            NODE1, None, {"name": "blocky"}, filesystem="raw"
        ))
        error = failure(start(cluster.services[NODE1].mount("blocky", "c1")))
        assert isinstance(error, InvalidRequest)
        assert "raw block volume" in error.description and "no filesystem" in error.description
        leases = result(cluster.client.list_leases())
        assert all(lease.dataset_id != made.dataset_id for lease in leases)
