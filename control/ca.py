"""
The cluster certificate authority, and the TLS settings that trust it.

``shoal ca init`` makes a self-signed CA (``cluster.crt``/``cluster.key``);
``shoal ca issue`` signs certificates with it, named as Flocker named them:
``control-service.crt``/``.key`` for the control service (whose certificate
always carries DNS name ``control-service``, so clients verify it by that name
whatever address they dial), ``node-NAME`` for agents and ``user-NAME`` for
operators. Every connection is mutual TLS: each side proves it holds a
certificate signed by the cluster CA. Each certificate also says what its
holder may do (:mod:`control.roles`): its role, and for a node, the one node
uuid it speaks for, as SubjectAltName URIs.

Certificate building is pure (keys and ``now`` are passed in); only the
``*_files`` functions touch the filesystem. Keys are ECDSA P-256, written 0600.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from attrs import frozen
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from control.errors import Conflict, InvalidRequest, NotFound
from control.roles import USER_ROLES, Role, node_urn, role_urn

CA_NAME = "cluster"
CONTROL_NAME = "control-service"
"""The DNS name every control certificate carries, and clients verify."""

Kind = Literal["control", "node", "user"]
KINDS: tuple[Kind, ...] = ("control", "node", "user")
CA_DAYS = 3650
LEAF_DAYS = 1825
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_USAGES = {
    "control": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    "node": [ExtendedKeyUsageOID.CLIENT_AUTH],
    "user": [ExtendedKeyUsageOID.CLIENT_AUTH],
}


@frozen
class Issued:
    """A certificate and its private key, as PEM bytes."""

    certificate: bytes
    key: bytes


@frozen
class Written:
    """Where an issued certificate and its key were written."""

    certificate: Path
    key: Path


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def file_stem(kind: Kind, name: str | None) -> str:
    """The file name (without extension) of a certificate: Flocker's naming."""
    if kind == "control":
        return CONTROL_NAME
    return f"{kind}-{check_name(name)}"


