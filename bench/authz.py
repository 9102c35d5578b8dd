"""
What authorising every request by role costs (issue 12, "Who may do what").

In process: finding a request's route in the URL map plus the decision
(:func:`control.api.guard.route_of`, :func:`control.api.permissions.decide`),
which every TLS request pays, and parsing a client certificate into its
principal, which every TLS connection pays once. Then a real control service
over mutual TLS: ``GET /v1/configuration/datasets`` on one keep-alive
connection with a viewer's certificate (allowed) and with a node's (refused 403).

    python bench/authz.py [--samples 2000] [--requests 300]
"""

from __future__ import annotations

import argparse
import http.client
import ssl
import tempfile
import uuid
from datetime import UTC, datetime

from _common import Table, timed
from cryptography import x509

from control import ca
from control.api.app import ControlAPI
from control.api.guard import route_of
from control.api.permissions import decide
from control.roles import Role, principal_of
from tests.processes import ControlProcess


def in_process(table: Table, samples: int) -> None:
    """The guard's decision and the certificate parse, without I/O."""
    now = datetime.now(UTC)
    authority = ca.make_ca("bench", ca.new_key(), now)
    node = uuid.uuid4()
    issued = ca.make_certificate(authority, "node", "n1", ca.new_key(), now, node=node)
    certificate = x509.load_pem_x509_certificate(issued.certificate)
    principal = principal_of(certificate)
    url_map = ControlAPI.app.url_map
    cases = {
        "decide: node reports for itself": ("PUT", f"/v1/shoal/state/{node}"),
        "decide: node moves a dataset (403)": ("POST", f"/v1/configuration/datasets/{node}"),
    }
    for name, (method, path) in cases.items():

        def decision(method: str = method, path: str = path) -> None:
            route = route_of(url_map, method, path)
            assert route is not None
            decide(principal, *route)

        table.add(name, *timed(decision, samples), None)
    table.add("parse a certificate (once per connection)",
              *timed(lambda: principal_of(certificate), samples), None)


def _context(directory: str, name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=f"{directory}/cluster.crt")
    context.load_cert_chain(f"{directory}/{name}.crt", f"{directory}/{name}.key")
    return context


def over_tls(table: Table, requests: int) -> None:
    """Keep-alive HTTPS requests to a real service, allowed and refused."""
    with tempfile.TemporaryDirectory() as base:
        now = datetime.now(UTC)
        ca.init_ca_files(base, "bench", now)
        ca.issue_files(base, "control", None, now, ips=["127.0.0.1"])
        ca.issue_files(base, "user", "val", now, role=Role.VIEWER)
        ca.issue_files(base, "node", "n1", now, node=uuid.uuid4())
        service = ControlProcess(f"sqlite:///{base}/control.db", extra=["--tls-dir", base])
        service.start()
        try:
            for name, expect in (("user-val", 200), ("node-n1", 403)):
                connection = http.client.HTTPSConnection(
                    "127.0.0.1", service.port, timeout=60, context=_context(base, name)
                )

                def get(connection: http.client.HTTPSConnection = connection,
                        expect: int = expect) -> None:
                    connection.request("GET", "/v1/configuration/datasets")
                    response = connection.getresponse()
                    response.read()
                    assert response.status == expect, response.status

                get()
                table.add(f"TLS GET datasets as {name} ({expect})",
                          *timed(get, requests), service.rss_kib())
                connection.close()
        finally:
            service.stop()


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    table = Table("Authorisation by role")
    in_process(table, args.samples)
    over_tls(table, args.requests)
    print(table.render())


if __name__ == "__main__":
    main()
