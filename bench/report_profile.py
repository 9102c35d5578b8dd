"""
Send changed state reports in a loop to a seeded service, for a profiler (issue 16).

``python bench/report_profile.py [--store sqlite] [--datasets 100000] [--nodes 50]
[--seconds 60]`` seeds a cluster as ``bench/scale.py --parts moves`` does, starts the
service, prints its pid, then alternates one node's two reports (one dataset attached,
then all mounted) for ``--seconds``, printing the p50 of the body pre-encoded (the
service's share) and of the body encoded per request (as the agent does).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import KeepAlive, percentile  # noqa: E402
from _scale_moves import (  # noqa: E402
    SERVE,
    _warmed,
    cluster_arguments,
    report_body,
    reported_cluster,
)
from _scale_nodes import cpu_seconds  # noqa: E402

from tests.processes import ControlProcess  # noqa: E402


def main() -> None:
    """Seed, serve, and send changed reports until the time is up."""
    parser = cluster_arguments(__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with reported_cluster(args.store, args.datasets, args.nodes) as (url, ids, placed):
        log = tempfile.NamedTemporaryFile(prefix="shoal-report-", suffix=".log", delete=False)
        control = ControlProcess(url, extra=SERVE, log_path=log.name).start(timeout=600)
        try:
            _warmed(log.name, timeout=600)
            print(f"service pid {control.process.pid}", flush=True)
            client = KeepAlive(control.port)
            generation = client.check("GET", "/v1/shoal/watch?timeout=0")["configuration"]
            node = ids[0]
            bodies = [report_body(placed[node], generation, "era-0", mounted=False),
                      report_body(placed[node], generation, "era-0")]
            raw = [json.dumps(body).encode() for body in bodies]
            path = f"/v1/shoal/state/{node}"
            encoded, pre = [], []
            deadline = time.monotonic() + args.seconds
            flip = 0
            assert control.process is not None
            cpu = cpu_seconds(control.process.pid)
            while time.monotonic() < deadline:
                flip += 1
                before = time.perf_counter()
                client.check("PUT", path, raw[flip % 2])
                pre.append(time.perf_counter() - before)
                flip += 1
                before = time.perf_counter()
                client.check("PUT", path, bodies[flip % 2])
                encoded.append(time.perf_counter() - before)
            cpu = cpu_seconds(control.process.pid) - cpu
            print(f"service CPU per report: {cpu / (len(pre) + len(encoded)) * 1000:.2f} ms")
            for name, samples in (("pre-encoded", pre), ("encoded per request", encoded)):
                print(f"{name}: n={len(samples)} p50={percentile(samples, 0.5) * 1000:.2f} ms "
                      f"p99={percentile(samples, 0.99) * 1000:.2f} ms")
        finally:
            control.stop()
            os.unlink(log.name)


if __name__ == "__main__":
    main()
