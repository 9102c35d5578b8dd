"""A real control service under a flood of slow connections, and its JSON refusals on the wire.

The service runs with its file-descriptor limit lowered to 256, so that the
flood (1,000 connections trickling header lines, far more than it could hold
open) would exhaust it without the connection limits: its cap (the limit less
128) then closes the connections idle the longest to make room, and the header
deadline closes the rest with a 408.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import ControlProcess, http_json

pytestmark = pytest.mark.functional

NOFILE = 256
HEADER_TIMEOUT = 6.0
PER_ADDRESS = 100
FLOOD_ADDRESSES = [f"127.0.0.{i}" for i in range(2, 12)]
CAP = NOFILE - 128
"""The service's connection cap: its fd limit less the default headroom."""
OWN_REQUESTS = 8
"""More than the connections this test's own requests open, each of which may evict a slow one."""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlProcess]:
    """A control service with a lowered fd limit and a short header deadline."""
    tmp_path = tmp_path_factory.mktemp("connections")
    extra = [
        "--header-timeout", str(HEADER_TIMEOUT),
        "--max-connections-per-address", str(PER_ADDRESS),
    ]
    database = f"sqlite:///{tmp_path / 'control.db'}"
    process = ControlProcess(
        database, extra, log_path=str(tmp_path / "control.log"), nofile=NOFILE
    ).start()
    yield process
    process.stop()


def slow_connection(port: int, source: str) -> socket.socket | None:
    """A connection that has sent a request line and one header, and no more; None if refused."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    except OSError:
        return None
    try:
        sock.sendall(b"GET /v1/version HTTP/1.1\r\nHost: shoal.test\r\n")
    except OSError:
        sock.close()
        return None
    return sock


def trickle(socks: list[socket.socket]) -> None:
    """Send one more header line on every connection the service still holds."""
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.send(b"X-Slow: 1\r\n")


def final_answer(sock: socket.socket, deadline: float) -> tuple[str, bytes]:
    """How the service ended ``sock`` by ``deadline``: ("closed", answer) or ("open", b"")."""
    received = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            chunk = sock.recv(65536)
        except OSError:
            return "closed", received
        if not chunk:
            return "closed", received
        received += chunk
    return "open", received


def status_of(answer: bytes) -> int | None:
    """The status code of a raw HTTP answer, if there is one."""
    if not answer.startswith(b"HTTP/1.1 "):
        return None
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["description"]
    return int(answer.split()[1])


def timed_json(method: str, url: str, body: object = None) -> tuple[int, object, float]:
    """One JSON request; its status, decoded body and how long it took."""
    start = time.monotonic()
    status, _, decoded = http_json(method, url, body)
    return status, decoded, time.monotonic() - start


def served_at_once(elapsed: float) -> bool:
    """Whether a request was served while the flood still held its connections: a starved
    client would only be served once the header timeout dropped them (not a timing target)."""
    return elapsed < HEADER_TIMEOUT


def test_slow_connection_flood_does_not_starve_other_clients(service: ControlProcess) -> None:
    """1,000 slow connections, 4x the fd limit: others are served at once, the slow dropped."""
    flood: list[socket.socket] = []
    for source in FLOOD_ADDRESSES:
        opened = [slow_connection(service.port, source) for _ in range(PER_ADDRESS)]
        flood.extend(sock for sock in opened if sock is not None)
        if source == FLOOD_ADDRESSES[0]:
            extra = slow_connection(service.port, source)
            assert extra is not None
            kind, answer = final_answer(extra, time.monotonic() + 2)
            assert (kind, status_of(answer)) == ("closed", 429)
    trickle(flood)

    status, version, elapsed = timed_json("GET", f"{service.url}/v1/version")
    assert status == 200 and "shoal" in version and served_at_once(elapsed)  # type: ignore[operator]
    node = str(uuid.uuid4())
    status, _, elapsed = timed_json(
        "PUT", f"{service.url}/v1/shoal/nodes/{node}", {"host": "10.0.0.1", "era": None}
    )
    assert status == 200 and served_at_once(elapsed)
    status, _, elapsed = timed_json(
        "POST", f"{service.url}/v1/configuration/datasets", {"primary": node}
    )
    assert status == 201 and served_at_once(elapsed)

    trickle(flood)
    deadline = time.monotonic() + HEADER_TIMEOUT + 5
    endings = [final_answer(sock, deadline) for sock in flood]
    for sock in flood:
        sock.close()
    assert [kind for kind, _ in endings].count("open") == 0
    statuses = [status_of(answer) for _, answer in endings]
    # Every connection still held at the end (the cap, less those evicted for
    # this test's own requests) is closed by the header deadline with a 408.
    assert statuses.count(408) >= CAP - OWN_REQUESTS, statuses
    assert set(statuses) <= {408, 503, None}
    assert service.process is not None and service.process.poll() is None
    assert http_json("GET", f"{service.url}/v1/version")[0] == 200
    log = open(service.log_path or os.devnull).read()
    assert "Too many open files" not in log and "EMFILE" not in log


def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], object]:
    """Send ``request`` on a new connection; the status, headers and JSON body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        kind, answer = final_answer(sock, time.monotonic() + 5)
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        size, _, rest = body.partition(b"\r\n")
        body = rest[: int(size, 16)]
    assert headers["content-type"] == "application/json"
    return int(lines[0].split()[1]), headers, json.loads(body)


