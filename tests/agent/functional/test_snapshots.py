"""
Snapshots, restores, clones and online resize through the whole stack (issue 8).

A real control service and ``shoal agent run`` processes, driven by the real
``shoal ... --json`` CLI as an operator would. The pool is a loop-mounted XFS
filesystem made with reflink, so snapshots and clones share blocks; a second
cluster puts one node on a btrfs pool (reflink) and one on a tmpfs pool
(copy), and ``shoal node list`` names each node's method.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.agent.functional.cluster import (
    AgentProcess,
    LocalCluster,
    read_marker,
    wait_until,
    write_marker,
)
from tests.agent.functional.conftest import _root_or_skip
from tests.agent.loopmount import mount_image
from tests.processes import http_json, shoal

pytestmark = [pytest.mark.functional, pytest.mark.root]

MiB = 1024 * 1024


# -- pools and clusters ----------------------------------------------------------


def mount_pool(base: str, fstype: str, size: int) -> str:
    """Make a ``fstype`` filesystem on a sparse file in ``base`` and mount it at ``base/pool``."""
    image = os.path.join(base, f"{fstype}-pool.img")
    with open(image, "wb") as f:
        f.truncate(size)
    mkfs = {"xfs": ["mkfs.xfs", "-q", "-m", "reflink=1"], "btrfs": ["mkfs.btrfs", "-q"]}[fstype]
    subprocess.run([*mkfs, image], check=True, capture_output=True)
    pool = os.path.join(base, "pool")
    os.makedirs(pool, exist_ok=True)
    mount_image(image, pool)
    return pool


@pytest.fixture(scope="module")
def xfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """node1 and node2 sharing a pool on a loop-mounted XFS with reflink."""
    _root_or_skip("mkfs.xfs")
    base = str(tmp_path_factory.mktemp("xfs"))
    local = LocalCluster(base)
    try:
        mount_pool(base, "xfs", 4096 * MiB)
        local.start()
        yield local
    finally:
        local.close()


# -- the CLI, as an operator runs it ---------------------------------------------


def run(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    """``shoal --url URL --json ARGS``, whatever its exit status."""
    result: subprocess.CompletedProcess[str] = shoal(
        "--url", cluster.url, "--json", *args, timeout=120
    )
    return result


def cli(cluster: LocalCluster, *args: str) -> Any:
    """``shoal --json ARGS``'s decoded output; fails on a non-zero exit."""
    result = run(cluster, *args)
    assert result.returncode == 0, f"shoal {' '.join(args)}: {result.stderr}"
    return json.loads(result.stdout)


def refused(cluster: LocalCluster, *args: str) -> str:
    """The error ``shoal ARGS`` exits with (it must fail, and without a traceback)."""
    result = run(cluster, *args)
    assert result.returncode != 0, f"shoal {' '.join(args)} succeeded: {result.stdout}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def create(cluster: LocalCluster, name: str, *args: str) -> str:
    """``shoal dataset create --meta name=NAME ARGS --wait``; returns the mounted path."""
    made = cli(cluster, "dataset", "create", "--meta", f"name={name}", *args, "--wait")
    path = made["state"]["path"]
    assert path and os.path.ismount(path), made
    return str(path)


def fs_size(path: str) -> int:
    """The size of the filesystem mounted at ``path``, as its users see it (statvfs)."""
    found = os.statvfs(path)
    return found.f_blocks * found.f_frsize


def pool_free(cluster: LocalCluster) -> int:
    """Free bytes in the cluster's pool filesystem."""
    found = os.statvfs(cluster.pool)
    return found.f_bfree * found.f_frsize


def snapshot_method(cluster: LocalCluster) -> dict[str, str | None]:
    """``shoal node list --json``: each node's snapshot method, by host name label."""
    nodes = cli(cluster, "node", "list")
    return {
        n["labels"]["name"]: (n.get("capacity") or {}).get("snapshot_method") for n in nodes
    }


# -- the tests --------------------------------------------------------------------


