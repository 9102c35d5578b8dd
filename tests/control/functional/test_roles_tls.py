"""Roles and revocation over real mutual TLS, through a real control service and a real agent."""

from __future__ import annotations

import contextlib
import http.client
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import NO_FAILOVER_GRACE, ROOT, ControlProcess, http_json, shoal, wait_until

pytestmark = pytest.mark.functional

NODE_A = "aaaaaaaa-1111-4000-8000-000000000001"
NODE_B = "bbbbbbbb-2222-4000-8000-000000000002"
USERS = {"alice": "operator", "root": "admin", "val": "viewer", "gone": "viewer"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ControlProcess]]:
    """A CA with a certificate of every role, and one TLS control service for the module.

    Node A's agent stops at the end of the first test, and the next one creates a dataset on
    it: no failover may fence it meanwhile (at load 11 the default 10 s grace ran out first,
    and the create was refused on a fenced node)."""
    base = tmp_path_factory.mktemp("roles")
    directory = str(base / "ca")
    commands = [
        ("ca", "init", "--dir", directory),
        ("ca", "issue", "control", "--ip", "127.0.0.1", "--dir", directory),
        ("ca", "issue", "node", "node-a", "--uuid", NODE_A, "--dir", directory),
        ("ca", "issue", "node", "node-b", "--uuid", NODE_B, "--dir", directory),
        *(("ca", "issue", "user", name, "--role", role, "--dir", directory)
          for name, role in USERS.items()),
    ]
    for args in commands:
        result = shoal(*args)
        assert result.returncode == 0, result.stderr
    service = ControlProcess(
        f"sqlite:///{base / 'control.db'}",
        extra=["--tls-dir", directory, "--failover-grace", str(NO_FAILOVER_GRACE)],
    ).start()
    try:
        yield directory, service
    finally:
        service.stop()


def _as(tls_dir: str, name: str) -> ssl.SSLContext:
    """A client TLS context presenting certificate ``name`` and trusting the cluster CA."""
    context = ssl.create_default_context(cafile=f"{tls_dir}/cluster.crt")
    context.load_cert_chain(f"{tls_dir}/{name}.crt", f"{tls_dir}/{name}.key")
    return context


def _cli(tls_dir: str, name: str) -> dict[str, str]:
    return {
        "SHOAL_CA_CERT": f"{tls_dir}/cluster.crt",
        "SHOAL_CERT": f"{tls_dir}/{name}.crt",
        "SHOAL_KEY": f"{tls_dir}/{name}.key",
    }


def test_an_agent_with_its_node_certificate(cluster: tuple[str, ControlProcess],
                                            tmp_path: Path) -> None:
    """A real agent with a properly issued node certificate takes the uuid the certificate
    binds, registers and reports; with another node's certificate on its state it exits."""
    tls_dir, service = cluster
    state = tmp_path / "a"
    command = [
        sys.executable, "-m", "control.cli", "agent", "run", "--control", service.url,
        "--node-name", "node-a", "--backend", "fake", "--state-dir", str(state),
        "--mount-root", str(tmp_path / "mounts"), "--heartbeat", "1",
    ]
    env = {**os.environ, **_cli(tls_dir, "node-node-a")}
    with open(tmp_path / "agent.log", "wb") as log:
        agent = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    try:
        viewer = _as(tls_dir, "user-val")

        def reported() -> bool:
            status, _, nodes = http_json("GET", f"{service.url}/v1/shoal/nodes", context=viewer)
            return status == 200 and any(
                n["uuid"] == NODE_A and n["live"] and n["capacity"] is not None for n in nodes
            )

        wait_until(reported, 60, "node-a's agent to register and report over TLS")
    finally:
        agent.terminate()
        agent.wait(30)
    wrong = {**os.environ, **_cli(tls_dir, "node-node-b")}
    refused = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=wrong,
                             timeout=60)
    assert refused.returncode != 0
    assert f"speaks for node {NODE_B}" in refused.stdout + refused.stderr


