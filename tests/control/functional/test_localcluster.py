"""``make run`` for real, as root: readiness, one run per directory, restarts, a quiet Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import ROOT, free_port

pytestmark = [pytest.mark.functional, pytest.mark.root]


def _root_or_skip() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs as root: the local cluster's agents need losetup and mount")
        pytest.skip("needs root: the local cluster's agents attach loop devices and mount")


class Output:
    """Everything a process prints, collected by a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        stream = process.stdout
        threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")),
                         daemon=True).start()

    @property
    def text(self) -> str:
        """All of it so far."""
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 90) -> re.Match[str]:
        """The first match of ``pattern``; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text)
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} in:\n{self.text}")


def _local_cluster(directory: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "control.localcluster", "--dir", str(directory), "--port",
         str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    """The cluster's directory, cleaned (unmounted, detached) afterwards."""
    _root_or_skip()
    directory = tmp_path / "run"
    yield directory
    subprocess.run([sys.executable, "-m", "control.localcluster", "--dir", str(directory),
                    "--clean"], cwd=ROOT, timeout=120, check=False)


def test_make_run_lifecycle(run_dir: Path) -> None:
    """Ready only with both agents; a second run refuses; a dead agent returns; Ctrl-C is quiet."""
    port = free_port()
    process = _local_cluster(run_dir, port)
    output = Output(process)
    try:
        output.wait_for(r"export PATH=\S+ SHOAL_URL=http://127.0.0.1:\d+")
        assert "agent node1 pid" in output.text and "agent node2 pid" in output.text
        second = subprocess.run(
            [sys.executable, "-m", "control.localcluster", "--dir", str(run_dir), "--port",
             str(free_port())],
            capture_output=True, text=True, cwd=ROOT, timeout=30,
        )
        assert second.returncode == 1
        assert f"already running a cluster in {run_dir}" in second.stderr
        pid = int(output.wait_for(r"agent node2 pid (\d+)").group(1))
        os.kill(pid, signal.SIGKILL)
        output.wait_for(rf"agent node2 \(pid {pid}\) was killed by SIGKILL; restarting it")
        output.wait_for(r"agent node2 restarted \(pid \d+\)")
    finally:
        process.send_signal(signal.SIGINT)
        status = process.wait(60)
    assert status == 0
    assert "Traceback" not in output.text
    assert "stopping the cluster" in output.text


def test_make_run_on_ceph(run_dir: Path) -> None:
    """``make run BACKEND=rbd``: Ceph and both agents come up, a dataset is mounted from an
    RBD image, and Ctrl-C leaves no daemon, rbd-fuse, FUSE mount or loop device behind."""
    from agent.backends.rbd.devcluster import missing_tools
    from tests.agent.backends.ceph.conftest import leftovers, why_not

    reason = why_not()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"make run BACKEND=rbd cannot be tried under CI=true: {reason}")
        pytest.skip(reason)
    assert missing_tools() == []
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "control.localcluster", "--dir", str(run_dir), "--port",
         str(port), "--backend", "rbd"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )
    output = Output(process)
    try:
        output.wait_for(r"export PATH=\S+ SHOAL_URL=http://127.0.0.1:\d+", timeout=180)
        env = {**os.environ, "SHOAL_URL": f"http://127.0.0.1:{port}"}
        created = subprocess.run(
            [sys.executable, "-m", "control.cli", "dataset", "create", "--node", "node1",
             "--size", "64MiB", "--wait", "--json"],
            capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
        )
        assert created.returncode == 0, created.stderr
        mounts = [p for p in (run_dir / "node1" / "mounts").iterdir() if os.path.ismount(p)]
        assert len(mounts) == 1
        with open("/proc/self/mountinfo") as f:
            assert "fuse.rbd-fuse" in f.read()
    finally:
        process.send_signal(signal.SIGINT)
        status = process.wait(120)
    assert status == 0, output.text
    assert "Traceback" not in output.text
    assert leftovers(str(run_dir)) == []
    daemons = subprocess.run(["pgrep", "-f", f"ceph-(mon|osd) -c {run_dir}"],
                             capture_output=True, text=True)
    assert daemons.stdout == ""
