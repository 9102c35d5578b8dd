"""csi-sanity, the CSI community's conformance suite, against ``shoal csi serve --mode all``."""

from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest

from tests.agent.functional.cluster import LocalCluster
from tests.plugin.csi.harness import CsiProcess, MiB, csi_sanity
from tests.plugin.functional.conftest import skip_or_fail

pytestmark = pytest.mark.functional

SUMMARY = re.compile(r"(\d+) Passed \| (\d+) Failed \| (\d+) Pending \| (\d+) Skipped")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

NOT_SERVED = (
    "NodeGetVolumeHealth not supported",
    "NodeGetStorageHealth not supported",
    "ControllerGetVolumeHealth not supported",
    "ControllerListVolumeHealth not supported",
    "SNAPSHOT_ACCESSIBILITY_CONSTRAINTS not supported",
    "Modify volume not supported",
    "Modify Volume not supported",
    "ControllerModifyVolume not supported",
    "GroupControllerService not supported",
)
"""The only skips allowed: spec v1.13's alpha RPCs and services Shoal does not advertise."""

SIZES = {
    # xfs grows online with CAP_SYS_ADMIN alone (ext4 needs CAP_SYS_RESOURCE, which a
    # container may lack); xfs needs 300 MiB at least.
    "mount": ("xfs", 320 * MiB, 384 * MiB),
    "block": ("ext4", 64 * MiB, 128 * MiB),
}


def counts(output: str) -> dict[str, int]:
    """csi-sanity's summary line as ``{passed, failed, pending, skipped}``."""
    found = SUMMARY.search(ANSI.sub("", output))
    assert found is not None, output[-3000:]
    return dict(zip(("passed", "failed", "pending", "skipped"), map(int, found.groups()),
                    strict=True))


def skips(junit: str) -> dict[str, str]:
    """Each skipped (not pending) spec of a junit report, with csi-sanity's reason."""
    found = {}
    for case in ET.parse(junit).iter("testcase"):
        skipped = case.find("skipped")
        message = "" if skipped is None else skipped.get("message") or ""
        if skipped is not None and message != "pending":
            found[case.get("name") or ""] = message.removeprefix("skipped - ")
    return found


@pytest.mark.parametrize("cluster", [("node1",)], indirect=True)
@pytest.mark.parametrize("access", ["mount", "block"])
def test_csi_sanity(
    access: str,
    cluster: LocalCluster,
    drivers: Callable[..., CsiProcess],
    workdir: str,
    capsys: Any,
    record_property: Any,
) -> None:
    """csi-sanity passes with every advertised capability on: 0 failed, no unexplained skip."""
    binary = csi_sanity()
    skip_or_fail(None if binary else "csi-sanity is not installed (see .ci/run)")
    assert binary is not None
    fs, size, expanded = SIZES[access]
    driver = drivers("node1", extra=("--max-volumes", "3"))
    parameters = os.path.join(workdir, "parameters.yaml")
    with open(parameters, "w") as f:
        f.write(f"fs: {fs}\n")
    junit = os.path.join(workdir, f"sanity-{access}.xml")
    done = subprocess.run(
        [binary, "--csi.endpoint", driver.endpoint,
         "--csi.stagingdir", os.path.join(workdir, "staging"),
         "--csi.mountdir", os.path.join(workdir, "target"),
         "--csi.testvolumesize", str(size), "--csi.testvolumeexpandsize", str(expanded),
         "--csi.testvolumeaccesstype", access, "--csi.testvolumeparameters", parameters,
         "--csi.testnodevolumeattachlimit", "--csi.junitfile", junit],
        capture_output=True, text=True, timeout=900,
    )
    found = counts(done.stdout)
    record_property(f"csi_sanity_{access}", found)
    with capsys.disabled():
        print(f"\ncsi-sanity ({access}): {found}")
    assert found["failed"] == 0, ANSI.sub("", done.stdout)[-6000:]
    assert done.returncode == 0, ANSI.sub("", done.stdout + done.stderr)[-3000:]
    assert {name: reason for name, reason in skips(junit).items()
            if reason not in NOT_SERVED} == {}
    assert found["passed"] >= 75
