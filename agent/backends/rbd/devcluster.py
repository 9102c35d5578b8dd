"""
A throwaway single-node Ceph cluster in one directory, for tests, ``make run`` and benches.

One monitor and one OSD (memstore: data in RAM, capped; or bluestore on a
sparse file, which survives a restart: :meth:`DevCluster.resume`), cephx on, bound to
127.0.0.1 only, no manager (RBD I/O does not need one), with the settings
``docs/backends.md`` explains (fast paxos, one-replica pools). Every file,
socket and log lives under the directory; :meth:`DevCluster.stop` kills the
daemons it started (by pid) and leaves nothing running.

Pools are made with a quota (``osd pool set-quota``): the rbd backend takes its
capacity from the quota, which needs no manager.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence

from attrs import define, field

PACKAGES = ("ceph-mon", "ceph-osd", "ceph-common", "rbd-fuse", "python3-rbd", "python3-rados")
"""The Debian packages a dev cluster and the rbd backend need."""
TOOLS = ("ceph-mon", "ceph-osd", "ceph-authtool", "monmaptool", "ceph", "rbd", "rbd-fuse")

CONF = """\
[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]
public network = 127.0.0.1/32
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = {dir}/$name.keyring
run dir = {dir}/run
admin socket = {dir}/run/$name.$pid.$cctid.asok
log file = {dir}/log/$name.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
{objectstore}
osd data = {dir}/osd/$name
mon data = {dir}/mon/$name
rbd default features = layering, exclusive-lock
rbd cache = false
mon osd blocklist default expire = 3600

[mon]
paxos propose interval = 0.01
paxos min wait = 0.001
mon osd full ratio = 0.97

[osd]
osd max object name len = 256
osd max object namespace len = 64
"""


def missing_tools() -> list[str]:
    """The cluster tools not on ``PATH`` (empty when a dev cluster can start)."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _run(argv: Sequence[str], timeout: float = 60) -> str:
    done = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