def test_snapshot_restore_and_clone_are_independent(xfs: LocalCluster) -> None:
    """Snapshot, restore larger, clone on the other node: markers never cross; a restore
    smaller than its source is refused; snapshots outlive their source and their deletion
    leaves restored datasets alone; every step is in the events."""
    wait_until(lambda: set(snapshot_method(xfs).values()) == {"reflink"}, 30,
               "both nodes to report reflink snapshots")
    source = create(xfs, "src", "--node", "node1", "--size", "128M")
    write_marker(os.path.join(source, "marker"), b"before")
    write_marker(os.path.join(source, "filler"), os.urandom(32 * MiB))

    free = pool_free(xfs)
    snap = cli(xfs, "snapshot", "create", "src", "--name", "snap1", "--wait")
    assert snap["ready"] and snap["name"] == "snap1" and snap["size"] == 128 * MiB
    assert free - pool_free(xfs) < 16 * MiB, "a reflink snapshot (32 MiB written) takes no space"
    write_marker(os.path.join(source, "marker"), b"after")

    restored = create(xfs, "restored", "--from-snapshot", "snap1", "--size", "256M")
    assert xfs.agents["node1"].mount_root in restored
    assert read_marker(os.path.join(restored, "marker")) == b"before"
    assert fs_size(restored) > 200 * MiB > 128 * MiB > fs_size(source)

    clone = create(xfs, "clone", "--clone-of", "src", "--node", "node2", "--size", "192M")
    assert xfs.agents["node2"].mount_root in clone
    assert fs_size(clone) > 160 * MiB
    assert read_marker(os.path.join(clone, "marker")) == b"after"

    write_marker(os.path.join(restored, "marker"), b"restored")
    write_marker(os.path.join(clone, "marker"), b"cloned")
    assert read_marker(os.path.join(source, "marker")) == b"after"
    write_marker(os.path.join(source, "marker"), b"source")
    assert read_marker(os.path.join(restored, "marker")) == b"restored"
    assert read_marker(os.path.join(clone, "marker")) == b"cloned"

    error = refused(xfs, "dataset", "create", "--from-snapshot", "snap1", "--size", "64M")
    assert "smaller than the source" in error, error
    status, _, body = http_json("POST", xfs.url + "/v1/shoal/datasets", {
        "maximum_size": 64 * MiB, "source": {"kind": "snapshot", "name": "snap1"},
    })
    assert status == 400 and "Leave the size out" in body["description"], body

    source_id = cli(xfs, "dataset", "show", "src")["dataset"]["dataset_id"]
    cli(xfs, "dataset", "delete", "src", "--wait")
    again = create(xfs, "restored2", "--from-snapshot", "snap1", "--node", "node2")
    assert read_marker(os.path.join(again, "marker")) == b"before"

    deleted = cli(xfs, "snapshot", "delete", "snap1")
    assert deleted["deleted"]
    wait_until(lambda: cli(xfs, "snapshot", "list") == [], 30, "snap1 to be destroyed")
    for name, path, marker in (("restored", restored, b"restored"),
                               ("restored2", again, b"before")):
        assert read_marker(os.path.join(path, "marker")) == marker
        assert cli(xfs, "dataset", "show", name)["status"] == "mounted"

    kinds = {(e["kind"], e["dataset_id"]) for e in cli(xfs, "events", "--limit", "200")}
    for kind in ("snapshot_created", "snapshot_ready", "snapshot_deleted"):
        assert (kind, source_id) in kinds, kind
    by_name = {n: cli(xfs, "dataset", "show", n)["dataset"]["dataset_id"]
               for n in ("restored", "clone", "restored2")}
    assert ("restored", by_name["restored"]) in kinds
    assert ("restored", by_name["restored2"]) in kinds
    assert ("cloned", by_name["clone"]) in kinds


