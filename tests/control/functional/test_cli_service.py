"""The ``shoal`` CLI against a real control service, over plain HTTP and over mutual TLS."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import urllib.request
import uuid

import pytest

from tests.processes import ControlProcess, http_json, shoal

pytestmark = pytest.mark.functional


def register_node(url: str, host: str = "127.0.0.1") -> str:
    """Register one node directly over HTTP; returns its uuid."""
    node = str(uuid.uuid4())
    status, _, body = http_json(
        "PUT", f"{url}/v1/shoal/nodes/{node}", {"host": host, "era": None, "labels": {}}
    )
    assert status == 200, body
    return node


NODE_A = "aaaaaaaa-1111-4000-8000-000000000001"
NODE_B = "bbbbbbbb-2222-4000-8000-000000000002"
"""The uuids the fixture's node certificates are bound to."""


def register_node_tls(url: str, tls_dir: str) -> str:
    """Register node A over mutual TLS with its own node certificate; returns its uuid."""
    context = ssl.create_default_context(cafile=f"{tls_dir}/cluster.crt")
    context.load_cert_chain(f"{tls_dir}/node-node-a.crt", f"{tls_dir}/node-node-a.key")
    node = NODE_A
    body = json.dumps({"host": "127.0.0.1", "era": None, "labels": {}}).encode()
    request = urllib.request.Request(
        f"{url}/v1/shoal/nodes/{node}", data=body, method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        assert response.status == 200
    return node


def cli_json(url: str, *args: str, env: dict[str, str] | None = None) -> object:
    """Run a CLI command with ``--json`` and decode its output, failing on a non-zero exit."""
    result = shoal("--url", url, "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_dataset_lifecycle_over_tcp(control: ControlProcess) -> None:
    """Create, show, move and delete a dataset with the CLI over a real TCP connection."""
    first, second = register_node(control.url), register_node(control.url, "127.0.0.2")
    created = cli_json(
        control.url, "dataset", "create", "--node", first, "--size", "1G", "--meta", "name=pgdata"
    )["dataset"]
    assert created["primary"] == first and created["maximum_size"] == 1024**3
    shown = cli_json(control.url, "dataset", "show", "pgdata")["dataset"]
    assert shown["dataset_id"] == created["dataset_id"]
    moved = cli_json(control.url, "dataset", "move", "pgdata", "--to", second)["dataset"]
    assert moved["primary"] == second
    deleted = cli_json(control.url, "dataset", "delete", "pgdata")["dataset"]
    assert deleted["deleted"] is True
    listed = cli_json(control.url, "dataset", "list")
    assert [entry["dataset"]["deleted"] for entry in listed] == [True]
    events = cli_json(control.url, "events", "--dataset", created["dataset_id"])
    assert [(e["kind"], e["actor"]) for e in events] == [
        ("created", "127.0.0.1"), ("moved", "127.0.0.1"), ("deleted", "127.0.0.1")
    ]
    assert events[1]["details"] == {"from": first, "to": second}


def test_refusal_is_explained_without_traceback(control: ControlProcess) -> None:
    """A refused create exits 1 with the service's description and no traceback."""
    result = shoal("--url", control.url, "dataset", "create", "--node", str(uuid.uuid4()))
    assert result.returncode != 0
    assert "error:" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def tls_dir(tmp_path) -> str:
    """A cluster CA with certificates for the control service, two nodes and a user of each
    role (alice: operator, root: admin, val: viewer)."""
    directory = str(tmp_path / "ca")
    for args in (
        ("ca", "init", "--dir", directory),
        ("ca", "issue", "control", "--ip", "127.0.0.1", "--dir", directory),
        ("ca", "issue", "user", "alice", "--role", "operator", "--dir", directory),
        ("ca", "issue", "user", "root", "--role", "admin", "--dir", directory),
        ("ca", "issue", "user", "val", "--role", "viewer", "--dir", directory),
        ("ca", "issue", "node", "node-a", "--uuid", NODE_A, "--dir", directory),
        ("ca", "issue", "node", "node-b", "--uuid", NODE_B, "--dir", directory),
    ):
        result = shoal(*args)
        assert result.returncode == 0, result.stderr
    return directory


def test_mutual_tls_service(tls_dir: str, tmp_path) -> None:
    """Over HTTPS a user certificate from the cluster CA is served; no certificate is refused."""
    service = ControlProcess(
        f"sqlite:///{tmp_path / 'control.db'}", extra=["--tls-dir", tls_dir]
    ).start()
    try:
        credentials = {
            "SHOAL_CA_CERT": f"{tls_dir}/cluster.crt",
            "SHOAL_CERT": f"{tls_dir}/user-alice.crt",
            "SHOAL_KEY": f"{tls_dir}/user-alice.key",
        }
        assert cli_json(service.url, "node", "list", env=credentials) == []
        node = register_node_tls(service.url, tls_dir)
        cli_json(service.url, "dataset", "create", "--node", node, env=credentials)
        events = cli_json(service.url, "events", env=credentials)
        # A slow machine may also see the silent node turn suspect; only the create matters here.
        [created] = [e for e in events if e["kind"] == "created"]  # type: ignore[union-attr]
        assert created["actor"] == "user-alice (operator)", events
        anonymous = shoal(
            "--url", service.url, "--ca-cert", f"{tls_dir}/cluster.crt", "node", "list"
        )
        assert anonymous.returncode == 1 and "error:" in anonymous.stderr
        with pytest.raises(OSError):
            http_json("GET", f"http://127.0.0.1:{service.port}/v1/version")
    finally:
        service.stop()


def _as(tls_dir: str, name: str) -> ssl.SSLContext:
    """A client TLS context presenting certificate ``name`` and trusting the cluster CA."""
    context = ssl.create_default_context(cafile=f"{tls_dir}/cluster.crt")
    context.load_cert_chain(f"{tls_dir}/{name}.crt", f"{tls_dir}/{name}.key")
    return context


def test_node_certificate_cannot_report_for_another_node(tls_dir: str, tmp_path) -> None:
    """Node B's certificate can neither report for node A nor re-register it (403 naming the
    node needed); A's own can, and A's registration records the node its certificate names."""
    service = ControlProcess(
        f"sqlite:///{tmp_path / 'control.db'}", extra=["--tls-dir", tls_dir]
    ).start()
    try:
        a, b = _as(tls_dir, "node-node-a"), _as(tls_dir, "node-node-b")
        node_a = NODE_A
        registration = {"host": "a", "era": "boot-a", "mount_root": "/var/lib/shoal/mounts"}
        url = f"{service.url}/v1/shoal/nodes/{node_a}"
        assert http_json("PUT", url, registration, context=a)[0] == 200
        dataset = str(uuid.uuid4())
        forged = {"era": "boot-a", "generation": 0, "datasets": [
            {"dataset_id": dataset, "status": "mounted",
             "path": f"/var/lib/shoal/mounts/{dataset}"}
        ]}
        state_url = f"{service.url}/v1/shoal/state/{node_a}"
        status, _, body = http_json("PUT", state_url, forged, context=b)
        assert status == 403 and f"node certificate for node {NODE_A} itself" in body["description"]
        status, _, body = http_json("PUT", url, {**registration, "host": "evil"}, context=b)
        assert status == 403
        viewer = _as(tls_dir, "user-val")
        assert http_json("GET", f"{service.url}/v1/state/datasets", context=viewer)[2] == []
        assert http_json("GET", f"{service.url}/v1/state/datasets", context=a)[0] == 403
        assert http_json("PUT", state_url, forged, context=a)[0] == 200
        nodes = http_json("GET", f"{service.url}/v1/shoal/nodes", context=viewer)[2]
        assert [n["host"] for n in nodes] == ["a"]
        assert nodes[0]["identity"] == f"urn:shoal:node:{NODE_A}"
    finally:
        service.stop()


def test_plain_http_refused_off_loopback(tmp_path) -> None:
    """The service will not serve plain HTTP on a public address without being told to."""
    result = shoal(
        "control",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--database",
        f"sqlite:///{tmp_path / 'control.db'}",
    )
    assert result.returncode == 1
    assert "--tls-dir" in result.stderr and "Traceback" not in result.stderr


def test_port_in_use_exits_with_error(tmp_path) -> None:
    """A port already in use makes ``control serve`` exit 1 with the reason, not hang."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        result = shoal(
            "control", "serve", "--port", port, "--database",
            f"sqlite:///{tmp_path / 'control.db'}", timeout=30,
        )
    assert result.returncode == 1
    assert "Address already in use" in result.stderr and "Traceback" not in result.stdout


def test_missing_tls_files_exit_with_error(tmp_path) -> None:
    """A TLS directory without certificates makes ``control serve`` exit 1, not hang."""
    result = shoal(
        "control", "serve", "--port", "0", "--tls-dir", str(tmp_path / "nothing"),
        "--database", f"sqlite:///{tmp_path / 'control.db'}", timeout=30,
    )
    assert result.returncode == 1 and "cluster CA certificate" in result.stderr


def test_readable_ca_key_is_warned_about(tls_dir: str, tmp_path) -> None:
    """Serving from the directory that holds cluster.key warns; the documented layout, with
    only the CA certificate and the service's own key, serves users without the warning."""
    exposed_log = tmp_path / "exposed.log"
    exposed = ControlProcess(
        f"sqlite:///{tmp_path / 'a.db'}", extra=["--tls-dir", tls_dir], log_path=str(exposed_log)
    ).start()
    exposed.stop()
    assert f"warning: the cluster CA's private key {tls_dir}/cluster.key" in exposed_log.read_text()
    offline = tmp_path / "control-tls"
    offline.mkdir(mode=0o700)
    for name in ("cluster.crt", "control-service.crt", "control-service.key"):
        shutil.copy2(os.path.join(tls_dir, name), offline / name)
    quiet_log = tmp_path / "quiet.log"
    quiet = ControlProcess(
        f"sqlite:///{tmp_path / 'b.db'}", extra=["--tls-dir", str(offline)], log_path=str(quiet_log)
    ).start()
    try:
        credentials = {
            "SHOAL_CA_CERT": f"{tls_dir}/cluster.crt",
            "SHOAL_CERT": f"{tls_dir}/user-alice.crt",
            "SHOAL_KEY": f"{tls_dir}/user-alice.key",
        }
        assert cli_json(quiet.url, "node", "list", env=credentials) == []
    finally:
        quiet.stop()
    assert "warning" not in quiet_log.read_text()
