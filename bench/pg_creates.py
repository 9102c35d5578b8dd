"""
Creates on PostgreSQL with 8 clients, and where the CPU goes (issue 16, pgcreates).

One throwaway PostgreSQL (:func:`_scale_db.database`), seeded with 1,000 datasets on
10 nodes, one real ``shoal control serve`` on it, then ``--rounds`` rounds of
``--clients`` keep-alive creators for ``--seconds`` each (:func:`_scale_writes.level`).
Each round prints creates/s, p50 and p99, and the CPU per create of the service, of
PostgreSQL (the postmaster and every child of it, from ``/proc``), and of the client
processes, with their sum in cores against the machine's, the transactions committed
per create (``pg_stat_database``: a group of creates commits two, its placement read
and its write, so this is two over the mean group size), and the load average.

    python bench/pg_creates.py [--rounds 3] [--seconds 4] [--clients 8] [--profile OUT]

``--profile OUT`` records the service with py-spy during the first round, twice over:
the GIL holder only (``OUT.gil.txt``: where the CPU goes) and every thread, idle
included (``OUT.wall.txt``: where the wall time goes), both raw, 200 Hz.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from _common import KeepAlive, percentile
from _scale_db import database, node_ids, seed
from _scale_reads import _warmed
from _scale_writes import _cpu_seconds, _serve, level
from sqlalchemy import create_engine, text

DATASETS = 1_000
NODES = 10


def _children(parent: int) -> list[int]:
    """The pids of ``parent``'s children (from ``/proc``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(entry))
    return found


def _postgres_cpu(postmaster: int) -> float:
    """CPU seconds of the postmaster and its children alive now."""
    total = 0.0
    for pid in [postmaster, *_children(postmaster)]:
        try:
            total += _cpu_seconds(pid)
        except OSError:
            continue
    return total


def _postmaster(url: str) -> int:
    """The pid of the postmaster listening on ``url``'s port (its command line has ``-p PORT``)."""
    port = url.rsplit(":", 1)[1].split("/", 1)[0].encode()
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                words = cmdline.read().split(b"\0")
        except OSError:
            continue
        pairs = zip(words, words[1:], strict=False)
        if words[0].endswith(b"/postgres") and (b"-p", port) in pairs:
            return pid
    raise RuntimeError(f"no postmaster on port {port.decode()}")


def _commits(url: str) -> int:
    """Transactions committed in ``url``'s database so far (``pg_stat_database``)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            counted = connection.execute(text(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            )).scalar_one()
    finally:
        engine.dispose()
    return int(counted)


def _spies(pid: int, out: str | None, seconds: float) -> list[subprocess.Popen[bytes]]:
    """py-spy recording ``pid`` for ``seconds`` (see the module docstring), if ``out``."""
    if out is None:
        return []
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    common = [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "-r", "200",
              "--format", "raw", "--nonblocking"]
    return [
        subprocess.Popen([*common, "--threads", "--gil", "-o", f"{out}.gil.txt"]),
        subprocess.Popen([*common, "--threads", "--idle", "-o", f"{out}.wall.txt"]),
    ]


def main() -> None:
    """Run the rounds and print one line per round."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--profile", metavar="OUT")
    options = parser.parse_args()
    cores = os.cpu_count() or 1
    with database("postgresql") as url:
        nodes = node_ids(NODES)
        seed(url, nodes, DATASETS)
        primaries = [str(n) for n in nodes]
        postmaster = _postmaster(url)
        log = tempfile.NamedTemporaryFile(prefix="shoal-pgcreates-", suffix=".log")
        service = _serve(url, options.clients, log.name)
        assert service.process is not None
        pid = service.process.pid
        try:
            KeepAlive(service.port).check("GET", "/v1/configuration/datasets")
            _warmed(service)
            level(service.port, pid, primaries, 2, 1.0)
            for round_ in range(options.rounds):
                spies = _spies(pid, options.profile, options.seconds) if round_ == 0 else []
                pg_before, commits = _postgres_cpu(postmaster), _commits(url)
                samples, wall, served, used = level(
                    service.port, pid, primaries, options.clients, options.seconds
                )
                pg = _postgres_cpu(postmaster) - pg_before
                time.sleep(0.6)  # the statistics collector's interval is 500 ms
                commits = _commits(url) - commits
                for spy in spies:
                    spy.wait()
                count = max(1, len(samples))
                per = 1000 / count
                cores_used = (served + pg + used) / wall
                with open("/proc/loadavg") as loadavg:
                    load = " ".join(loadavg.read().split()[:3])
                print(
                    f"{options.clients} clients: {len(samples) / wall:.0f}/s, "
                    f"p50 {1000 * percentile(samples, 0.5):.1f} ms, "
                    f"p99 {1000 * percentile(samples, 0.99):.1f} ms; CPU per create: "
                    f"service {served * per:.2f} ms ({100 * served / wall:.0f}%), "
                    f"postgres {pg * per:.2f} ms ({100 * pg / wall:.0f}%), "
                    f"clients {used * per:.2f} ms; {cores_used:.2f} of {cores} cores; "
                    f"{commits / count:.2f} commits per create; "
                    f"load {load}",
                    flush=True,
                )
                time.sleep(0.5)
        finally:
            service.stop()
            log.close()


if __name__ == "__main__":
    main()