def check_name(name: str | None) -> str:
    """Return ``name`` if it is usable in a file name and a CN, else refuse."""
    if name is None or not _NAME.match(name):
        raise InvalidRequest(
            f"Invalid certificate name {name!r}: use 1 to 63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return name


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(cluster: str, key: ec.EllipticCurvePrivateKey, now: datetime) -> Issued:
    """A self-signed CA certificate for the cluster called ``cluster``."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{CA_NAME}-{cluster}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster),
        ]
    )
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def role_of(kind: Kind, role: Role | None, node: UUID | None) -> Role:
    """The role a certificate of ``kind`` gets; refuses a role or node that does not fit."""
    if kind == "user":
        if role not in USER_ROLES:
            choices = ", ".join(r.value for r in USER_ROLES)
            raise InvalidRequest(f"A user certificate needs a role: one of {choices} (--role).")
        if node is not None:
            raise InvalidRequest("Only a node certificate is bound to a node uuid.")
        return role
    if role is not None:
        raise InvalidRequest(f"A {kind} certificate has the role {kind}; --role is for users.")
    if kind == "node" and node is None:
        raise InvalidRequest("A node certificate must be bound to the node's uuid.")
    if kind == "control" and node is not None:
        raise InvalidRequest("Only a node certificate is bound to a node uuid.")
    return Role(kind)


def alt_names(
    kind: Kind,
    dns: Sequence[str],
    ips: Sequence[str],
    role: Role | None = None,
    node: UUID | None = None,
) -> list[x509.GeneralName]:
    """The SubjectAltName entries of a certificate: its names and addresses, then its
    role and node URIs (:mod:`control.roles`); refuses malformed IP addresses."""
    names: list[str] = ([CONTROL_NAME] if kind == "control" else []) + list(dns)
    result: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys(names)]
    for ip in ips:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError as e:
            raise InvalidRequest(f"Invalid IP address {ip!r} for the certificate.") from e
    if role is not None:
        result.append(x509.UniformResourceIdentifier(role_urn(role)))
    if node is not None:
        result.append(x509.UniformResourceIdentifier(node_urn(node)))
    return result


def make_certificate(
    ca: Issued,
    kind: Kind,
    name: str | None,
    key: ec.EllipticCurvePrivateKey,
    now: datetime,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    role: Role | None = None,
    node: UUID | None = None,
) -> Issued:
    """A certificate of ``kind`` signed by ``ca``, valid from ``now``.

    A user certificate needs a ``role`` (admin, operator, viewer); a node
    certificate needs the ``node`` uuid it speaks for (:func:`role_of`).
    """
    given = role_of(kind, role, node)
    ca_cert = x509.load_pem_x509_certificate(ca.certificate)
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    cluster = ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, file_stem(kind, name)),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(cluster)),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, given.value),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(_USAGES[kind]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    names = alt_names(kind, dns, ips, given, node)
    builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    certificate = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    return Issued(certificate.public_bytes(serialization.Encoding.PEM), _pem_key(key))


# -- files (imperative shell) -------------------------------------------------


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as e:
        raise Conflict(f"{path} already exists; remove it first or use another --dir.") from e
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def write_issued(directory: str | Path, stem: str, issued: Issued) -> Written:
    """Write ``stem.crt`` (0644) and ``stem.key`` (0600) into ``directory``, never overwriting."""
    base = Path(directory)
    base.mkdir(parents=True, exist_ok=True)
    written = Written(base / f"{stem}.crt", base / f"{stem}.key")
    for path in (written.certificate, written.key):
        if path.exists():
            raise Conflict(f"{path} already exists; remove it first or use another --dir.")
    _write_new(written.key, issued.key, 0o600)
    _write_new(written.certificate, issued.certificate, 0o644)
    return written


def read_ca(directory: str | Path) -> Issued:
    """The cluster CA in ``directory``; refuses if ``shoal ca init`` has not made one."""
    base = Path(directory)
    try:
        certificate = (base / f"{CA_NAME}.crt").read_bytes()
        return Issued(certificate, (base / f"{CA_NAME}.key").read_bytes())
    except FileNotFoundError as e:
        raise NotFound(
            f"No cluster CA in {base}: run `shoal ca init --dir {base}` first."
        ) from e


def init_ca_files(directory: str | Path, cluster: str, now: datetime) -> Written:
    """Create the cluster CA in ``directory``."""
    return write_issued(directory, CA_NAME, make_ca(check_name(cluster), new_key(), now))


def issue_files(
    directory: str | Path,
    kind: Kind,
    name: str | None,
    now: datetime,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    role: Role | None = None,
    node: UUID | None = None,
) -> Written:
    """Issue a certificate of ``kind`` with the CA in ``directory``, written next to it."""
    issued = make_certificate(
        read_ca(directory), kind, name, new_key(), now, dns, ips, role, node
    )
    return write_issued(directory, file_stem(kind, name), issued)


# -- Twisted TLS settings ------------------------------------------------------


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise NotFound(f"Cannot read the {what} {path}: {e.strerror}.") from e


def readable_ca_key(tls_dir: str | Path) -> Path | None:
    """The cluster CA's private key in ``tls_dir``, if this process can read it.

    The control service needs only the CA certificate and its own key; a CA
    key it can read lets whoever takes over the service issue certificates."""
    path = Path(tls_dir) / f"{CA_NAME}.key"
    return path if os.access(path, os.R_OK) else None


def server_tls_options(
    tls_dir: str | Path, revoked: Callable[[int], bool] | None = None
) -> Any:
    """TLS options for the control service: its certificate, requiring client
    certificates signed by the cluster CA in ``tls_dir`` (mutual TLS).

    With ``revoked``, a client certificate whose serial it names fails the
    handshake (checked on every new connection)."""
    base = Path(tls_dir)
    authority = ssl.Certificate.loadPEM(_read(base / f"{CA_NAME}.crt", "cluster CA certificate"))
    own = ssl.PrivateCertificate.loadPEM(
        _read(base / f"{CONTROL_NAME}.crt", "control certificate")
        + _read(base / f"{CONTROL_NAME}.key", "control key")
    )
    options = own.options(authority)
    return options if revoked is None else RevocationChecking(options, revoked)


@implementer(IOpenSSLContextFactory)
class RevocationChecking:
    """Server TLS options that also fail the handshake of a revoked client certificate.

    Wraps Twisted's ``CertificateOptions``: the OpenSSL context keeps its
    verification (the cluster CA, a client certificate required) and gains
    a check of the client certificate's serial against ``revoked``.
    """

    def __init__(self, options: Any, revoked: Callable[[int], bool]) -> None:
        self._options = options
        self._revoked = revoked
        self._context: Any = None

    def getContext(self) -> Any:  # noqa: N802 (Twisted's name)
        """The OpenSSL context, made once, verifying the serial at depth 0."""
        if self._context is None:
            context = self._options.getContext()
            context.set_verify(context.get_verify_mode(), self._verify)
            self._context = context
        return self._context

    def _verify(self, connection: Any, certificate: Any, errno: int, depth: int, ok: int) -> bool:
        if not ok:
            return False
        return depth != 0 or not self._revoked(certificate.get_serial_number())


@implementer(IPolicyForHTTPS)
class ClusterTLSPolicy:
    """Connect to any address with our client certificate, and accept only a
    server certificate signed by the cluster CA and naming ``hostname``."""

    def __init__(self, ca_pem: bytes, cert_pem: bytes, key_pem: bytes,
                 hostname: str = CONTROL_NAME) -> None:
        self._creator = ssl.optionsForClientTLS(
            hostname,
            trustRoot=ssl.Certificate.loadPEM(ca_pem),
            clientCertificate=ssl.PrivateCertificate.loadPEM(cert_pem + key_pem),
        )

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        """The same verifying connection creator, whatever address is dialled."""
        return self._creator


def client_tls_policy(
    ca_cert: str | Path, cert: str | Path, key: str | Path, hostname: str = CONTROL_NAME
) -> ClusterTLSPolicy:
    """A treq/Agent TLS policy from the cluster CA certificate and our cert and key files."""
    return ClusterTLSPolicy(
        _read(ca_cert, "cluster CA certificate"),
        _read(cert, "certificate"),
        _read(key, "key"),
        hostname,
    )
