"""The writable-mount checker sees a double across mount namespaces, and not once fenced."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid

import pytest

from agent.backends import loopdev
from tests.failover.conftest import root_or_skip
from tests.failover.harness import release_devices
from tests.failover.watch import WritableChecker
from tests.processes import wait_until

pytestmark = [pytest.mark.functional, pytest.mark.root]


def test_checker_sees_two_writable_copies_in_two_namespaces() -> None:
    """One volume mounted read-write from two loop devices, one of them in a private mount
    namespace, is counted; once one device is read-only, it no longer is."""
    root_or_skip()
    base = tempfile.mkdtemp(prefix="shoal-checker-")
    pool, dataset = os.path.join(base, "pool"), str(uuid.uuid4())
    image = os.path.join(pool, f"{dataset}.img")
    os.makedirs(pool)
    here, there = os.path.join(base, "here"), os.path.join(base, "there")
    os.makedirs(here)
    os.makedirs(there)
    checker = WritableChecker(pool)
    hidden = None
    try:
        subprocess.run(["truncate", "-s", "32M", image], check=True)
        first = loopdev.attach(image)
        subprocess.run(["mkfs.ext4", "-q", first], check=True)
        second = loopdev.attach(image)
        subprocess.run(["mount", first, here], check=True)
        hidden = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             f"mount {second} {there} && echo mounted && exec sleep 60"],
            stdout=subprocess.PIPE, text=True,
        )
        assert hidden.stdout is not None and hidden.stdout.readline() == "mounted\n"
        assert not os.path.ismount(there)  # only the other namespace has it
        checker.start()
        wait_until(lambda: checker.double_writable > 0, 10, "the checker to see the double")
        assert any(dataset in v for v in checker.violations)
        assert {p.device for p in checker.periods_of(dataset)} == {
            f"{os.major(os.stat(d).st_rdev)}:{os.minor(os.stat(d).st_rdev)}"
            for d in (first, second)
        }
        loopdev.set_read_only(second)
        time.sleep(0.1)  # let a check that began before the change finish
        seen = checker.double_writable
        wait_until(lambda: checker.checks > 20 + checker.checks // 2, 10, "more checks")
        assert checker.double_writable == seen
    finally:
        checker.stop()
        if hidden is not None:
            hidden.kill()
            hidden.wait()
        release_devices(base)
        subprocess.run(["rm", "-rf", base], check=False)
