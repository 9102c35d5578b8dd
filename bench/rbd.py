"""
The rbd backend against loopback, in one run: create, move, snapshot and fence.

A throwaway one-node Ceph cluster (memstore, 127.0.0.1) and, for each backend,
a control service with two ``shoal agent run`` processes (rbd: rbd-fuse plus a
loop device per attached volume; loopback: one shared pool). Through the API:
create -> mounted on its primary (each trial once the previous one's dataset is purged, so
that its teardown does not share the agents' passes), move -> mounted on the other node, snapshot
-> ready (the agent made it and reported it), and fence -> mounted on the other
node: a writer runs on node A's mounted filesystem, A's agent is frozen
(SIGSTOP: it cannot cooperate), the operator fences A (``POST
/v1/shoal/nodes/A/fence``), until B's agent has fenced A in the backend,
attached, checked and mounted the dataset. The same again at backend level
alone (B's fence, attach, e2fsck -p, mount). Root only.

    sudo .venv/bin/python bench/rbd.py [--trials 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from uuid import UUID, uuid4

from _common import KeepAlive, Table, percentile
from move import StateFollower

# This script is called rbd.py: its directory must not hide Ceph's ``rbd`` module.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(__file__)]

from agent.backends.interface import BackendError, BlockDeviceAPI  # noqa: E402
from agent.backends.loopback import LoopbackBlockDeviceAPI  # noqa: E402
from agent.backends.rbd.backend import RbdBlockDeviceAPI  # noqa: E402
from agent.backends.rbd.devcluster import DevCluster  # noqa: E402
from tests.agent.backends.ceph.cluster import RbdCluster  # noqa: E402
from tests.agent.backends.ceph.conftest import clean_node, why_not  # noqa: E402
from tests.agent.functional.cluster import LocalCluster, release  # noqa: E402

MiB = 2**20
SIZE = 256 * MiB
TARGETS = {"create -> mounted": 0.5, "move -> mounted on the other node": 0.5,
           "snapshot -> ready": 0.1, "fence -> mounted on the other node": 2.0,
           "fence -> mounted on the other node, backend calls only": 2.0}
FENCE = "fence -> mounted on the other node"
WRITER = "import os,sys\nfd=os.open(sys.argv[1],os.O_WRONLY|os.O_CREAT|os.O_APPEND)\n" \
         "while True:\n os.write(fd,b'x'*4096); os.fsync(fd)\n"


def wait(
    check: Callable[[], bool], what: str, timeout: float = 60, interval: float = 0.005
) -> None:
    """Poll ``check`` every ``interval`` seconds until it holds."""
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{what}: not within {timeout} s")
        time.sleep(interval)


def wait_ready(client: KeepAlive, path: str, timeout: float = 60) -> None:
    """Return once the snapshot at ``path`` is ready, looking again each time the watch
    says something changed (the report marking it ready bumps the generation): no polling
    load on the control service while the agent works."""
    deadline = time.perf_counter() + timeout
    versions = client.check("GET", "/v1/shoal/watch?timeout=0")
    while not client.check("GET", path).get("ready"):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{path}: not ready within {timeout} s")
        query = f"configuration={versions['configuration']}&state={versions['state']}&timeout=5"
        versions = client.check("GET", f"/v1/shoal/watch?{query}")


def agent_trials(cluster: LocalCluster, trials: int) -> dict[str, list[float]]:
    """Per-trial seconds of create, move and snapshot through the API and the agents."""
    one, two = cluster.agents["node1"], cluster.agents["node2"]
    follower = StateFollower(cluster.control.port)
    client = KeepAlive(cluster.control.port)
    found: dict[str, list[float]] = {k: [] for k in list(TARGETS)[:3]}
    for trial in range(trials):
        source, target = (one, two) if trial % 2 == 0 else (two, one)
        start = time.perf_counter()
        created = client.check("POST", "/v1/configuration/datasets",
                               {"primary": str(source.uuid), "maximum_size": SIZE}, 201)
        dataset_id = UUID(created["dataset_id"])
        follower.wait_mounted(dataset_id, source, timeout=60)
        found["create -> mounted"].append(time.perf_counter() - start)
        start = time.perf_counter()
        client.check("POST", f"/v1/configuration/datasets/{dataset_id}",
                     {"primary": str(target.uuid)})
        follower.wait_mounted(dataset_id, target, timeout=60)
        found["move -> mounted on the other node"].append(time.perf_counter() - start)
        start = time.perf_counter()
        snapshot = client.check("POST", "/v1/shoal/snapshots",
                                {"dataset_id": str(dataset_id)}, 201)
        path = f"/v1/shoal/snapshots/{snapshot['snapshot_id']}"
        wait_ready(client, path)
        found["snapshot -> ready"].append(time.perf_counter() - start)
        client.check("DELETE", path)
        client.check("DELETE", f"/v1/configuration/datasets/{dataset_id}")
        # As bench/move.py does: the next create does not share the agents' passes with this
        # dataset's teardown (unmount, snapshot and volume removal), which it would wait for.
        wait(lambda d=dataset_id: cluster.gone(d), "dataset purged", timeout=120, interval=0.1)
    found[FENCE] = [
        agent_fence_trial(cluster, follower, client) for _ in range(max(3, trials // 2))
    ]
    return found


def agent_fence_trial(cluster: LocalCluster, follower: StateFollower, client: KeepAlive) -> float:
    """Seconds from the operator's fence of node1 (its agent frozen, a writer running on the
    dataset) to the dataset mounted on node2."""
    one, two = cluster.agents["node1"], cluster.agents["node2"]
    created = client.check("POST", "/v1/configuration/datasets",
                           {"primary": str(one.uuid), "maximum_size": SIZE}, 201)
    dataset_id = UUID(created["dataset_id"])
    follower.wait_mounted(dataset_id, one, timeout=60)
    writer = subprocess.Popen([sys.executable, "-c", WRITER,
                               os.path.join(one.mount_path(dataset_id), "log")],
                              stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    assert one.process is not None
    one.process.send_signal(signal.SIGSTOP)
    try:
        start = time.perf_counter()
        client.check("POST", f"/v1/shoal/nodes/{one.uuid}/fence", {"reason": "bench"})
        follower.wait_mounted(dataset_id, two, timeout=60)
        elapsed = time.perf_counter() - start
    finally:
        one.process.send_signal(signal.SIGCONT)
    writer.kill()
    writer.wait()
    wait(lambda: client.request("DELETE", f"/v1/shoal/nodes/{one.uuid}/fence")[0] == 200,
         "node1 unfenced", timeout=120, interval=0.2)
    client.check("DELETE", f"/v1/configuration/datasets/{dataset_id}")
    wait(lambda: cluster.gone(dataset_id), "dataset purged", timeout=120, interval=0.1)
    return elapsed


def _cleaned_up(backend: BlockDeviceAPI, leftover: object) -> bool:
    """Clean up a fenced leftover; whether that worked (a device still busy: not yet)."""
    try:
        backend.clean_up_fenced(leftover)  # type: ignore[arg-type]
    except BackendError:
        return False
    return True


def fence_trial(one: BlockDeviceAPI, two: BlockDeviceAPI, mounts: str) -> float:
    """Seconds from B's fence of A (while A's writer runs) to the filesystem mounted on B."""
    volume = one.create_volume(uuid4(), SIZE)
    one.attach_volume(volume.blockdevice_id, one.compute_instance_id(), epoch=1)
    device = one.get_device_path(volume.blockdevice_id)
    subprocess.run(["mkfs.ext4", "-q", device], check=True)
    here, there = os.path.join(mounts, f"a-{volume.dataset_id}"), os.path.join(
        mounts, f"b-{volume.dataset_id}")
    os.makedirs(here)
    os.makedirs(there)
    subprocess.run(["mount", device, here], check=True)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, os.path.join(here, "log")],
                              stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    start = time.perf_counter()
    two.fence(volume.blockdevice_id, one.compute_instance_id())
    two.attach_volume(volume.blockdevice_id, two.compute_instance_id(), epoch=2)
    moved = two.get_device_path(volume.blockdevice_id)
    subprocess.run(["e2fsck", "-p", moved], check=False, capture_output=True)
    subprocess.run(["mount", moved, there], check=True)
    elapsed = time.perf_counter() - start
    writer.kill()
    writer.wait()
    for leftover in one.fenced_leftovers():
        if isinstance(one, LoopbackBlockDeviceAPI):
            subprocess.run(["umount", "-l", here], check=False)
        # A lazily unmounted filesystem lets its loop device go a moment later.
        wait(lambda lo=leftover: _cleaned_up(one, lo), "fenced leftover cleaned up",
             timeout=30, interval=0.1)
    subprocess.run(["umount", "-l", here], check=False, capture_output=True)
    subprocess.run(["umount", there], check=True)
    two.detach_volume(volume.blockdevice_id)
    two.destroy_volume(volume.blockdevice_id)
    return elapsed


def measure(label: str, cluster: LocalCluster, pair: tuple[BlockDeviceAPI, BlockDeviceAPI],
            trials: int, base: str, table: Table, p50s: dict[tuple[str, str], float]) -> None:
    """One backend's rows."""
    try:
        cluster.start()
        time.sleep(1.0)
        found = agent_trials(cluster, trials)
    finally:
        cluster.close()
    mounts = os.path.join(base, f"fence-{label}")
    found["fence -> mounted on the other node, backend calls only"] = [
        fence_trial(*pair, mounts) for _ in range(max(3, trials // 2))
    ]
    for scenario, samples in found.items():
        table.add(f"{label}: {scenario}", samples, None, None)
        p50s[(label, scenario)] = percentile(samples, 0.5)


def keep_logs(base: str, destination: str) -> None:
    """Copy every ``*.log`` under ``base`` to ``destination`` (named by their directories)."""
    os.makedirs(destination, exist_ok=True)
    for directory, _, files in os.walk(base):
        for name in files:
            if name.endswith(".log"):
                relative = os.path.relpath(os.path.join(directory, name), base)
                shutil.copy(os.path.join(directory, name),
                            os.path.join(destination, relative.replace(os.sep, "-")))


def main() -> None:
    """Measure rbd then loopback; print one table and the targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--logs", help="copy the control service's and agents' logs here")
    args = parser.parse_args()
    reason = why_not()
    if reason is not None:
        print(f"bench/rbd.py: {reason}", file=sys.stderr)
        sys.exit(1)
    load_before = os.getloadavg()
    base = tempfile.mkdtemp(prefix="shoal-bench-rbd-")
    table = Table("Ceph RBD against loopback (bench/rbd.py)")
    p50s: dict[tuple[str, str], float] = {}
    ceph = DevCluster(os.path.join(base, "ceph"), v2_port=3390, v1_port=6799)
    try:
        ceph.start()
        ceph.create_pool("rbd", 64 * 2**30)
        ceph.add_client("shoal")
        os.makedirs(os.path.join(base, "rbd-agents"))
        rbd_cluster = RbdCluster(os.path.join(base, "rbd-agents"), ceph, node_timeout=30.0,
                                 failover_grace=None)
        rbd_pair = tuple(
            RbdBlockDeviceAPI(cluster_id=uuid4(), instance_id=name, settings=rbd_cluster.settings,
                              run_dir=os.path.join(base, "fence-rbd-nodes"), attach_method="fuse")
            for name in ("fence-a", "fence-b")
        )
        rbd_pair[1].cluster_id = rbd_pair[0].cluster_id
        measure("rbd", rbd_cluster, rbd_pair, args.trials, base, table, p50s)  # type: ignore[arg-type]
        loop_base = os.path.join(base, "loop-agents")
        os.makedirs(loop_base)
        pool, cluster_id = os.path.join(base, "fence-pool"), uuid4()
        os.makedirs(pool)
        loop_pair = (LoopbackBlockDeviceAPI(pool, cluster_id, "fence-a"),
                     LoopbackBlockDeviceAPI(pool, cluster_id, "fence-b"))
        loop_cluster = LocalCluster(loop_base, node_timeout=30.0, failover_grace=None)
        measure("loopback", loop_cluster, loop_pair, args.trials, base, table, p50s)
    finally:
        clean_node(base)
        release(base)
        ceph.stop()
        if args.logs:
            keep_logs(base, args.logs)
        shutil.rmtree(base, ignore_errors=True)
    print(table.render())
    print()
    after = os.getloadavg()
    load = " / ".join(f"{a:.1f} -> {b:.1f}" for a, b in zip(load_before, after, strict=True))
    print(f"machine load (1, 5, 15 min averages, start -> end; {os.cpu_count()} cores): {load}")
    for scenario, target in TARGETS.items():
        rbd, loop = p50s[("rbd", scenario)], p50s[("loopback", scenario)]
        print(f"- {scenario}: rbd p50 {rbd * 1000:.0f} ms (target < {target * 1000:.0f} ms: "
              f"{'met' if rbd < target else 'MISSED'}); loopback p50 {loop * 1000:.0f} ms")


if __name__ == "__main__":
    main()
