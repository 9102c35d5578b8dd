"""An orphaned volume in the pool is reported by the agents and destroyed on an operator's word."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from agent.backends.registry import make_backend
from agent.service import DEFAULT_CLUSTER_ID
from tests.agent.functional.cluster import LocalCluster, MiB, wait_until
from tests.processes import ROOT

pytestmark = [pytest.mark.functional, pytest.mark.root]


def _shoal(cluster: LocalCluster, *args: str) -> object:
    done = subprocess.run(
        [sys.executable, "-m", "control.cli", "--url", cluster.url, "--json", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=True,
    )
    return json.loads(done.stdout)


def test_orphan_listed_then_destroyed_live_volumes_kept(cluster: LocalCluster, nodes):
    """A volume with no record is listed by both agents, destroyed on request; a live one stays."""
    one, two = nodes
    live = cluster.create(one)
    cluster.wait_mounted(live, one)
    lost = uuid.uuid4()
    maker = make_backend(
        "loopback", cluster_id=DEFAULT_CLUSTER_ID, instance_id="orphan-maker", pool=cluster.pool
    )
    volume = maker.create_volume(lost, 64 * MiB)

    def reporters() -> set[str]:
        listed = _shoal(cluster, "volume", "orphans")
        assert isinstance(listed, list)
        assert all(o["dataset_id"] != str(live) for o in listed)
        return {o["node_uuid"] for o in listed if o["blockdevice_id"] == volume.blockdevice_id}

    wait_until(lambda: reporters() == {str(one.uuid), str(two.uuid)}, 30,
               "both agents to report the orphan", interval=0.2)
    record = _shoal(cluster, "volume", "destroy", volume.blockdevice_id)
    assert isinstance(record, dict) and record["deleted"] is True
    wait_until(lambda: cluster.gone(lost), 30, "the orphan to be destroyed and purged",
               interval=0.2)
    assert reporters() == set()
    assert os.path.ismount(one.mount_path(live)) and live in cluster.configuration()
    cluster.delete(live)
    wait_until(lambda: cluster.gone(live), 30, f"{live} to be purged")
