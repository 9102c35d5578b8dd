"""
Who a client certificate speaks for: its role, and for a node certificate, its node.

``shoal ca issue`` writes the role into the certificate's SubjectAltName as a
URI, ``urn:shoal:role:ROLE``, and a node certificate also carries
``urn:shoal:node:UUID``, the one node it may speak for (SPIFFE-style identities
in the standard extension). The subject's OU repeats the role for people
(``openssl x509 -noout -subject``); only the URIs count.

Roles: ``viewer`` reads; ``operator`` also changes datasets, snapshots and
leases; ``admin`` also nodes, classes, fencing and certificates; ``node`` is an
agent, which registers, reports and reads its own configuration; ``control`` is
the service itself, allowed everything. Pure: parsing only (``cryptography``
is imported only to parse, so that :mod:`control.rules` can use the URNs cheaply).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING
from uuid import UUID

from attrs import frozen

if TYPE_CHECKING:
    from cryptography import x509

ROLE_URN = "urn:shoal:role:"
NODE_URN = "urn:shoal:node:"


class Role(enum.Enum):
    """What a certificate may do (see the module docstring)."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    NODE = "node"
    CONTROL = "control"


USER_ROLES: tuple[Role, ...] = (Role.ADMIN, Role.OPERATOR, Role.VIEWER)
"""The roles ``shoal ca issue user NAME --role ROLE`` can give."""


@frozen
class Principal:
    """Who made a request over mutual TLS, as its client certificate says.

    ``role`` is ``None`` for a certificate issued before roles existed (it may
    do nothing until reissued); ``node`` is the node a ``node`` certificate
    speaks for; ``serial`` and ``fingerprint`` (SHA-256, hex) name the certificate.
    """

    subject: str
    role: Role | None
    serial: int
    fingerprint: str
    node: UUID | None = None

    @property
    def actor(self) -> str:
        """How the event history names this principal: common name and role."""
        role = "no role" if self.role is None else self.role.value
        return f"{self.subject} ({role})"

    @property
    def identity(self) -> str:
        """What a node registration records as its owner: the bound node, else the fingerprint."""
        return self.fingerprint if self.node is None else node_urn(self.node)


def role_urn(role: Role) -> str:
    """The SubjectAltName URI that gives ``role``."""
    return ROLE_URN + role.value


def node_urn(node: UUID) -> str:
    """The SubjectAltName URI that binds a certificate to ``node``."""
    return NODE_URN + str(node)


def _uris(certificate: x509.Certificate) -> list[str]:
    from cryptography import x509

    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(names.value.get_values_for_type(x509.UniformResourceIdentifier))


def _one(uris: list[str], prefix: str) -> str | None:
    """The single value after ``prefix``; ``None`` if absent or given twice (ambiguous)."""
    found = [uri[len(prefix) :] for uri in uris if uri.startswith(prefix)]
    return found[0] if len(found) == 1 else None


def _role(text: str | None) -> Role | None:
    try:
        return None if text is None else Role(text)
    except ValueError:
        return None


def _node(text: str | None) -> UUID | None:
    try:
        return None if text is None else UUID(text)
    except ValueError:
        return None


def common_name(certificate: x509.Certificate) -> str:
    """The certificate's subject CN (``node-n1``, ``user-alice``), or its whole subject."""
    from cryptography.x509.oid import NameOID

    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else certificate.subject.rfc4514_string()


def principal_of(certificate: x509.Certificate) -> Principal:
    """The principal a (CA-verified) client certificate names.

    A ``node`` role without exactly one valid node URI is no role at all: a
    node certificate must say which node it is.
    """
    from cryptography.hazmat.primitives import hashes

    uris = _uris(certificate)
    role = _role(_one(uris, ROLE_URN))
    node = _node(_one(uris, NODE_URN))
    if role is Role.NODE and node is None:
        role = None
    return Principal(
        subject=common_name(certificate),
        role=role,
        serial=certificate.serial_number,
        fingerprint=certificate.fingerprint(hashes.SHA256()).hex(),
        node=node if role is Role.NODE else None,
    )


def bound_node(certificate_pem: bytes) -> UUID | None:
    """The node a PEM certificate is bound to, if it is a node certificate."""
    from cryptography import x509

    return principal_of(x509.load_pem_x509_certificate(certificate_pem)).node
