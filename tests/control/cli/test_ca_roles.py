"""``shoal ca issue`` with roles and node uuids, and ``shoal ca revoke`` against the API."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID

from cryptography import x509

from control.roles import Role, principal_of

from .harness import CLI


def _principal(path: Path):  # type: ignore[no-untyped-def]
    return principal_of(x509.load_pem_x509_certificate(path.read_bytes()))


def test_issue_binds_roles_and_nodes(tmp_path: Path) -> None:
    """A user certificate carries its role; a node one its uuid, new or given."""
    cli = CLI()
    assert cli("ca", "init", "--dir", str(tmp_path)).code == 0
    assert cli("ca", "issue", "user", "ann", "--role", "viewer", "--dir", str(tmp_path)).code == 0
    fresh = cli("ca", "issue", "node", "n1", "--dir", str(tmp_path), "--json")
    node = UUID(json.loads(fresh.out)["node_uuid"])
    given = "3f9c1a2e-5b7d-4c1e-9a0b-6d2f8e4c7a11"
    again = cli("ca", "issue", "node", "n2", "--uuid", given, "--dir", str(tmp_path))
    assert again.code == 0 and f"bound to node {given}" in again.out
    assert _principal(tmp_path / "user-ann.crt").role is Role.VIEWER
    assert _principal(tmp_path / "node-n1.crt").node == node
    assert _principal(tmp_path / "node-n2.crt").node == UUID(given)
    bad = cli("ca", "issue", "node", "n3", "--uuid", "nope", "--dir", str(tmp_path))
    assert bad.code == 1 and "is not a UUID" in bad.err


def test_revoke_by_name_and_by_serial(tmp_path: Path) -> None:
    """``ca revoke NAME`` reads the serial from the issued file; a serial works alone; both
    are listed, and revoking again changes nothing."""
    cli = CLI()
    cli("ca", "init", "--dir", str(tmp_path))
    cli("ca", "issue", "user", "bob", "--role", "operator", "--dir", str(tmp_path))
    serial = _principal(tmp_path / "user-bob.crt").serial
    by_name = cli("ca", "revoke", "user-bob", "--dir", str(tmp_path), "--reason", "left", "--json")
    assert by_name.code == 0, by_name.err
    assert json.loads(by_name.out)["serial"] == f"{serial:x}"
    assert json.loads(by_name.out)["subject"] == "user-bob"
    cli.clock.advance(1)
    assert cli("ca", "revoke", "0x1F", "--dir", str(tmp_path)).code == 0
    again = cli("ca", "revoke", f"{serial:X}", "--dir", str(tmp_path), "--json")
    assert json.loads(again.out)["reason"] == "left"
    listed = json.loads(cli("ca", "revocations", "--json").out)
    assert [r["serial"] for r in listed] == [f"{serial:x}", "1f"]
    assert cli.control.api.denylist.revoked(serial)


def test_revoke_unknown_name(tmp_path: Path) -> None:
    """A name that is no issued certificate nor a serial says what to give."""
    result = CLI()("ca", "revoke", "user-nobody", "--dir", str(tmp_path))
    assert result.code == 1 and "neither a certificate" in result.err
