"""
The agent's fences on the loopback backend, on real loop devices (root only).

Per trial, a 64 MiB ext4 volume is attached to node ``a`` and mounted; then:

- ``fence``: ``fence(id, "a")`` from node ``b`` (mountinfo scan of every
  process, ``FS_IOC_SHUTDOWN``, ``BLKROSET``, the record moved aside), idle;
- ``fence, writer running``: the same while a process appends and fsyncs;
- ``take over``: fence, attach on ``b`` (a new loop device) and mount there
  (the journal replayed), as a new primary's agent does in one pass;
- ``self-fence``: shutdown and lazy unmount of the mount, as an agent whose
  lease ran out does (no backend call);
- ``clean up leftover``: ``clean_up_fenced`` on ``a`` once unmounted;
- ``mountinfo scan``: finding a device's mounts in every mount namespace.

    sudo .venv/bin/python bench/fence.py [--trials 20]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from uuid import uuid4

from _common import Table

from agent.backends.loopback import LoopbackBlockDeviceAPI
from agent.fs import shutdown
from agent.fs.real import RealFilesystems
from tests.agent.backends.test_loopback import _release

MiB = 1024 * 1024
WRITER = (
    "import os, sys\n"
    "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND)\n"
    "while True:\n"
    "    try:\n"
    "        os.write(fd, b'x' * 4096); os.fsync(fd)\n"
    "    except OSError:\n"
    "        break\n"
)


def _rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class Trial:
    """One volume mounted on node ``a`` of a fresh pool."""

    def __init__(self, base: str) -> None:
        self.base = base
        cluster = uuid4()
        self.a = LoopbackBlockDeviceAPI(os.path.join(base, "pool"), cluster, "a")
        self.b = LoopbackBlockDeviceAPI(os.path.join(base, "pool"), cluster, "b")
        self.fs = RealFilesystems(under=os.path.join(base, "mnt"))
        volume = self.a.create_volume(uuid4(), 64 * MiB)
        self.id = volume.blockdevice_id
        self.a.attach_volume(self.id, "a", 1)
        device = self.a.get_device_path(self.id)
        subprocess.run(["mkfs.ext4", "-q", device], check=True, stdin=subprocess.DEVNULL)
        self.path = os.path.join(base, "mnt", "a")
        self.fs.mount(device, self.path)

    def close(self) -> None:
        """Unmount everything, clean up, detach, destroy."""
        for mount in reversed(self.fs.mounts()):
            self.fs.unmount(mount.path, lazy=True)
        deadline = time.monotonic() + 30
        while self.a.fenced_leftovers():
            try:
                for leftover in self.a.fenced_leftovers():
                    self.a.clean_up_fenced(leftover)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        for volume in self.a.list_volumes():
            if volume.attached_to is not None:
                self.a.detach_volume(volume.blockdevice_id)
            self.a.destroy_volume(volume.blockdevice_id)


def _measure(base: str, trials: int, step: Callable[[Trial], float]) -> list[float]:
    samples = []
    for _ in range(trials):
        trial = Trial(base)
        try:
            samples.append(step(trial))
        finally:
            trial.close()
    return samples


def _fence(trial: Trial) -> float:
    start = time.perf_counter()
    trial.b.fence(trial.id, "a")
    return time.perf_counter() - start


def _fence_writing(trial: Trial) -> float:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, os.path.join(trial.path, "data")]
    )
    try:
        time.sleep(0.2)
        return _fence(trial)
    finally:
        writer.wait(30)


def _take_over(trial: Trial) -> float:
    start = time.perf_counter()
    trial.b.fence(trial.id, "a")
    trial.b.attach_volume(trial.id, "b", 2)
    trial.fs.mount(trial.b.get_device_path(trial.id), os.path.join(trial.base, "mnt", "b"))
    return time.perf_counter() - start


def _self_fence(trial: Trial) -> float:
    start = time.perf_counter()
    trial.fs.shutdown(trial.path)
    trial.fs.unmount(trial.path, lazy=True)
    return time.perf_counter() - start


def _clean_up(trial: Trial) -> float:
    trial.b.fence(trial.id, "a")
    trial.fs.unmount(trial.path, lazy=True)
    (leftover,) = trial.a.fenced_leftovers()
    start = time.perf_counter()
    trial.a.clean_up_fenced(leftover)
    return time.perf_counter() - start


def _scan(trial: Trial) -> float:
    device = trial.a.get_device_path(trial.id)
    start = time.perf_counter()
    assert shutdown.mounts_everywhere(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Run every scenario and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (losetup, mount)", file=sys.stderr)
        return 2
    processes = sum(1 for name in os.listdir("/proc") if name.isdigit())
    table = Table(f"Loopback fences ({args.trials} trials, {processes} processes)")
    scenarios: list[tuple[str, Callable[[Trial], float]]] = [
        ("fence", _fence),
        ("fence, writer running", _fence_writing),
        ("take over: fence + attach + mount", _take_over),
        ("self-fence: shutdown + lazy unmount", _self_fence),
        ("clean up leftover", _clean_up),
        ("mountinfo scan", _scan),
    ]
    with tempfile.TemporaryDirectory(prefix="shoal-bench-fence-") as base:
        try:
            for name, step in scenarios:
                started = time.perf_counter()
                samples = _measure(base, args.trials, step)
                table.add(name, samples, None, _rss())
                print(f"{name}: done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        finally:
            _release(os.path.join(base, "pool"))
    print(table.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
