"""``shoal ca init|issue|revoke``: the cluster certificate authority (see :mod:`control.ca`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from control import ca
from control.cli.options import UsageError, command, group
from control.cli.shell import Context
from control.errors import InvalidRequest, NotFound
from control.roles import USER_ROLES, Role, bound_node


def _report(ctx: Context, written: ca.Written, node: UUID | None = None) -> None:
    if ctx.json:
        body: dict[str, Any] = {"certificate": str(written.certificate), "key": str(written.key)}
        if node is not None:
            body["node_uuid"] = str(node)
        ctx.print_json(body)
        return
    ctx.print(f"wrote {written.certificate} and {written.key} (keep the key private)")
    if node is not None:
        ctx.print(f"bound to node {node}: its agent takes this uuid as its identity")


def init(ctx: Context) -> None:
    """Create the cluster CA."""
    _report(ctx, ca.init_ca_files(ctx.args.dir, ctx.args.name, ctx.shell.now()))


def _node_uuid(text: str | None) -> UUID:
    if text is None:
        return uuid4()
    try:
        return UUID(text)
    except ValueError:
        raise InvalidRequest(
            f"--uuid {text[:80]!r} is not a UUID: give the node's uuid as `shoal node list` "
            "shows it, or leave it out for a new node."
        ) from None


def issue(ctx: Context) -> None:
    """Issue a certificate signed by the cluster CA."""
    args = ctx.args
    if args.kind != "control" and args.name is None:
        raise UsageError(f"a {args.kind} certificate needs a NAME", "")
    if args.kind == "user" and args.role is None:
        choices = "|".join(r.value for r in USER_ROLES)
        raise UsageError(f"a user certificate needs --role {choices}", "")
    if args.kind != "user" and args.role is not None:
        raise UsageError(f"--role is for user certificates; a {args.kind} one has its own", "")
    if args.kind != "node" and args.uuid is not None:
        raise UsageError("--uuid is for node certificates", "")
    node = _node_uuid(args.uuid) if args.kind == "node" else None
    role = None if args.role is None else Role(args.role)
    dns = list(args.dns or [])
    if args.kind == "control" and args.name is not None:
        dns.insert(0, args.name)
    written = ca.issue_files(
        args.dir, args.kind, args.name, ctx.shell.now(), dns=dns, ips=args.ip or [],
        role=role, node=node,
    )
    _report(ctx, written, node)


def certificate_to_revoke(directory: str, which: str) -> tuple[int, str]:
    """The serial and common name of ``which``: a certificate file, a file stem in
    ``directory`` (``node-n1``, ``user-alice``), or a serial in hex (its name unknown)."""
    from cryptography import x509

    from control.revocations import parse_serial, serial_text
    from control.roles import common_name

    for path in (Path(which), Path(directory) / f"{which}.crt"):
        if path.is_file():
            certificate = x509.load_pem_x509_certificate(path.read_bytes())
            return certificate.serial_number, common_name(certificate)
    try:
        serial = parse_serial(which)
    except InvalidRequest:
        raise NotFound(
            f"{which!r} is neither a certificate in {directory} ({which}.crt) nor a serial in "
            "hex: give the name `shoal ca issue` wrote (node-NAME, user-NAME) with --dir, "
            "a .crt file, or the serial `openssl x509 -noout -serial` shows."
        ) from None
    return serial, f"serial {serial_text(serial)}"


async def revoke(ctx: Context) -> None:
    """Revoke a certificate: the control service refuses it from now on."""
    from control.revocations import revocation_to_json, serial_text

    serial, subject = certificate_to_revoke(ctx.args.dir, ctx.args.certificate)
    kept = await ctx.client.revoke_certificate(serial, subject, ctx.args.reason)
    if ctx.json:
        ctx.print_json(revocation_to_json(kept))
    else:
        ctx.print(f"revoked {kept.subject} (serial {serial_text(kept.serial)}): the control "
                  "service refuses it and has dropped its connections")


async def revocations(ctx: Context) -> None:
    """List the revoked certificates."""
    from control.revocations import revocation_to_json, serial_text

    found = await ctx.client.list_revocations()
    if ctx.json:
        ctx.print_json([revocation_to_json(r) for r in found])
        return
    for r in found:
        reason = "" if r.reason is None else f"  ({r.reason})"
        ctx.print(f"{serial_text(r.serial)}  {r.subject}  by {r.actor or '-'}{reason}")


def node_of_certificate(path: str) -> UUID | None:
    """The node uuid the certificate file at ``path`` is bound to, if any."""
    return bound_node(Path(path).read_bytes())


def register(subparsers: Any) -> None:
    """Add ``shoal ca ...``."""
    commands = group(subparsers, "ca", "the cluster certificate authority (mutual TLS)")
    p = command(commands, "init", init, "create the cluster CA: cluster.crt and cluster.key")
    p.add_argument("--dir", default=".", help="where the CA files go (default: .)")
    p.add_argument("--name", default="shoal", help="the cluster's name (default: shoal)")
    p = command(commands, "issue", issue, "issue a certificate signed by the cluster CA")
    p.add_argument("kind", choices=ca.KINDS,
                   help="control: the service (control-service.crt); node: an agent "
                   "(node-NAME.crt), bound to the node's uuid; user: a person or program "
                   "(user-NAME.crt) with a --role")
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="node or user name (for control: an extra DNS name)")
    p.add_argument("--role", choices=[r.value for r in USER_ROLES],
                   help="a user's role: viewer reads; operator also changes datasets, "
                   "snapshots and leases; admin also nodes, classes, fencing and certificates")
    p.add_argument("--uuid", metavar="UUID",
                   help="the node's uuid (default: a new one); give the existing uuid to "
                   "reissue a node's certificate")
    p.add_argument("--dns", action="append", metavar="NAME", help="DNS name (repeatable)")
    p.add_argument("--ip", action="append", metavar="ADDRESS", help="IP address (repeatable)")
    p.add_argument("--dir", default=".", help="the CA's directory (default: .)")
    p = command(commands, "revoke", revoke,
                "revoke a certificate: the control service refuses it and drops its connections "
                "(needs an admin certificate)")
    p.add_argument("certificate", metavar="SERIAL|NAME",
                   help="the certificate: its name as issued (node-n1, user-alice), a .crt "
                   "file, or its serial in hex")
    p.add_argument("--reason", help="why, for the event history")
    p.add_argument("--dir", default=".", help="where the issued certificates are (default: .)")
    command(commands, "revocations", revocations, "list the revoked certificates (admin)")
