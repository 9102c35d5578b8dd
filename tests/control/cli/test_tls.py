"""Plain-HTTP client commands start without the TLS libraries; the rest keep them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from control.cli.tls import plain_http_client
from tests.processes import ROOT


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        (["dataset", "list"], {}),
        (["--json", "node", "list"], {"SHOAL_URL": "http://127.0.0.1:4523"}),
        (["events", "--url", "http://10.0.0.1:4523"], {}),
        (["volume", "orphans", "--url=http://h:1"], {}),
        (["--url", "http://h:1", "--json", "lease", "list"], {}),
    ],
)
def test_plain_http_client_commands_skip_tls(argv: list[str], environ: dict[str, str]) -> None:
    """Client commands over plain HTTP with no certificate do not need TLS."""
    assert plain_http_client(argv, environ)


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        (["dataset", "list", "--url", "https://control:4523"], {}),
        (["dataset", "list"], {"SHOAL_URL": "https://control:4523"}),
        (["dataset", "list", "--cert", "alice.crt"], {}),
        (["node", "list"], {"SHOAL_CA_CERT": "cluster.crt"}),
        (["control", "serve"], {}),
        (["ca", "init"], {}),
        (["ca", "issue", "node", "node-a", "--dir", "ca"], {}),
        (["--url", "node", "control", "serve"], {}),
        (["agent", "run"], {}),
        (["plugin", "serve"], {}),
        (["--help"], {}),
    ],
)
def test_tls_kept_where_it_may_be_needed(argv: list[str], environ: dict[str, str]) -> None:
    """HTTPS, certificates, servers and the CA keep the TLS libraries."""
    assert not plain_http_client(argv, environ)


def test_plain_http_command_runs_without_tls_libraries() -> None:
    """Without pyOpenSSL loaded, an unreachable service is still a one-line error, exit 1."""
    code = (
        "import sys; from control.cli.program import main; "
        "status = main(['node', 'list', '--url', 'http://127.0.0.1:9']); "
        "assert sys.modules.get('OpenSSL') is None and 'cryptography.x509' not in sys.modules; "
        "sys.exit(status)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
