"""
A throwaway PostgreSQL server of its own, for tests that restart or kill the database.

The shared server on 127.0.0.1:5432 serves every other test and helper, so
tests that restart PostgreSQL start one of their own instead:
``initdb`` in a temporary directory, ``pg_ctl`` on a free loopback port,
trust authentication, run as the ``postgres`` user when we are root (the
server refuses to run as root). Blocking helpers, like :mod:`tests.processes`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile

from tests.processes import free_port


def postgres_bin() -> str | None:
    """The directory of the newest installed PostgreSQL server binaries, or ``None``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else None


class ThrowawayPostgres:
    """One PostgreSQL server in a temporary directory on a free port; :meth:`remove` it after."""

    def __init__(self) -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL server binaries are not installed (/usr/lib/postgresql)")
        self.bin = bin_dir
        self.port = free_port()
        self.base = tempfile.mkdtemp(prefix="shoal-pg-")
        self.data = os.path.join(self.base, "data")
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str, timeout: float = 120) -> None:
        command = [os.path.join(self.bin, tool), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout, cwd=self.base)

    def start(self) -> ThrowawayPostgres:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200 -c shared_buffers=16MB"
        )
        log = os.path.join(self.base, "server.log")
        try:
            self._run("pg_ctl", "-D", self.data, "-l", log, "-o", options, "-w", "-t", "60",
                      "start")
        except subprocess.CalledProcessError as e:
            raise RuntimeError(
                f"PostgreSQL did not start on port {self.port}: {e.stderr!r}; "
                f"its log ended with:\n{_tail(log)}"
            ) from e
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect everyone; ``immediate``: as a crash)."""
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        """Stop and start the server again, keeping its data."""
        self.stop(mode)
        self.start()

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create the database ``name``; returns its URL."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)

    def remove(self) -> None:
        """Stop the server if it runs and delete its directory."""
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


def _tail(path: str, size: int = 3000) -> str:
    """The last ``size`` bytes of the file at ``path``, as text."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - size))
            return f.read().decode(errors="replace")
    except OSError as e:
        return f"(unreadable: {e})"
