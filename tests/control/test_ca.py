"""The cluster CA: what it issues, the files it writes, and mutual TLS with them."""

from __future__ import annotations

import ipaddress
import stat
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import endpoints, reactor
from twisted.web.iweb import IPolicyForHTTPS
from twisted.web.server import Site
from zope.interface import implementer

from control import FLOCKER_API_VERSION, ca
from control.api.app import ControlAPI
from control.client.http import HTTPClient
from control.errors import Conflict, InvalidRequest, NotFound, Unavailable
from control.roles import Principal, Role, principal_of
from control.runners import synchronous_runner
from control.store.memory import MemoryStore
from control.store.threaded import ThreadedStore

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def load(issued: ca.Issued) -> x509.Certificate:
    """The certificate of an issued pair."""
    return x509.load_pem_x509_certificate(issued.certificate)


@pytest.fixture(scope="module")
def authority() -> ca.Issued:
    """One CA for the pure tests."""
    return ca.make_ca("test", ca.new_key(), NOW)


def test_ca_is_a_ca(authority: ca.Issued) -> None:
    """The CA certificate is self-signed, CA:true, and may sign certificates."""
    cert = load(authority)
    assert cert.subject == cert.issuer
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    cert.verify_directly_issued_by(cert)


def test_control_certificate(authority: ca.Issued) -> None:
    """The control certificate names control-service plus the given names, for both usages."""
    issued = ca.make_certificate(
        authority, "control", None, ca.new_key(), NOW, ["ctl.example"], ["10.0.0.1"]
    )
    cert = load(issued)
    cert.verify_directly_issued_by(load(authority))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["control-service", "ctl.example"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.1")]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


NODE = UUID("3f9c1a2e-5b7d-4c1e-9a0b-6d2f8e4c7a11")
ROLE_OF = {"node": None, "user": Role.OPERATOR}
NODE_OF = {"node": NODE, "user": None}


@pytest.mark.parametrize("kind", ["node", "user"])
def test_client_certificates(authority: ca.Issued, kind: ca.Kind) -> None:
    """Node and user certificates are for client authentication only, named after kind."""
    cert = load(ca.make_certificate(
        authority, kind, "alice", ca.new_key(), NOW, role=ROLE_OF[kind], node=NODE_OF[kind]
    ))
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == f"{kind}-alice"
    assert cert.not_valid_before_utc < NOW < cert.not_valid_after_utc


@pytest.mark.parametrize(("name", "ips"), [("../etc", []), (None, []), ("ok", ["10.0.0.300"])])
def test_bad_names(authority: ca.Issued, name: str | None, ips: list[str]) -> None:
    """Unsafe file names, missing names and malformed IPs are refused."""
    with pytest.raises(InvalidRequest):
        ca.make_certificate(authority, "node", name, ca.new_key(), NOW, ips=ips, node=NODE)


@pytest.mark.parametrize(
    ("kind", "role", "node", "expected"),
    [
        ("user", Role.ADMIN, None, Principal),
        ("user", Role.VIEWER, None, Principal),
        ("node", None, NODE, Principal),
        ("control", None, None, Principal),
        ("user", None, None, InvalidRequest),
        ("user", Role.NODE, None, InvalidRequest),
        ("user", Role.ADMIN, NODE, InvalidRequest),
        ("node", None, None, InvalidRequest),
        ("node", Role.ADMIN, NODE, InvalidRequest),
        ("control", None, NODE, InvalidRequest),
    ],
)
def test_roles_in_certificates(
    authority: ca.Issued, kind: ca.Kind, role: Role | None, node: UUID | None, expected: type
) -> None:
    """The role (and a node's uuid) is written as SubjectAltName URIs and the subject's OU,
    and read back as the principal; a role or uuid that does not fit the kind is refused."""
    if expected is InvalidRequest:
        with pytest.raises(InvalidRequest):
            ca.make_certificate(authority, kind, "x", ca.new_key(), NOW, role=role, node=node)
        return
    cert = load(ca.make_certificate(authority, kind, "x", ca.new_key(), NOW, role=role, node=node))
    principal = principal_of(cert)
    given = role or Role(kind)
    assert principal.role is given and principal.node == node
    assert principal.serial == cert.serial_number
    uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"urn:shoal:role:{given.value}" in uris.get_values_for_type(
        x509.UniformResourceIdentifier
    )
    ou = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value
    assert ou == given.value


def _with_uris(authority: ca.Issued, *uris: str) -> x509.Certificate:
    """A CA-signed certificate whose SubjectAltName holds exactly ``uris``."""
    from cryptography.hazmat.primitives import hashes, serialization

    key = ca.new_key()
    ca_key = serialization.load_pem_private_key(authority.key, password=None)
    ca_cert = load(authority)
    names = [x509.UniformResourceIdentifier(u) for u in uris]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW.replace(year=2026))
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "uris",
    [
        (),
        ("urn:shoal:role:root",),
        ("urn:shoal:role:node",),
        ("urn:shoal:role:node", "urn:shoal:node:not-a-uuid"),
        ("urn:shoal:role:node", f"urn:shoal:node:{NODE}", f"urn:shoal:node:{uuid4()}"),
        ("urn:shoal:role:viewer", "urn:shoal:role:admin"),
    ],
)
def test_unclear_certificates_have_no_role(authority: ca.Issued, uris: tuple[str, ...]) -> None:
    """No role, an unknown one, two of them, or a node role without exactly one valid node
    uuid: the certificate has no role (and so may do nothing)."""
    principal = principal_of(_with_uris(authority, *uris))
    assert principal.role is None and principal.node is None