def test_roles_over_tls(cluster: tuple[str, ControlProcess]) -> None:
    """A viewer reads but may not create; an operator creates; a node may not create, move or
    delete; only an admin fences; every refusal is 403 naming the role needed."""
    tls_dir, service = cluster
    operator = _cli(tls_dir, "user-alice")
    result = shoal("--url", service.url, "dataset", "create", "--node", NODE_A, env=operator)
    if result.returncode != 0:  # node A has not registered in this module yet
        registration = {"host": "a", "era": "e", "mount_root": "/mnt/a"}
        status, _, body = http_json("PUT", f"{service.url}/v1/shoal/nodes/{NODE_A}",
                                    registration, context=_as(tls_dir, "node-node-a"))
        assert status == 200, body
        result = shoal("--url", service.url, "dataset", "create", "--node", NODE_A, env=operator)
    assert result.returncode == 0, result.stderr
    viewer = shoal("--url", service.url, "dataset", "create", "--node", NODE_A,
                   env=_cli(tls_dir, "user-val"))
    assert viewer.returncode == 1 and "needs the role operator or admin" in viewer.stderr
    datasets = f"{service.url}/v1/configuration/datasets"
    listed = http_json("GET", datasets, context=_as(tls_dir, "user-val"))
    assert listed[0] == 200 and listed[2]
    dataset = listed[2][0]["dataset_id"]
    node = _as(tls_dir, "node-node-b")
    for method, url, body in [
        ("POST", datasets, {"primary": NODE_B}),
        ("POST", f"{datasets}/{dataset}", {"primary": NODE_B}),
        ("DELETE", f"{datasets}/{dataset}", None),
        ("DELETE", f"{service.url}/v1/configuration/leases/{dataset}", None),
    ]:
        status, _, answer = http_json(method, url, body, context=node)
        assert status == 403 and "has the role node" in answer["description"], (method, url)
    fence = f"{service.url}/v1/shoal/nodes/{NODE_A}/fence"
    assert http_json("POST", fence, {}, context=_as(tls_dir, "user-alice"))[0] == 403
    fenced = http_json("POST", fence, {"reason": "test"}, context=_as(tls_dir, "user-root"))
    assert fenced[0] == 200 and fenced[2]["fence"]["actor"] == "user-root (admin)"
    assert http_json("DELETE", fence, context=_as(tls_dir, "user-root"))[0] == 200


def test_revocation_refuses_new_connections_and_drops_live_ones(
    cluster: tuple[str, ControlProcess],
) -> None:
    """``shoal ca revoke`` by an admin: the revoked certificate's kept-alive connection is
    closed by the service, and its next handshake fails, after a restart too; an operator
    may not revoke."""
    tls_dir, service = cluster
    live = http.client.HTTPSConnection("127.0.0.1", service.port, timeout=30,
                                       context=_as(tls_dir, "user-gone"))
    live.request("GET", "/v1/version")
    assert live.getresponse().read() and live.sock is not None
    refused = shoal("--url", service.url, "ca", "revoke", "user-gone", "--dir", tls_dir,
                    env=_cli(tls_dir, "user-alice"))
    assert refused.returncode == 1 and "needs the role admin" in refused.stderr
    revoked = shoal("--url", service.url, "ca", "revoke", "user-gone", "--dir", tls_dir,
                    "--reason", "left", env=_cli(tls_dir, "user-root"))
    assert revoked.returncode == 0, revoked.stderr
    live.sock.settimeout(30)
    with contextlib.suppress(ssl.SSLError, ConnectionError):  # or closed abruptly
        assert live.sock.recv(1) == b""  # closed by the service (not a timeout)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        http_json("GET", f"{service.url}/v1/version", context=_as(tls_dir, "user-gone"))
    assert http_json("GET", f"{service.url}/v1/version", context=_as(tls_dir, "user-val"))[0] == 200
    events = shoal("--url", service.url, "--json", "events", env=_cli(tls_dir, "user-root"))
    assert '"certificate_revoked"' in events.stdout and "user-root (admin)" in events.stdout
    service.stop()  # the denylist is in the store: it holds from the first connection on
    service.start()
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        http_json("GET", f"{service.url}/v1/version", context=_as(tls_dir, "user-gone"))
    assert http_json("GET", f"{service.url}/v1/version", context=_as(tls_dir, "user-val"))[0] == 200