@define
class DevCluster:
    """A one-monitor, one-OSD Ceph cluster under ``directory`` (see the module docstring)."""

    directory: str
    v2_port: int = 3300
    v1_port: int = 6789
    memstore_bytes: int = 4 * 2**30
    objectstore: str = "memstore"
    """``memstore`` (fast, in RAM, gone when stopped) or ``bluestore`` (on a sparse file)."""
    bluestore_bytes: int = 20 * 2**30
    _daemons: list[subprocess.Popen[bytes]] = field(factory=list)

    @property
    def conf(self) -> str:
        """The cluster's ceph.conf."""
        return os.path.join(self.directory, "ceph.conf")

    @property
    def admin_keyring(self) -> str:
        """client.admin's keyring."""
        return os.path.join(self.directory, "client.admin.keyring")

    def ceph(self, *args: str, timeout: float = 60) -> str:
        """Run ``ceph ARGS`` as client.admin and return its stdout."""
        return _run(["ceph", "-c", self.conf, *args], timeout)

    def start(self) -> None:
        """Create the cluster and start its monitor and OSD (about 5 s)."""
        d = os.path.abspath(self.directory)
        self.directory = d
        for sub in ("run", "log", "mon", "osd"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        fsid = str(uuid.uuid4())
        with open(self.conf, "w") as f:
            f.write(
                CONF.format(
                    fsid=fsid,
                    dir=d,
                    v2=self.v2_port,
                    v1=self.v1_port,
                    objectstore=self._objectstore_settings(d),
                )
            )
        self._make_keys()
        monmap = os.path.join(d, "monmap")
        _run(["monmaptool", "--create", "--fsid", fsid, "--addv", "a",
              f"[v2:127.0.0.1:{self.v2_port},v1:127.0.0.1:{self.v1_port}]", monmap])
        _run(["ceph-mon", "-c", self.conf, "--mkfs", "-i", "a", "--monmap", monmap,
              "--keyring", os.path.join(d, "mon.keyring")])
        self._daemon(["ceph-mon", "-c", self.conf, "-f", "-i", "a"], "mon.a")
        self.ceph("status", timeout=60)
        osd_uuid = str(uuid.uuid4())
        osd_id = self.ceph("osd", "new", osd_uuid).strip()
        osd_name = f"osd.{osd_id}"
        osd_key = os.path.join(d, f"{osd_name}.keyring")
        os.makedirs(os.path.join(d, "osd", osd_name), exist_ok=True)
        _run(["ceph-authtool", "--create-keyring", osd_key, "--gen-key", "-n", osd_name])
        self.ceph("auth", "add", osd_name, "osd", "allow *", "mon", "allow profile osd",
                  "mgr", "allow profile osd", "-i", osd_key)
        _run(["ceph-osd", "-c", self.conf, "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid])
        self._daemon(["ceph-osd", "-c", self.conf, "-f", "-i", osd_id], osd_name)
        self._wait_osd_up()

    def _objectstore_settings(self, d: str) -> str:
        if self.objectstore == "memstore":
            return f"osd objectstore = memstore\nmemstore device bytes = {self.memstore_bytes}"
        return (
            "osd objectstore = bluestore\n"
            f"bluestore block path = {d}/osd/$name.block\n"
            f"bluestore block size = {self.bluestore_bytes}\n"
            "bluestore block create = true\n"
            "bluestore block db create = false\n"
            "bluestore block wal create = false\n"
            "bluestore fsck on mkfs = false\n"
            "bluestore cache size = 268435456"
        )

    def exists(self) -> bool:
        """Whether a cluster was made in the directory before (and can be resumed)."""
        return os.path.exists(self.conf) and os.path.isdir(
            os.path.join(self.directory, "osd", "osd.0")
        )

    def resume(self) -> None:
        """Start the daemons of a cluster made earlier in the directory (bluestore keeps its
        data; a memstore OSD comes back empty)."""
        self.directory = os.path.abspath(self.directory)
        self._daemon(["ceph-mon", "-c", self.conf, "-f", "-i", "a"], "mon.a")
        self.ceph("status", timeout=60)
        self._daemon(["ceph-osd", "-c", self.conf, "-f", "-i", "0"], "osd.0")
        self._wait_osd_up()

    def _make_keys(self) -> None:
        d = self.directory
        mon_key = os.path.join(d, "mon.keyring")
        _run(["ceph-authtool", "--create-keyring", mon_key, "--gen-key", "-n", "mon.",
              "--cap", "mon", "allow *"])
        _run(["ceph-authtool", "--create-keyring", self.admin_keyring, "--gen-key", "-n",
              "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *",
              "--cap", "mgr", "allow *"])
        _run(["ceph-authtool", mon_key, "--import-keyring", self.admin_keyring])
        os.link(mon_key, os.path.join(d, "mon.a.keyring"))

    def _daemon(self, argv: list[str], name: str) -> None:
        log = open(os.path.join(self.directory, "log", f"{name}.out"), "ab")
        with log:
            self._daemons.append(
                subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
            )

    def _wait_osd_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if '"num_up_osds":1' in self.ceph("osd", "stat", "--format", "json").replace(" ", ""):
                return
            for daemon in self._daemons:
                if daemon.poll() is not None:
                    raise RuntimeError(
                        f"A Ceph daemon (pid {daemon.pid}) exited with {daemon.returncode}."
                    )
            time.sleep(0.2)
        raise RuntimeError("The OSD did not come up within 60 s.")

    def create_pool(self, name: str, quota: int) -> None:
        """A replicated pool for RBD, with a quota of ``quota`` bytes."""
        self.ceph("osd", "pool", "create", name, "8", "8")
        self.ceph("osd", "pool", "set-quota", name, "max_bytes", str(quota))
        _run(["rbd", "-c", self.conf, "pool", "init", name])

    def add_client(self, name: str, pool: str | None = None) -> str:
        """A cephx client ``client.NAME`` with ``profile rbd`` on ``pool`` (every pool if
        ``None``) plus the blocklist permission; returns its keyring path."""
        keyring = os.path.join(self.directory, f"client.{name}.keyring")
        out = self.ceph(
            "auth", "get-or-create", f"client.{name}",
            "mon", 'profile rbd, allow command "osd blocklist"',
            "osd", f"profile rbd pool={pool}" if pool else "profile rbd",
        )
        with open(keyring, "w") as f:
            f.write(out)
        return keyring

    def pids(self) -> list[int]:
        """The pids of the running daemons."""
        return [d.pid for d in self._daemons if d.poll() is None]

    def stop(self, grace: float = 0) -> None:
        """Stop the daemons (the OSD first) and wait for them; idempotent. SIGTERM and up
        to ``grace`` seconds for each before SIGKILL (0: SIGKILL at once, for a throwaway
        memstore cluster)."""
        for daemon in reversed(self._daemons):
            if daemon.poll() is None and grace > 0:
                with contextlib.suppress(ProcessLookupError):
                    daemon.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    daemon.wait(timeout=grace)
            if daemon.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    daemon.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.wait(timeout=30)
        self._daemons.clear()


__all__ = ["PACKAGES", "DevCluster", "missing_tools"]
