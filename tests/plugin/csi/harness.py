"""
Real CSI driver processes for functional tests and ``bench/csi.py``.

:class:`CsiProcess` runs ``shoal csi serve`` as a child process on a Unix
socket; :class:`Csi` is a blocking gRPC client of it (the generated stubs),
as kubelet and the external sidecars are. :func:`csi_sanity` finds the
csi-sanity binary (``go install`` puts it in ``$(go env GOPATH)/bin``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from tests.processes import ROOT, wait_until

MiB = 1024 * 1024


class CsiProcess:
    """One ``shoal csi serve`` child process."""

    def __init__(
        self, control_url: str, socket: str, mode: str, log_path: str, extra: Sequence[str] = ()
    ) -> None:
        self.socket = socket
        self.endpoint = "unix://" + socket
        self.log_path = log_path
        self.command = [
            sys.executable, "-m", "control.cli", "csi", "serve", "--control", control_url,
            "--endpoint", self.endpoint, "--mode", mode, *extra,
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> CsiProcess:
        """Start the driver and wait until its socket answers Probe."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=ROOT)

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the CSI driver exited; see {self.log_path}")
            return os.path.exists(self.socket)

        wait_until(ready, 30, "the CSI driver's socket", interval=0.05)
        with Csi(self.endpoint) as csi:
            csi.wait_ready()
        return self

    def stop(self) -> int | None:
        """Stop the driver politely, then firmly; returns its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def rss_kib(self) -> int:
        """The driver's resident set size in KiB."""
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


class Csi:
    """A blocking gRPC client of one driver: ``csi.identity``, ``.controller``, ``.node``."""

    def __init__(self, endpoint: str) -> None:
        import grpc

        from plugin.csi.proto import csi_pb2, csi_pb2_grpc

        self.pb = csi_pb2
        self.channel = grpc.insecure_channel(endpoint)
        self.identity = csi_pb2_grpc.IdentityStub(self.channel)
        self.controller = csi_pb2_grpc.ControllerStub(self.channel)
        self.node = csi_pb2_grpc.NodeStub(self.channel)

    def __enter__(self) -> Csi:
        return self

    def __exit__(self, *_: Any) -> None:
        self.channel.close()

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until Probe answers ready."""
        def ready() -> bool:
            try:
                return bool(self.identity.Probe(self.pb.ProbeRequest(), timeout=5).ready.value)
            except Exception:
                return False

        wait_until(ready, timeout, "the CSI driver to be ready", interval=0.1)

    def mount_capability(self, mode: str = "SINGLE_NODE_WRITER", fs: str = "") -> Any:
        """A mount VolumeCapability."""
        cap = self.pb.VolumeCapability()
        cap.mount.fs_type = fs
        cap.access_mode.mode = self.pb.VolumeCapability.AccessMode.Mode.Value(mode)
        return cap

    def block_capability(self, mode: str = "SINGLE_NODE_WRITER") -> Any:
        """A block VolumeCapability."""
        cap = self.pb.VolumeCapability()
        cap.block.SetInParent()
        cap.access_mode.mode = self.pb.VolumeCapability.AccessMode.Mode.Value(mode)
        return cap


def csi_sanity() -> str | None:
    """The csi-sanity binary: on ``PATH``, or where ``go install`` put it."""
    found = shutil.which("csi-sanity")
    if found:
        return found
    gopath = os.environ.get("GOPATH")
    if not gopath and shutil.which("go"):
        done = subprocess.run(["go", "env", "GOPATH"], capture_output=True, text=True)
        gopath = done.stdout.strip()
    candidate = os.path.join(gopath or os.path.expanduser("~/go"), "bin", "csi-sanity")
    return candidate if os.access(candidate, os.X_OK) else None


def kill(driver: CsiProcess) -> None:
    """SIGKILL a driver, as its node's death would."""
    if driver.process is not None and driver.process.poll() is None:
        driver.process.kill()
        driver.process.wait()