@pytest.mark.parametrize(
    ("request_bytes", "code"),
    [
        (b"POST /v1/configuration/datasets HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400),
        (
            b"POST /v1/configuration/datasets HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: multipart/form-data; boundary=zz\r\nContent-Length: 5\r\n\r\nhello",
            415,
        ),
        (b"GET /" + b"a" * 17000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /v1/version HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n", 431),
        (
            b"DELETE /v1/configuration/datasets/6f1c9a7e-0000-4000-8000-000000000001 HTTP/1.1\r\n"
            b"Host: x\r\nConnection: close\r\nX-If-Configuration-Matches: \r\n\r\n",
            400,
        ),
    ],
    ids=["negative-length", "multipart", "long-url", "long-header", "empty-if-header"],
)
def test_malformed_requests_get_json_answers(
    service: ControlProcess, request_bytes: bytes, code: int
) -> None:
    """Each malformed request is answered on the wire with its 4xx and a JSON description."""
    status, _, body = raw_exchange(service.port, request_bytes)
    assert status == code and body["description"]  # type: ignore[index]


def test_wrong_method_names_allowed_ones(service: ControlProcess) -> None:
    """A 405 carries Allow, on the wire."""
    status, headers, _ = raw_exchange(
        service.port, b"PUT /v1/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert (status, headers["allow"]) == (405, "GET")


BURST = 600
"""Connections opened at once while the service accepts none: more than Twisted's default
listen backlog of 50, fewer than the service's 1,024."""


def test_a_burst_of_connections_waits_in_the_listen_queue(tmp_path: Path) -> None:
    """Agents connecting at once while the service is busy all connect within a second,
    none left to the seconds of the kernel's SYN retransmissions."""
    extra = ["--max-connections-per-address", str(2 * BURST)]
    process = ControlProcess(f"sqlite:///{tmp_path / 'control.db'}", extra, nofile=4096).start()
    assert process.process is not None
    socks: list[socket.socket] = []
    try:
        os.kill(process.process.pid, signal.SIGSTOP)  # busy: accepts nothing
        try:
            for _ in range(BURST):
                socks.append(socket.create_connection(("127.0.0.1", process.port), timeout=1.0))
        finally:
            os.kill(process.process.pid, signal.SIGCONT)
        assert len(socks) == BURST
        status, _, _ = http_json("GET", f"{process.url}/v1/version")
        assert status == 200
    finally:
        for sock in socks:
            sock.close()
        process.stop()
