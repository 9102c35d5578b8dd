"""``shoal ca init|issue``: the cluster certificate authority (see :mod:`control.ca`)."""

from __future__ import annotations

from typing import Any

from control import ca
from control.cli.options import UsageError, command, group
from control.cli.shell import Context


def _report(ctx: Context, written: ca.Written) -> None:
    if ctx.json:
        ctx.print_json({"certificate": str(written.certificate), "key": str(written.key)})
    else:
        ctx.print(f"wrote {written.certificate} and {written.key} (keep the key private)")


def init(ctx: Context) -> None:
    """Create the cluster CA."""
    _report(ctx, ca.init_ca_files(ctx.args.dir, ctx.args.name, ctx.shell.now()))


def issue(ctx: Context) -> None:
    """Issue a certificate signed by the cluster CA."""
    args = ctx.args
    if args.kind != "control" and args.name is None:
        raise UsageError(f"a {args.kind} certificate needs a NAME", "")
    dns = list(args.dns or [])
    if args.kind == "control" and args.name is not None:
        dns.insert(0, args.name)
    written = ca.issue_files(
        args.dir, args.kind, args.name, ctx.shell.now(), dns=dns, ips=args.ip or []
    )
    _report(ctx, written)


def register(subparsers: Any) -> None:
    """Add ``shoal ca ...``."""
    commands = group(subparsers, "ca", "the cluster certificate authority (mutual TLS)")
    p = command(commands, "init", init, "create the cluster CA: cluster.crt and cluster.key")
    p.add_argument("--dir", default=".", help="where the CA files go (default: .)")
    p.add_argument("--name", default="shoal", help="the cluster's name (default: shoal)")
    p = command(commands, "issue", issue, "issue a certificate signed by the cluster CA")
    p.add_argument("kind", choices=ca.KINDS,
                   help="control: the service (control-service.crt); node: an agent "
                   "(node-NAME.crt); user: an operator (user-NAME.crt)")
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="node or user name (for control: an extra DNS name)")
    p.add_argument("--dns", action="append", metavar="NAME", help="DNS name (repeatable)")
    p.add_argument("--ip", action="append", metavar="ADDRESS", help="IP address (repeatable)")
    p.add_argument("--dir", default=".", help="the CA's directory (default: .)")
