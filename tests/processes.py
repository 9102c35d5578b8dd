"""
Start real Shoal processes for functional tests and benchmarks.

These helpers block (they wait for a port to answer), so they are used from
test fixtures and benchmark scripts, never from inside the reactor.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import IO, Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POSTGRES_URL = os.environ.get(
    "SHOAL_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

NO_FAILOVER_GRACE = 3600.0
"""A failover grace (seconds, ``--failover-grace``) longer than any test, for control services
whose tests stop, kill or pause agents, or register stand-in nodes that never report, and
expect no failover: with the default 10 s, a node silent for 10 s on two loaded cores is
fenced and its datasets fail over behind the test's back (seen: an agent's SIGTERM and
restart took 10.4 s, and its dataset was mounted on the other node too; a node registered
by one test was fenced before the next test could create a dataset on it). The failover's
own tests set a short grace (tests/failover, tests/plugin/csi/functional/test_node_failure.py)."""


def free_port() -> int:
    """A TCP port on loopback that nobody uses right now, below the ephemeral range.

    Ports the kernel hands out for outgoing connections come from the ephemeral
    range, so a server port chosen there could be taken by a client's connection
    before (or while) the server restarts on it.
    """
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ephemeral_low() -> int:
    """The lowest port of the kernel's ephemeral range (32768 when it cannot be read)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def shoal(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Any:
    """Run the ``shoal`` CLI with this interpreter and return the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "control.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


class ControlProcess:
    """A ``shoal control serve`` child process on a free loopback port."""

    def __init__(
        self,
        database: str,
        extra: Sequence[str] = (),
        log_path: str | None = None,
        nofile: int | None = None,
    ):
        self.database = database
        self.extra = list(extra)
        self.nofile = nofile
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The base URL of the service (https when started with a TLS directory)."""
        scheme = "https" if "--tls-dir" in self.extra else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ControlProcess:
        """Start the service and wait until its port accepts connections."""
        command = [
            sys.executable,
            "-m",
            "control.cli",
            "control",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--database",
            self.database,
            *self.extra,
        ]
        out = open(self.log_path, "ab") if self.log_path else tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
        self._limit(self.process.pid)
        wait_for_port(self.port, timeout, self.process, out)
        return self

    def _limit(self, pid: int) -> None:
        """Lower the started child's file-descriptor limit, when asked to.

        Set from outside with ``prlimit`` rather than in a ``preexec_fn``: a
        ``preexec_fn`` runs the at-fork hooks of what this process loaded in the
        child, and grpcio's (loaded by the CSI tests) restart its poller there,
        which aborts the child (SIGABRT, ``epoll_wait error: Bad file descriptor``)
        once the descriptors are closed for the exec. The child opens its sockets
        well after it starts, under the lowered limit."""
        if self.nofile is not None:
            import resource

            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (self.nofile, hard))

    def kill(self) -> None:
        """SIGKILL the service, as a crash would."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """Stop the service politely, then firmly."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def rss_kib(self) -> int:
        """The service's resident set size in KiB."""
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


def wait_until(check: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.01) -> Any:
    """Call ``check`` until it returns something true, and return that.

    Fails with an :class:`AssertionError` naming ``what`` after ``timeout``
    seconds. The one polling helper of the functional tests and benchmarks.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[bytes], output: IO[bytes] | None = None
) -> None:
    """Wait until ``port`` accepts connections; fail if ``process`` exits first,
    quoting the end of its ``output`` (the file its stdout and stderr went to)."""

    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(
                f"service exited with {process.returncode} before listening; "
                f"its output ended with:\n{_tail(output)}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return False
        return True

    wait_until(listening, timeout, f"a service listening on port {port}")


def _tail(output: IO[bytes] | None, size: int = 4000) -> str:
    """The last ``size`` bytes written to ``output`` (a file open for writing), as text."""
    if output is None:
        return "(not kept)"
    with open(f"/proc/self/fd/{output.fileno()}", "rb") as again:  # readable even if ``ab``
        again.seek(max(0, os.fstat(again.fileno()).st_size - size))
        return again.read().decode(errors="replace")


def http_json(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    context: Any = None,
):
    """A blocking JSON request: returns ``(status, headers, decoded body)``.

    ``context`` is the :class:`ssl.SSLContext` of an HTTPS request (client certificates).
    """
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def postgres_available() -> bool:
    """Whether the test PostgreSQL server answers on 127.0.0.1:5432."""
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        return True
    except OSError:
        return False


def _postgres_admin(*statements: str) -> str:
    """Run statements on the test server's ``postgres`` database; returns the server URL."""
    from sqlalchemy import create_engine, text

    server = POSTGRES_URL.rsplit("/", 1)[0]
    engine = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()
    return server


def fresh_postgres_database(name: str) -> str:
    """Create (or re-create) an empty database ``name`` on the test server; returns its URL."""
    server = _postgres_admin(
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
    )
    return f"{server}/{name}"


def drop_postgres_database(name: str) -> None:
    """Drop the database ``name`` from the test server."""
    _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
