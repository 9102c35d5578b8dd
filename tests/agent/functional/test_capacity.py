"""
A full pool, for real: two agents on a 100 MiB tmpfs pool (issue 14, section 3).

Thick (the default): creates beyond the pool are refused by the API or
reported as conditions, and writing a volume full ends in ENOSPC inside its
ext4, with the data intact after a move. Thin (``--pool-overcommit 2``):
the pool runs out under written volumes, and the kernel's I/O errors reach
the control service as ``io_error`` conditions, while no loop device is ever
left attached without an attachment record.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import suppress
from uuid import UUID

import pytest

from agent.backends import loopdev
from agent.service import DEFAULT_CLUSTER_ID
from control.model import Condition, NodeState
from control.store.factory import open_store
from tests.agent.functional.cluster import (
    AgentProcess,
    LocalCluster,
    read_marker,
    wait_until,
    write_marker,
)
from tests.agent.functional.conftest import _root_or_skip
from tests.processes import http_json

pytestmark = [pytest.mark.functional, pytest.mark.root]

MiB = 1024 * 1024
POOL_SIZE = 100 * MiB


def _small_cluster(base: str, agent_args: list[str]) -> Iterator[LocalCluster]:
    _root_or_skip()
    local = LocalCluster(base, agent_args=agent_args)
    os.makedirs(local.pool)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={POOL_SIZE}", "shoal-pool", local.pool], check=True
    )
    try:
        local.start()
        yield local
    finally:
        try:
            local.close()
        finally:
            subprocess.run(["umount", "-l", local.pool], check=False)


@pytest.fixture
def thick(tmp_path) -> Iterator[LocalCluster]:
    """node1 and node2 on a fully allocated 100 MiB tmpfs pool."""
    yield from _small_cluster(str(tmp_path), [])


@pytest.fixture
def thin(tmp_path) -> Iterator[LocalCluster]:
    """node1 and node2 on a 100 MiB tmpfs pool overcommitted up to 2x."""
    yield from _small_cluster(str(tmp_path), ["--pool-overcommit", "2"])


def _reports(cluster: LocalCluster) -> dict[UUID, NodeState]:
    store = open_store(f"sqlite:///{os.path.join(cluster.base, 'control.db')}")
    try:
        return dict(store.cluster_state().reports)
    finally:
        store.close()


def _conditions(cluster: LocalCluster, agent: AgentProcess) -> list[Condition]:
    report = _reports(cluster).get(agent.uuid)
    return [] if report is None else list(report.conditions)


def _condition(cluster: LocalCluster, agent: AgentProcess, reason: str) -> Condition | None:
    return next((c for c in _conditions(cluster, agent) if c.reason == reason), None)


def _create(cluster: LocalCluster, agent: AgentProcess, size: int) -> tuple[int, dict]:
    body = {"primary": str(agent.uuid), "maximum_size": size}
    status, _, answer = http_json("POST", cluster.url + "/v1/configuration/datasets", body)
    return status, answer


def _fill(path: str) -> int:
    """Write random data to ``path`` until the filesystem is full; returns the errno."""
    chunk = os.urandom(MiB)
    with open(path, "wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            return e.errno or 0
    return 0


def _unrecorded_devices(cluster: LocalCluster) -> list[str]:
    """Loop devices on pool files that no attachment record names."""
    root = os.path.join(cluster.pool, str(DEFAULT_CLUSTER_ID))
    recorded = set()
    attachments = os.path.join(root, "attachments")
    for name in os.listdir(attachments) if os.path.isdir(attachments) else []:
        with suppress(OSError, ValueError), open(os.path.join(attachments, name)) as f:
            recorded.add(json.load(f).get("device"))
    prefix = os.path.realpath(cluster.pool) + os.sep
    found = []
    for name in os.listdir(loopdev.SYS_BLOCK):
        backing = loopdev.backing_file(name)
        if backing and backing.startswith(prefix) and f"/dev/{name}" not in recorded:
            found.append(f"/dev/{name}")
    return found


def test_full_thick_pool_refuses_and_keeps_data(thick: LocalCluster):
    """Beyond the pool: a 400 from the API, or a no_space condition reported by the agent;
    a volume written full fails with ENOSPC inside ext4, and its data survives a move."""
    one, two = thick.agents["node1"], thick.agents["node2"]
    wait_until(lambda: all(r.capacity for r in _reports(thick).values()), 30, "capacity reports")
    capacity = _reports(thick)[one.uuid].capacity
    assert capacity is not None and capacity.backend == "loopback"
    assert capacity.total is not None and capacity.total <= POOL_SIZE

    status, answer = _create(thick, one, 200 * MiB)
    assert status == 400 and "larger than any live node can create" in answer["description"]

    first = thick.create(one, 64 * MiB)
    status, answer = _create(thick, one, 64 * MiB)  # admitted before the agent reports the create
    if status == 201:
        # Both were admitted; the agent may try them in one pass, so either may be refused.
        pair = {first, UUID(answer["dataset_id"])}
        wait_until(lambda: _condition(thick, one, "no_space"), 30, "a no_space condition")
        refused = _condition(thick, one, "no_space").dataset_id  # type: ignore[union-attr]
        assert refused in pair
        assert not os.path.exists(thick.volume_path(refused))
        thick.delete(refused)
        (first,) = pair - {refused}
    thick.wait_mounted(first, one)
    wait_until(
        lambda: all(
            (_reports(thick)[agent.uuid].capacity.maximum_volume_size or 0) < 64 * MiB
            for agent in (one, two)
        ),
        30,
        "the create to show in both nodes' reported capacity (they share the pool)",
    )
    status, answer = _create(thick, two, 64 * MiB)
    assert status == 400 and "MiB" in answer["description"], answer

    data = os.urandom(4096)
    write_marker(os.path.join(one.mount_path(first), "marker"), data)
    assert _fill(os.path.join(one.mount_path(first), "filler")) == errno.ENOSPC
    thick.move(first, two)
    thick.wait_mounted(first, two)
    assert read_marker(os.path.join(two.mount_path(first), "marker")) == data
    assert _condition(thick, one, "io_error") is None
    assert _condition(thick, two, "io_error") is None
    assert _unrecorded_devices(thick) == []


def test_full_thin_pool_reports_io_errors(thin: LocalCluster):
    """Overcommitted volumes written beyond the pool: the kernel's I/O errors reach the
    control service as io_error conditions quoting the kernel, and the pool_low condition;
    no loop device is left attached without a record."""
    one = thin.agents["node1"]
    datasets = [thin.create(one, 64 * MiB) for _ in range(2)]
    for dataset_id in datasets:
        thin.wait_mounted(dataset_id, one)
    for dataset_id in datasets:
        with suppress(OSError):
            _fill(os.path.join(one.mount_path(dataset_id), "filler"))
    subprocess.run(["sync"], check=False)
    wait_until(lambda: _condition(thin, one, "io_error"), 30, "an io_error condition")
    condition = _condition(thin, one, "io_error")
    assert condition is not None and condition.dataset_id in datasets
    assert "/dev/loop" in condition.message and "kernel" in condition.message
    wait_until(lambda: _condition(thin, one, "pool_low"), 30, "a pool_low condition")
    third = thin.create(one, 64 * MiB)
    with suppress(AssertionError):
        wait_until(lambda: os.path.exists(thin.volume_path(third)), 10, "the third volume")
    assert _unrecorded_devices(thin) == []
