"""
Whole-process start-up time of the ``shoal`` CLI.

Each sample starts a fresh interpreter running the installed ``shoal`` program
(``python -m control.cli`` when no script is found) and waits for it to exit:
``shoal --help``, ``shoal dataset --help``, and ``shoal dataset list`` against a
local control service (SQLite) holding ``--datasets`` datasets. The issue's
targets: ``--help`` under 300 ms, ``dataset list`` under 500 ms.

    python bench/cli_startup.py [--samples 20] [--datasets 10] [--module]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

from _common import ROOT, KeepAlive, Table, timed

from tests.processes import ControlProcess

SIZE = 64 * 1024 * 1024


def shoal_command() -> list[str]:
    """The ``shoal`` program next to this interpreter, else ``python -m control.cli``."""
    script = os.path.join(os.path.dirname(sys.executable), "shoal")
    if os.access(script, os.X_OK):
        return [script]
    found = shutil.which("shoal")
    return [found] if found else [sys.executable, "-m", "control.cli"]


def run(command: list[str], env: dict[str, str]) -> None:
    """Run one CLI process to its end; fail loudly if it fails."""
    done = subprocess.run(command, capture_output=True, env=env, cwd=ROOT, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr!r}")


def seed(port: int, count: int) -> None:
    """Register a node and create ``count`` datasets on it."""
    client = KeepAlive(port)
    node = str(uuid.uuid4())
    client.check("PUT", f"/v1/shoal/nodes/{node}", {"host": "10.0.0.1", "era": None, "labels": {}})
    for _ in range(count):
        client.check("POST", "/v1/configuration/datasets",
                     {"primary": node, "maximum_size": SIZE}, 201)


def main() -> None:
    """Time each command ``--samples`` times and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--datasets", type=int, default=10)
    parser.add_argument("--module", action="store_true",
                        help="run `python -m control.cli` (e.g. with PYTHONPATH set to a checkout)")
    options = parser.parse_args()
    shoal = [sys.executable, "-m", "control.cli"] if options.module else shoal_command()
    table = Table(f"CLI start-up, whole process ({' '.join(os.path.basename(a) for a in shoal)})")
    # An installed shoal has its byte code cached; PYTHONDONTWRITEBYTECODE (set in some
    # sandboxes and CI images) would make every run compile the project from source.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    run([*shoal, "--help"], env)  # warm the byte-code and page caches
    helps = (("shoal --help", ["--help"]), ("shoal dataset --help", ["dataset", "--help"]))
    for name, args in helps:
        samples, wall = timed(lambda args=args: run([*shoal, *args], env), options.samples)
        table.add(name, samples, wall, None)
    with tempfile.TemporaryDirectory() as directory:
        control = ControlProcess(f"sqlite:///{directory}/shoal.db").start()
        try:
            seed(control.port, options.datasets)
            local = {**env, "SHOAL_URL": control.url}
            run([*shoal, "dataset", "list"], local)
            samples, wall = timed(lambda: run([*shoal, "dataset", "list"], local), options.samples)
            table.add(f"shoal dataset list ({options.datasets} datasets)", samples, wall, None)
        finally:
            control.stop()
    print(table.render())


if __name__ == "__main__":
    main()
