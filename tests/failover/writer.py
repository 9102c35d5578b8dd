"""
A writer process: appends numbered records to a file, fsyncing each, and logs what it did.

    python -m tests.failover.writer FILE LOG [--seed S] [--interval SECONDS]

It opens ``FILE`` once (as an application holding a file on a dataset
would), then forever: writes record ``n``, fsyncs, and appends ``ok n T`` to
``LOG`` (``T`` is ``time.monotonic()``, which every process on the machine
shares). A failed write or fsync logs ``error n ERRNO T`` and the same record
is tried again after the interval: a fenced writer keeps trying, and keeps
failing. The log lives outside the dataset and is never fsynced (a killed
writer's lines stay in the page cache). :class:`WriterProcess` starts one.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import subprocess
import sys
import time
import uuid

from tests.failover.records import WriterLog, parse_log, record
from tests.processes import ROOT, wait_until


def device_of(path: str) -> str:
    """``major:minor`` of the filesystem holding ``path``."""
    dev = os.stat(path).st_dev
    return f"{os.major(dev)}:{os.minor(dev)}"


def write_forever(path: str, log_path: str, seed: str, interval: float) -> None:
    """Append records to ``path`` until killed, logging each fsync and each failure."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    with open(log_path, "a", buffering=1) as log:
        log.write(f"start {seed} {device_of(path)} {time.monotonic()}\n")
        number = 0
        while True:
            try:
                data = record(seed, number)
                if os.write(fd, data) != len(data):
                    raise OSError(errno.EIO, "short write")
                os.fsync(fd)
            except OSError as e:
                name = errno.errorcode.get(e.errno or 0, str(e.errno))
                log.write(f"error {number} {name} {time.monotonic()}\n")
            else:
                log.write(f"ok {number} {time.monotonic()}\n")
                number += 1
            time.sleep(interval)


class WriterProcess:
    """One writer child process on a dataset's mount, and its log."""

    def __init__(self, path: str, log_path: str, interval: float = 0.01) -> None:
        self.path = path
        self.log_path = log_path
        self.seed = uuid.uuid4().hex[:12]
        self.interval = interval
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WriterProcess:
        """Start writing and wait until the first record is fsynced."""
        with open(self.log_path + ".err", "ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.failover.writer", self.path, self.log_path,
                 "--seed", self.seed, "--interval", str(self.interval)],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
            )
        wait_until(lambda: self._running() and self.log().fsynced, 30, "the writer's first record")
        return self

    def _running(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"writer exited with {self.process.returncode}; see "
                               f"{self.log_path}.err")
        return True

    @property
    def pid(self) -> int:
        """The writer's process id."""
        assert self.process is not None
        return self.process.pid

    def log(self) -> WriterLog:
        """What the writer logged so far."""
        try:
            with open(self.log_path) as f:
                return parse_log(f)
        except FileNotFoundError:
            return parse_log([])

    def signal(self, number: int) -> None:
        """Send the writer a signal (SIGSTOP, SIGCONT, SIGKILL)."""
        assert self.process is not None
        if self.process.poll() is None:
            os.kill(self.process.pid, number)

    def kill(self) -> None:
        """SIGKILL the writer and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


def main() -> None:
    """The writer's command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path")
    parser.add_argument("log")
    parser.add_argument("--seed", default=uuid.uuid4().hex[:12])
    parser.add_argument("--interval", type=float, default=0.01)
    args = parser.parse_args()
    write_forever(args.path, args.log, args.seed, args.interval)


if __name__ == "__main__":
    main()
