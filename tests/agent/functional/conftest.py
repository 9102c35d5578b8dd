"""A real two-agent cluster on a loopback pool, checked for double mounts all along."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.agent.functional.cluster import LocalCluster, MountChecker


def skip_or_fail(reason: str) -> None:
    """Skip for ``reason``; in CI (``CI=true``), where everything must be, fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must be able to run this test: {reason}")
    pytest.skip(reason)


def _root_or_skip(*tools: str) -> None:
    """Skip (fail in CI) unless root with the loop-device tools and ``tools``."""
    if os.geteuid() != 0:
        skip_or_fail("needs root: the agents attach loop devices and mount filesystems")
    for tool in ("losetup", "mkfs.ext4", "mount", "umount", "blkid", *tools):
        if shutil.which(tool) is None:
            skip_or_fail(f"needs {tool} (util-linux, e2fsprogs, xfsprogs, btrfs-progs)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A control service and agents node1 and node2 on one pool; everything released after."""
    _root_or_skip()
    base = str(tmp_path_factory.mktemp("cluster"))
    local = LocalCluster(base)
    try:
        local.start()
        yield local
    finally:
        local.close()


@pytest.fixture(scope="module")
def checker(cluster: LocalCluster) -> Iterator[MountChecker]:
    """A thread checking, every millisecond, that no dataset is mounted on both nodes."""
    watching = MountChecker(list(cluster.agents.values()))
    watching.start()
    yield watching
    watching.stop()
    assert watching.violations == []


@pytest.fixture
def nodes(cluster: LocalCluster, checker: MountChecker) -> Iterator[tuple]:
    """node1 and node2, running without the kill hook; the checker must stay clean."""
    for agent in cluster.agents.values():
        if agent.process is None or agent.process.poll() is not None:
            agent.start()
    yield cluster.agents["node1"], cluster.agents["node2"]
    assert checker.violations == []
    assert checker.checks > 0
