"""A control service and two agents on the rbd backend: for the agent tests and ``bench/rbd.py``."""

from __future__ import annotations

import os
from uuid import UUID, uuid4

from agent.backends.rbd.backend import RbdBlockDeviceAPI
from agent.backends.rbd.devcluster import DevCluster
from agent.backends.rbd.session import CephSettings
from tests.agent.functional.cluster import LocalCluster
from tests.processes import NO_FAILOVER_GRACE


class RbdCluster(LocalCluster):
    """A control service and agents on the rbd backend (pool ``rbd``, client ``shoal``,
    rbd-fuse), each agent with its own rbd-fuse run directory."""

    def __init__(self, base: str, ceph: DevCluster, node_timeout: float = 3.0,
                 failover_grace: float | None = NO_FAILOVER_GRACE) -> None:
        self.cluster_id = uuid4()
        self.settings = CephSettings(
            conf=ceph.conf,
            client="shoal",
            keyring=os.path.join(ceph.directory, "client.shoal.keyring"),
            pool="rbd",
        )
        super().__init__(base, agent_args=[
            "--backend", "rbd", "--cluster-id", str(self.cluster_id),
            "--ceph-conf", ceph.conf, "--ceph-client", "shoal",
            "--ceph-keyring", str(self.settings.keyring), "--ceph-pool", "rbd",
            "--rbd-attach", "fuse", "--rbd-run-dir", os.path.join(base, "rbd"),
        ], node_timeout=node_timeout, failover_grace=failover_grace)
        self.observer = RbdBlockDeviceAPI(
            cluster_id=self.cluster_id, instance_id="observer", settings=self.settings,
            run_dir=os.path.join(base, "observer"), attach_method="fuse",
        )

    def gone(self, dataset_id: UUID) -> bool:
        """Whether the dataset is purged: no record, no state, no image."""
        return (
            dataset_id not in self.configuration()
            and dataset_id not in self.state()
            and all(v.dataset_id != dataset_id for v in self.observer.list_volumes())
        )
