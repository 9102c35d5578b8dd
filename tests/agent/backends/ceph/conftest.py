"""
A one-node Ceph cluster for the session, and rbd backends on it.

The cluster (:class:`agent.backends.rbd.devcluster.DevCluster`: one monitor,
one memstore OSD, cephx, 127.0.0.1 on free ports) lives in a temporary
directory. At the end every rbd-fuse process, FUSE mount, loop device and
daemon it caused is gone (checked). Without root, the Ceph packages or Ceph's
Python bindings, the tests skip saying what is missing, except under
``CI=true``, where they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import pytest

from agent.backends import loopdev
from agent.backends.interface import BackendError
from agent.backends.rbd import bindings, fuse
from agent.backends.rbd.backend import RbdBlockDeviceAPI
from agent.backends.rbd.devcluster import PACKAGES, DevCluster, missing_tools
from agent.backends.rbd.session import CephSettings
from tests.processes import free_port

MakeRbd = Callable[..., RbdBlockDeviceAPI]
MiB = 2**20
MAIN_QUOTA = 16 * 2**30


def why_not() -> str | None:
    """Why a Ceph cluster cannot run here, or ``None``."""
    if os.geteuid() != 0:
        return "needs root (rbd-fuse, losetup, mount)"
    missing = missing_tools()
    if missing or shutil.which("fusermount") is None:
        return (f"needs the Ceph packages ({' '.join(PACKAGES)} fuse3); missing: "
                f"{' '.join(missing) or 'fusermount'}")
    try:
        bindings.load()
    except BackendError as e:
        return str(e)
    return None


def leftovers(directory: str) -> list[str]:
    """What is still running or mounted because of ``directory``: rbd-fuse processes, FUSE
    mounts and loop devices whose paths lie under it."""
    prefix = os.path.realpath(directory) + os.sep
    found = [f"rbd-fuse pid {pid}" for pid, argv in fuse.processes().items()
             if argv[-1].startswith(prefix)]
    found += [f"mount {m}" for m in fuse.fuse_mounts() if m.startswith(prefix)]
    for name in os.listdir(loopdev.SYS_BLOCK):
        backing = loopdev.backing_file(name)
        if backing and backing.startswith(prefix):
            found.append(f"/dev/{name} on {backing}")
    return found


def clean_node(directory: str) -> None:
    """Remove every attachment whose paths lie under ``directory`` (detach, or if that
    fails SIGKILL, umount -l, losetup -d, fusermount -u -z)."""
    prefix = os.path.realpath(directory) + os.sep
    run_dirs = {os.path.dirname(m) for m in fuse.fuse_mounts() if m.startswith(prefix)}
    run_dirs |= {os.path.dirname(argv[-1]) for argv in fuse.processes().values()
                 if argv[-1].startswith(prefix)}
    for name in os.listdir(loopdev.SYS_BLOCK):
        backing = loopdev.backing_file(name)
        if backing and backing.startswith(prefix):
            run_dirs.add(os.path.dirname(os.path.dirname(backing)))
    for run_dir in run_dirs:
        node = fuse.RbdFuse(CephSettings(), run_dir)
        for attachment in node.local():
            try:  # gently first: a SIGKILLed client's watch lingers for 30 s
                node.detach(attachment.image)
            except BackendError:
                node.kill(attachment.image)


@pytest.fixture(scope="session")
def ceph_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    """A one-node Ceph cluster with the pool ``rbd`` (16 GiB quota) and the client
    ``client.shoal`` (``profile rbd`` plus blocklisting)."""
    reason = why_not()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Ceph tests cannot run under CI=true: {reason}")
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("ceph")
    cluster = DevCluster(str(directory), v2_port=free_port(), v1_port=free_port())
    try:
        cluster.start()
        cluster.create_pool("rbd", MAIN_QUOTA)
        cluster.add_client("shoal")
        yield cluster
    finally:
        clean_node(str(directory))
        cluster.stop()
        left = leftovers(str(directory))
        assert not left, f"the Ceph tests left {left}"


@pytest.fixture
def ceph_settings(ceph_cluster: DevCluster) -> CephSettings:
    """How client.shoal reaches the pool ``rbd``."""
    return CephSettings(
        conf=ceph_cluster.conf,
        client="shoal",
        keyring=os.path.join(ceph_cluster.directory, "client.shoal.keyring"),
        pool="rbd",
    )


@pytest.fixture
def make_rbd(
    ceph_cluster: DevCluster, ceph_settings: CephSettings, tmp_path: Path
) -> Iterator[MakeRbd]:
    """``make(cluster_id, instance_id, pool="rbd")``: an rbd backend whose local
    attachments live under this test's directory. Afterwards its attachments are
    removed and the volumes of every cluster it made are destroyed."""
    made: list[RbdBlockDeviceAPI] = []

    def make(cluster_id: UUID, instance_id: str, pool: str = "rbd") -> RbdBlockDeviceAPI:
        settings = CephSettings(ceph_settings.conf, "shoal", ceph_settings.keyring, pool)
        api = RbdBlockDeviceAPI(
            cluster_id=cluster_id,
            instance_id=instance_id,
            settings=settings,
            run_dir=str(tmp_path / "nodes"),
            attach_method="fuse",
        )
        made.append(api)
        return api

    try:
        yield make
    finally:
        for api in made:  # fenced first: a lookup in a fenced rbd-fuse mount hangs
            for leftover in api.fenced_leftovers():
                api.clean_up_fenced(leftover)
        clean_node(str(tmp_path))
        remove_images(ceph_cluster, {(a.settings.pool, a.cluster_id) for a in made})
        for api in made:
            api.close()


def remove_images(cluster: DevCluster, pools_and_clusters: set[tuple[str, UUID]]) -> None:
    """Remove every image and attachment record of the given clusters (test clean-up)."""
    for pool, cluster_id in pools_and_clusters:
        argv = ["rbd", "-c", cluster.conf, "ls", pool]
        with contextlib.suppress(subprocess.CalledProcessError):
            names = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
            for name in names.split():
                if str(cluster_id) in name:
                    subprocess.run(["rbd", "-c", cluster.conf, "snap", "purge", f"{pool}/{name}"],
                                   capture_output=True, check=False)
                    subprocess.run(["rbd", "-c", cluster.conf, "rm", "--no-progress",
                                    f"{pool}/{name}"], capture_output=True, check=False)


@pytest.fixture
def small_pool(ceph_cluster: DevCluster) -> Iterator[str]:
    """A pool of its own with a 100 MiB quota, deleted afterwards."""
    name = f"small-{os.urandom(4).hex()}"
    ceph_cluster.create_pool(name, 100 * MiB)
    try:
        yield name
    finally:
        ceph_cluster.ceph("osd", "pool", "rm", name, name, "--yes-i-really-really-mean-it")
