"""Why a dataset is not mounted, seen by an operator: real agents, loop devices, the real CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any
from uuid import UUID

import pytest

from tests.agent.functional.cluster import LocalCluster, wait_until
from tests.processes import ROOT

pytestmark = [pytest.mark.functional, pytest.mark.root]


def shoal(cluster: LocalCluster, *argv: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """Run the ``shoal`` CLI against the cluster's control service."""
    return subprocess.run(
        [sys.executable, "-m", "control.cli", *argv, "--url", cluster.url],
        capture_output=True, text=True, cwd=ROOT, timeout=timeout, check=False,
    )


def show_json(cluster: LocalCluster, dataset_id: UUID) -> Any:
    """``shoal dataset show ID --json``."""
    done = shoal(cluster, "dataset", "show", str(dataset_id), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_size_no_volume_can_have_is_refused_at_once(cluster: LocalCluster, nodes):
    """--size 100T is above the 64 TiB ceiling: the service refuses it at once, naming it."""
    done = shoal(cluster, "dataset", "create", "--node", "node1", "--size", "100T", "--wait")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "64 TiB" in done.stderr and "maximum_size" not in done.stderr
    assert "created dataset" not in done.stdout


def _admitted(cluster: LocalCluster) -> bool:
    listing = json.loads(shoal(cluster, "dataset", "list", "--json").stdout)
    return any(entry["dataset"].get("maximum_size") == 50 * 1024**4 for entry in listing)


def _both_paused(cluster: LocalCluster) -> bool:
    listing = json.loads(shoal(cluster, "node", "list", "--json").stdout)
    return not any(node["live"] for node in listing)


def test_a_create_too_large_for_the_pool_fails_fast_with_the_reason(cluster: LocalCluster, nodes):
    """A size admitted while no node had reported (both paused) but larger than the pool:
    --wait stops at once with the agent's reason; list, show and events say why."""
    one, two = nodes
    for agent in (one, two):
        os.kill(agent.process.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: _both_paused(cluster), 30, "both nodes not live")
        waiting = subprocess.Popen(
            [sys.executable, "-m", "control.cli", "dataset", "create", "--node", "node1",
             "--size", "50T", "--force", "--wait", "--timeout", "120", "--url", cluster.url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )
        # Resume the agents only once the create is admitted: a slow machine can
        # take longer than a fixed pause to start the CLI.
        wait_until(lambda: _admitted(cluster), 60, "the 50 TiB create admitted")
    finally:
        for agent in (one, two):
            os.kill(agent.process.pid, signal.SIGCONT)
    start = time.monotonic()
    out, err = waiting.communicate(timeout=120)
    elapsed = time.monotonic() - start
    assert waiting.returncode == 1, out + err
    assert elapsed < 60, f"--wait took {elapsed:.1f} s: it must not wait for the timeout"
    assert "node1: error (create, 1 attempt" in out, (out, err)
    assert err.startswith("error: node1 cannot do it: A volume of 50 TiB can never fit")
    dataset_id = UUID(re.search(r"created dataset (\S+) on node1", out).group(1))
    shown = show_json(cluster, dataset_id)
    (condition,) = shown["conditions"]
    assert (condition["step"], condition["reason"], condition["permanent"]) == (
        "create", "too_large", True)
    assert condition["node_uuid"] == str(one.uuid)
    assert shown["status"].startswith("error: A volume of 50 TiB can never fit")
    listing = shoal(cluster, "dataset", "list").stdout
    assert "error: A volume of 50 TiB can never fit" in listing
    events = json.loads(shoal(cluster, "events", "--dataset", str(dataset_id), "--json").stdout)
    assert [e["kind"] for e in events][:2] == ["created", "error"]
    cluster.delete(dataset_id)
    wait_until(lambda: cluster.gone(dataset_id), 30, f"{dataset_id} to be purged")


def test_a_busy_unmount_names_its_holder_and_the_move_waits_for_it(cluster: LocalCluster, nodes):
    """A shell in the old mount: the move shows who holds it and who waits, then completes."""
    one, two = nodes
    dataset_id = cluster.create(one)
    cluster.wait_mounted(dataset_id, one)
    holder = subprocess.Popen(["sleep", "300"], cwd=one.mount_path(dataset_id))
    mover = subprocess.Popen(
        [sys.executable, "-m", "control.cli", "dataset", "move", str(dataset_id), "--to",
         "node2", "--wait", "--timeout", "120", "--url", cluster.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        def blocked() -> Any:
            conditions = show_json(cluster, dataset_id)["conditions"]
            kinds = {(c["node_uuid"], c["kind"]) for c in conditions}
            wanted = {(str(one.uuid), "error"), (str(two.uuid), "waiting")}
            return conditions if wanted <= kinds else None

        conditions = wait_until(blocked, 60, "the busy unmount and the wait to be reported",
                                interval=0.2)
        error = next(c for c in conditions if c["kind"] == "error")
        assert (error["step"], error["reason"]) == ("unmount", "busy")
        assert f"held by pid {holder.pid} (sleep)" in error["message"]
        waiting = next(c for c in conditions if c["kind"] == "waiting")
        assert waiting["reason"] == "waiting_for_node" and str(one.uuid) in waiting["message"]
        status = show_json(cluster, dataset_id)["status"]
        assert status.startswith("error: unmount failed:")
    finally:
        holder.kill()
        holder.wait()
    out, err = mover.communicate(timeout=120)
    assert mover.returncode == 0, out + err
    assert f"held by pid {holder.pid} (sleep)" in out
    assert "node2: waiting" in out and "waiting for node1 to unmount" in out
    cluster.wait_mounted(dataset_id, two)
    assert show_json(cluster, dataset_id)["conditions"] == []
    kinds = [e["kind"] for e in show_json(cluster, dataset_id)["events"]]
    assert {"moved", "unmounted", "detached", "mounted", "error"} <= set(kinds)
    cluster.delete(dataset_id)
    wait_until(lambda: cluster.gone(dataset_id), 30, f"{dataset_id} to be purged")
    assert not os.path.exists(cluster.volume_path(dataset_id))
