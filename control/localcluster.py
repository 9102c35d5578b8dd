"""
Start a whole local cluster for a newcomer: ``make run``.

One control service on SQLite bound to loopback and, when running as root
(loop devices and mounts need it), two agents ``node1`` and ``node2`` sharing
one loopback storage pool. Everything lives under ``--dir``; Ctrl-C stops it all.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence

AGENT_NAMES = ("node1", "node2")


def shoal_command() -> list[str]:
    """How to run the ``shoal`` CLI with this interpreter."""
    return [sys.executable, "-m", "control.cli"]


def control_command(directory: str, port: int) -> list[str]:
    """The command line of the local control service."""
    return [
        *shoal_command(),
        "control",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--database",
        f"sqlite:///{os.path.join(directory, 'control.db')}",
    ]


def agent_command(directory: str, port: int, name: str) -> list[str]:
    """The command line of one local agent on the shared loopback pool."""
    return [
        *shoal_command(),
        "agent",
        "run",
        "--control",
        f"http://127.0.0.1:{port}",
        "--node-name",
        name,
        "--host",
        "127.0.0.1",
        "--state-dir",
        os.path.join(directory, name),
        "--backend",
        "loopback",
        "--pool",
        os.path.join(directory, "pool"),
        "--mount-root",
        os.path.join(directory, name, "mounts"),
    ]


def agents_available() -> tuple[bool, str]:
    """Whether agents can run here, and why not if they cannot."""
    if os.geteuid() != 0:
        return False, "not root: agents need losetup and mount"
    try:
        import agent.cli  # noqa: F401
    except ImportError:
        return False, "the agent package has no CLI yet"
    return True, ""


def clean(directory: str) -> None:
    """Unmount and detach everything the local cluster left under ``directory``, then remove it.

    Removing the directory while datasets are mounted would delete their data
    through the mounts, so ``make clean`` comes here instead of ``rm -rf``.
    """
    from agent.backends.loopdev import detach, devices_backed_by
    from agent.fs.real import RealFilesystems

    if not os.path.isdir(directory):
        return
    filesystems = RealFilesystems(under=directory)
    for mount in sorted(filesystems.mounts(), key=lambda m: m.path, reverse=True):
        filesystems.unmount(mount.path)
    for folder, _dirs, files in os.walk(os.path.join(directory, "pool")):
        for name in files:
            path = os.path.join(folder, name)
            for device in devices_backed_by(path):
                detach(device, path)
    shutil.rmtree(directory)


def _interrupt(_signal: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both stop the cluster, even when started in the background."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the local cluster in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default="run", help="where databases, pools and mounts go")
    parser.add_argument("--port", type=int, default=4523)
    parser.add_argument("--clean", action="store_true", help="unmount, detach and remove --dir")
    args = parser.parse_args(argv)
    if args.clean:
        clean(os.path.abspath(args.dir))
        return 0
    _stop_on_signals()
    directory = os.path.abspath(args.dir)
    os.makedirs(directory, exist_ok=True)
    processes = [subprocess.Popen(control_command(directory, args.port))]
    ok, why = agents_available()
    if ok:
        processes += [
            subprocess.Popen(agent_command(directory, args.port, name)) for name in AGENT_NAMES
        ]
    else:
        print(f"shoal: starting the control service only ({why})", file=sys.stderr)
    print(f"shoal: cluster running; try: export SHOAL_URL=http://127.0.0.1:{args.port}")
    try:
        return processes[0].wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait()


if __name__ == "__main__":
    sys.exit(main())
