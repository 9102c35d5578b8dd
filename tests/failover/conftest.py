"""Fixtures: a fresh real cluster per test, with a short grace and a writable-mount checker."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

import pytest

from tests.failover.harness import FailoverCluster

GRACE = 3.0
"""The cluster grace of the tests (seconds): short, so the directory runs in about 2 minutes."""


def root_or_skip() -> None:
    """Skip without root and the tools the agents run; in CI (CI=true), fail instead."""
    reason = None
    if os.geteuid() != 0:
        reason = "needs root: the agents attach loop devices and mount filesystems"
    for tool in ("losetup", "mkfs.ext4", "mount", "umount", "blkid"):
        if reason is None and shutil.which(tool) is None:
            reason = f"needs {tool} (util-linux, e2fsprogs)"
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must be able to run this test: {reason}")
    pytest.skip(reason)


@pytest.fixture
def make_cluster() -> Iterator[Callable[..., FailoverCluster]]:
    """Start ``FailoverCluster(names, grace, proxied)``; everything released afterwards.

    Every test's checker must have looked and never seen a dataset writable twice.
    """
    root_or_skip()
    started: list[FailoverCluster] = []
    bases: list[str] = []

    def start(names: tuple[str, ...] = ("node1", "node2"), grace: float = GRACE,
              proxied: tuple[str, ...] = ()) -> FailoverCluster:
        base = tempfile.mkdtemp(prefix="shoal-failover-")
        bases.append(base)
        cluster = FailoverCluster(base, names, grace, proxied)
        started.append(cluster)
        return cluster.start()

    yield start
    for cluster in started:
        cluster.close()
    for cluster in started:
        assert cluster.checker.checks > 0
        assert cluster.checker.violations == [], cluster.checker.violations
    if not os.environ.get("SHOAL_KEEP_FAILOVER_LOGS"):
        for base in bases:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_cluster() -> Iterator[FailoverCluster]:
    """node1 (through a proxy, to be cut off) and node2 on one pool, shared by the tests that
    leave their nodes healthy (each scenario brings its failed node back); started once."""
    root_or_skip()
    base = tempfile.mkdtemp(prefix="shoal-failover-")
    cluster = FailoverCluster(base, ("node1", "node2"), GRACE, proxied=("node1",))
    try:
        yield cluster.start()
    finally:
        cluster.close()
        if not os.environ.get("SHOAL_KEEP_FAILOVER_LOGS"):
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def cluster(shared_cluster: FailoverCluster) -> Iterator[FailoverCluster]:
    """The shared two-node cluster, healthy; its checker must stay clean through the test."""
    shared_cluster.recover()
    checks = shared_cluster.checker.checks
    yield shared_cluster
    assert shared_cluster.checker.checks > checks
    assert shared_cluster.checker.violations == [], shared_cluster.checker.violations