WRITER = """
import os, sys, time
path, stop = sys.argv[1], sys.argv[2]
count = 0
with open(path, "wb") as f:
    while not os.path.exists(stop):
        f.seek((count % 256) * 4096)
        f.write(count.to_bytes(8, "big") * 512)
        f.flush()
        os.fsync(f.fileno())
        count += 1
        with open(path + ".count", "w") as c:
            c.write(str(count))
        time.sleep(0.005)
"""
"""Rewrites 1 MiB of ``path`` in 4 KiB blocks, fsyncing each, until ``stop`` exists."""


def written(path: str) -> int:
    """How many blocks the writer has written so far."""
    try:
        with open(path + ".count") as f:
            return int(f.read() or 0)
    except (OSError, ValueError):
        return 0


def test_online_resize_while_writing(xfs: LocalCluster, tmp_path: Any) -> None:
    """``shoal dataset resize --wait`` grows a mounted filesystem while a writer runs, never
    interrupting it, and returns once the filesystem has grown; shrinking is refused with a
    clear message; the resize is an event. (XFS: growing a mounted ext4 needs
    CAP_SYS_RESOURCE, which some sandboxes lack.)"""
    path = create(xfs, "busy", "--node", "node1", "--size", "512M", "--fs", "xfs")
    assert fs_size(path) < 512 * MiB
    stop = str(tmp_path / "stop")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, os.path.join(path, "data"), stop])
    try:
        wait_until(lambda: written(os.path.join(path, "data")) > 10, 30, "the writer to write")
        grown = cli(xfs, "dataset", "resize", "busy", "--size", "1G", "--wait")
        assert grown["dataset"]["maximum_size"] == 1024 * MiB
        assert grown["state"]["maximum_size"] == 1024 * MiB
        assert fs_size(path) > 900 * MiB
        at_resize = written(os.path.join(path, "data"))
        wait_until(lambda: written(os.path.join(path, "data")) > at_resize + 10, 30,
                   "the writer to go on after the resize")
        assert writer.poll() is None, "the writer stopped during the resize"
    finally:
        with open(stop, "w"):
            pass
        assert writer.wait(30) == 0

    error = refused(xfs, "dataset", "resize", "busy", "--size", "512M")
    assert "only grow" in error, error
    assert fs_size(path) > 900 * MiB
    dataset_id = cli(xfs, "dataset", "show", "busy")["dataset"]["dataset_id"]
    events = cli(xfs, "events", "--dataset", dataset_id)
    assert [e["kind"] for e in events].count("resized") == 1


def test_snapshot_method_per_pool(tmp_path: Any) -> None:
    """A node on a btrfs pool snapshots by reflink, one on a tmpfs pool by copy; `shoal
    node list` says which, and a snapshot restores on each."""
    _root_or_skip("mkfs.btrfs")
    base = str(tmp_path)
    local = LocalCluster(base, names=())
    try:
        btrfs = mount_pool(base, "btrfs", 256 * MiB)
        tmpfs = os.path.join(base, "tmpfs-pool")
        os.makedirs(tmpfs)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256M", "shoal-tmpfs", tmpfs],
                       check=True)
        local.start()
        for name, pool in (("node1", btrfs), ("node2", tmpfs)):
            local.agents[name] = AgentProcess(name, local.url, base, pool).start()
        wait_until(lambda: snapshot_method(local) == {"node1": "reflink", "node2": "copy"},
                   30, "node1 to report reflink and node2 copy")
        for node in ("node1", "node2"):
            path = create(local, f"src-{node}", "--node", node, "--size", "64M")
            write_marker(os.path.join(path, "marker"), node.encode())
            cli(local, "snapshot", "create", f"src-{node}", "--name", f"snap-{node}", "--wait")
            write_marker(os.path.join(path, "marker"), b"later")
            restored = create(local, f"restored-{node}", "--from-snapshot", f"snap-{node}")
            assert local.agents[node].mount_root in restored
            assert read_marker(os.path.join(restored, "marker")) == node.encode()
    finally:
        try:
            local.close()
        finally:
            subprocess.run(["umount", "-l", os.path.join(base, "tmpfs-pool")], check=False)