def test_files(tmp_path: Path) -> None:
    """Files are named as Flocker named them and keys are private."""
    ca.init_ca_files(tmp_path, "test", NOW)
    ca.issue_files(tmp_path, "control", None, NOW)
    ca.issue_files(tmp_path, "node", "n1", NOW, node=NODE)
    ca.issue_files(tmp_path, "user", "bob", NOW, role=Role.VIEWER)
    names = sorted(p.name for p in tmp_path.iterdir())
    stems = ["cluster", "control-service", "node-n1", "user-bob"]
    assert names == sorted(f"{s}.{e}" for s in stems for e in ("crt", "key"))
    for stem in stems:
        assert stat.S_IMODE((tmp_path / f"{stem}.key").stat().st_mode) == 0o600


def test_never_overwrites(tmp_path: Path) -> None:
    """A second init, or a second certificate of one name, is a Conflict."""
    ca.init_ca_files(tmp_path, "test", NOW)
    ca.issue_files(tmp_path, "node", "n1", NOW, node=NODE)
    with pytest.raises(Conflict):
        ca.init_ca_files(tmp_path, "test", NOW)
    with pytest.raises(Conflict):
        ca.issue_files(tmp_path, "node", "n1", NOW, node=NODE)


def test_issue_without_ca(tmp_path: Path) -> None:
    """Issuing before ``ca init`` says what to run."""
    with pytest.raises(NotFound, match="shoal ca init"):
        ca.issue_files(tmp_path, "node", "n1", NOW, node=NODE)


# -- a real handshake over loopback ---------------------------------------------


def _cluster(directory: Path) -> Path:
    now = datetime.now(UTC)
    ca.init_ca_files(directory, "test", now)
    ca.issue_files(directory, "control", None, now, ips=["127.0.0.1"])
    ca.issue_files(directory, "node", "good", now, node=NODE)
    return directory


def _policy(directory: Path, stem: str, ca_dir: Path | None = None) -> ca.ClusterTLSPolicy:
    trusted = (ca_dir or directory) / "cluster.crt"
    return ca.client_tls_policy(trusted, directory / f"{stem}.crt", directory / f"{stem}.key")


@implementer(IPolicyForHTTPS)
class NoCertificatePolicy:
    """Verifies the server like the cluster policy but offers no client certificate."""

    def __init__(self, ca_pem: bytes) -> None:
        from twisted.internet import ssl

        self._creator = ssl.optionsForClientTLS(
            "control-service", trustRoot=ssl.Certificate.loadPEM(ca_pem)
        )

    def creatorForNetloc(self, hostname: bytes, port: int) -> object:
        """The creator without a client certificate."""
        return self._creator


async def _version(url: str, policy: object) -> object:
    client = HTTPClient(url, tls=policy)  # type: ignore[arg-type]
    try:
        return await client.version()
    finally:
        await client.close()


@pytest.mark.functional
@pytest_twisted.ensureDeferred
async def test_mutual_tls(tmp_path: Path) -> None:
    """Over loopback, only a client certificate signed by the cluster CA is accepted,
    and the client verifies the server as control-service though it dials an IP."""
    good = _cluster(tmp_path / "good")
    other = _cluster(tmp_path / "other")
    api = ControlAPI(ThreadedStore(MemoryStore(), synchronous_runner), reactor)
    endpoint = endpoints.SSL4ServerEndpoint(
        reactor, 0, ca.server_tls_options(good), interface="127.0.0.1"
    )
    port = await endpoint.listen(Site(api.resource()))
    url = f"https://127.0.0.1:{port.getHost().port}"
    try:
        version = await _version(url, _policy(good, "node-good"))
        assert version.flocker == FLOCKER_API_VERSION  # type: ignore[attr-defined]
        refused = [
            _policy(other, "node-good", ca_dir=good),  # client cert from another CA
            NoCertificatePolicy((good / "cluster.crt").read_bytes()),  # no client cert
            _policy(good, "node-good", ca_dir=other),  # server not trusted by client
        ]
        for policy in refused:
            with pytest.raises(Unavailable, match="127.0.0.1"):
                await _version(url, policy)
    finally:
        await port.stopListening()
