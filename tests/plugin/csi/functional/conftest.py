"""Fixtures: a control service and loopback agents (real processes), and CSI driver processes."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

import pytest

from tests.agent.functional.cluster import LocalCluster, release
from tests.plugin.csi.harness import CsiProcess
from tests.plugin.functional.conftest import skip_or_fail
from tests.plugin.runtimes import missing

pytestmark = pytest.mark.functional


@pytest.fixture
def workdir() -> Iterator[str]:
    """A short private directory (Unix socket paths must stay under 108 bytes)."""
    directory = tempfile.mkdtemp(prefix="shoal-csi-")
    yield directory
    release(directory)
    shutil.rmtree(directory, ignore_errors=True)


def cluster_reason() -> str | None:
    """Why real loopback agents cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root for loop devices and mounts"
    return missing("losetup", "mkfs.ext4", "mkfs.xfs", "mount")


@pytest.fixture
def cluster(workdir: str, request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """A control service and the agents the test names (``@pytest.mark.parametrize`` not
    needed: three nodes, node1..node3, on one loopback pool)."""
    skip_or_fail(cluster_reason())
    names = getattr(request, "param", ("node1", "node2", "node3"))
    local = LocalCluster(workdir, names=names)
    try:
        yield local.start()
    finally:
        local.close()


@pytest.fixture
def drivers(cluster: LocalCluster, workdir: str) -> Iterator[Callable[..., CsiProcess]]:
    """Start driver processes: ``drivers(node_name, mode="all", extra=())``; stopped after."""
    started: list[CsiProcess] = []

    def start(node: str, mode: str = "all", extra: tuple[str, ...] = ()) -> CsiProcess:
        agent = cluster.agents[node]
        driver = CsiProcess(
            cluster.url, os.path.join(workdir, f"{node}-{mode}.sock"), mode,
            os.path.join(workdir, f"csi-{node}-{mode}.log"),
            extra=("--agent-state-dir", agent.state_dir, "--stage-timeout", "60",
                   "--snapshot-wait", "30", *extra),
        )
        started.append(driver)
        return driver.start()

    yield start
    for driver in started:
        driver.stop()
