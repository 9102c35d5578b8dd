"""The dashboard over mutual TLS: served to a user certificate on the API's port, refused
without one; the documented PKCS#12 bundle for a browser is made from the user's files."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import urllib.request

import pytest

from tests.agent.functional.conftest import skip_or_fail
from tests.processes import ControlProcess, shoal

pytestmark = pytest.mark.functional


@pytest.fixture
def tls_dir(tmp_path) -> str:
    """A cluster CA with certificates for the control service and the user alice."""
    directory = str(tmp_path / "ca")
    for args in (
        ("ca", "init", "--dir", directory),
        ("ca", "issue", "control", "--ip", "127.0.0.1", "--dir", directory),
        ("ca", "issue", "user", "alice", "--role", "operator", "--dir", directory),
    ):
        result = shoal(*args)
        assert result.returncode == 0, result.stderr
    return directory


def _get(url: str, context: ssl.SSLContext) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=30, context=context) as response:
        return response.status, response.headers["content-type"], response.read()


def test_dashboard_is_served_over_mutual_tls_only(tls_dir: str, tmp_path) -> None:
    """With alice's certificate the page, its modules and the API it reads answer on the
    same origin; without a certificate the handshake is refused."""
    service = ControlProcess(
        f"sqlite:///{tmp_path / 'control.db'}", extra=["--tls-dir", tls_dir]
    ).start()
    try:
        alice = ssl.create_default_context(cafile=f"{tls_dir}/cluster.crt")
        alice.load_cert_chain(f"{tls_dir}/user-alice.crt", f"{tls_dir}/user-alice.key")
        status, kind, body = _get(f"{service.url}/ui/", alice)
        assert (status, kind) == (200, "text/html; charset=utf-8") and b"app.js" in body
        assert _get(f"{service.url}/ui/app.js", alice)[1] == "text/javascript; charset=utf-8"
        assert _get(f"{service.url}/v1/shoal/datasets", alice)[2] == b"[]"
        anonymous = ssl.create_default_context(cafile=f"{tls_dir}/cluster.crt")
        with pytest.raises(OSError):
            _get(f"{service.url}/ui/", anonymous)
    finally:
        service.stop()


def test_browser_bundle_as_documented(tls_dir: str, tmp_path) -> None:
    """docs/dashboard.md's ``openssl pkcs12 -export`` makes a bundle holding alice's
    certificate, her key and the cluster CA."""
    if shutil.which("openssl") is None:
        skip_or_fail("needs openssl")
    bundle = str(tmp_path / "alice.p12")
    subprocess.run(
        ["openssl", "pkcs12", "-export", "-in", f"{tls_dir}/user-alice.crt",
         "-inkey", f"{tls_dir}/user-alice.key", "-certfile", f"{tls_dir}/cluster.crt",
         "-name", "Shoal (alice)", "-out", bundle, "-passout", "pass:secret"],
        check=True, capture_output=True,
    )
    shown = subprocess.run(
        ["openssl", "pkcs12", "-in", bundle, "-passin", "pass:secret", "-nodes", "-info"],
        check=True, capture_output=True, text=True,
    ).stdout
    assert shown.count("BEGIN CERTIFICATE") == 2 and "PRIVATE KEY" in shown
    assert "Shoal (alice)" in shown
