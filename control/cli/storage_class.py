"""``shoal class create|list|show|update|delete``: storage classes (docs/placement.md)."""

from __future__ import annotations

import argparse
from typing import Any

from control.classes import StorageClass, class_to_json
from control.cli.options import command, group
from control.cli.output import table
from control.cli.shell import Context
from control.errors import InvalidRequest
from control.model import FILESYSTEMS, AccessMode
from control.topology import (
    BindingMode,
    ReclaimPolicy,
    describe_topology,
    parse_enum,
    parse_term,
)
from control.units import format_size, parse_size

HEADERS = ("NAME", "DEFAULT", "BACKEND", "FS", "SIZE", "BINDING", "RECLAIM", "ACCESS", "TOPOLOGY")


def _modes(cls: StorageClass) -> str:
    return ",".join(m.name for m in cls.access_modes)


def row(cls: StorageClass) -> tuple[str, ...]:
    """One table row of ``shoal class list``."""
    return (
        cls.name,
        "yes" if cls.default else "-",
        cls.backend or "any",
        cls.filesystem,
        format_size(cls.default_size),
        cls.binding_mode.value,
        cls.reclaim_policy.value,
        _modes(cls),
        describe_topology(cls.allowed_topologies),
    )


def _print(ctx: Context, cls: StorageClass) -> None:
    if ctx.json:
        ctx.print_json(class_to_json(cls))
        return
    params = ", ".join(f"{k}={v}" for k, v in sorted(cls.parameters.items())) or "-"
    lines = [
        ("class:", cls.name),
        ("default:", "yes" if cls.default else "no"),
        ("backend:", cls.backend or "any"),
        ("filesystem:", cls.filesystem),
        ("default size:", format_size(cls.default_size)),
        ("binding mode:", cls.binding_mode.value),
        ("reclaim policy:", cls.reclaim_policy.value),
        ("access modes:", ", ".join(m.value for m in cls.access_modes)),
        ("topology:", describe_topology(cls.allowed_topologies)),
        ("parameters:", params),
        ("failover:", _failover(cls)),
    ]
    ctx.print(table(("", ""), lines).split("\n", 1)[1])


def _failover(cls: StorageClass) -> str:
    enabled = {None: "default (on for a shared backend)", True: "on", False: "off"}[cls.failover]
    grace = "the cluster's grace" if cls.failover_grace is None else f"{cls.failover_grace:g}s"
    return f"{enabled}, after {grace}"


def _parameters(items: list[str] | None) -> dict[str, str]:
    found = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"A parameter is KEY=VALUE, not {item!r}.")
        found[key] = value
    return found


def _size(text: str | None) -> int | None:
    return None if text is None else parse_size(text)


def from_args(args: argparse.Namespace) -> StorageClass:
    """The class ``shoal class create`` asks for."""
    return StorageClass(
        name=args.name,
        backend=args.backend,
        filesystem=args.filesystem,
        default_size=_size(args.size),
        reclaim_policy=parse_enum(ReclaimPolicy, args.reclaim, "--reclaim"),
        binding_mode=parse_enum(BindingMode, args.binding, "--binding"),
        allowed_topologies=tuple(parse_term(t) for t in args.topology or ()),
        access_modes=tuple(
            parse_enum(AccessMode, m, "--access-mode") for m in args.access_mode or ["RWO"]
        ),
        parameters=_parameters(args.parameter),
        failover=args.failover,
        failover_grace=args.failover_grace,
        default=args.default,
    )


async def create(ctx: Context) -> None:
    """Create a storage class (the same settings again answer the existing one)."""
    made = await ctx.client.create_class(from_args(ctx.args))
    ctx.progress(f"storage class {made.name} ready" + (" (the default)" if made.default else ""))
    _print(ctx, made)


async def list_(ctx: Context) -> None:
    """List storage classes."""
    found = await ctx.client.list_classes()
    if ctx.json:
        ctx.print_json([class_to_json(c) for c in found])
        return
    ctx.print(table(HEADERS, [row(c) for c in found]))


async def show(ctx: Context) -> None:
    """Show one storage class."""
    _print(ctx, await ctx.client.get_class(ctx.args.name))


async def update(ctx: Context) -> None:
    """Change a storage class's mutable fields."""
    changes: dict[str, object] = {}
    if ctx.args.parameter is not None:
        changes["parameters"] = _parameters(ctx.args.parameter)
    if ctx.args.size is not None:
        changes["default_size"] = parse_size(ctx.args.size)
    if ctx.args.default is not None:
        changes["default"] = ctx.args.default
    if not changes:
        raise InvalidRequest(
            "Nothing to change: give --parameter, --size, --default or --no-default."
        )
    _print(ctx, await ctx.client.update_class(ctx.args.name, changes))


async def delete(ctx: Context) -> None:
    """Delete a storage class that no live dataset names."""
    deleted = await ctx.client.delete_class(ctx.args.name)
    ctx.progress(f"deleted storage class {deleted.name}")
    if ctx.json:
        ctx.print_json(class_to_json(deleted))


def register(subparsers: Any) -> None:
    """Add ``shoal class ...``."""
    commands = group(subparsers, "class", "create, list, show and delete classes")
    p = command(commands, "create", create, "create a storage class")
    p.add_argument("name", metavar="NAME", help="the class name (a DNS label, e.g. fast-a)")
    p.add_argument("--backend", help="the backend its volumes live on (default: any)")
    p.add_argument("--filesystem", choices=FILESYSTEMS, default=FILESYSTEMS[0])
    p.add_argument("--size", metavar="SIZE", help="the default size, e.g. 10G")
    p.add_argument("--reclaim", default="Delete", metavar="POLICY",
                   help="Delete (default) or Retain the volume when its dataset is deleted")
    p.add_argument("--binding", default="Immediate", metavar="MODE",
                   help="Immediate (default) or WaitForFirstConsumer")
    p.add_argument("--topology", action="append", metavar="TERM",
                   help="an allowed topology term KEY=V1|V2[,KEY=V] (repeatable: a node must "
                   "match one), e.g. topology.kubernetes.io/zone=a")
    p.add_argument("--access-mode", action="append", metavar="MODE",
                   help="an allowed access mode, RWO, RWOP or ROX (repeatable; the first is "
                   "the default; default RWO)")
    p.add_argument("--parameter", action="append", metavar="K=V",
                   help="a backend parameter (repeatable)")
    p.add_argument("--failover", action=argparse.BooleanOptionalAction, default=None,
                   help="its datasets fail over when their node dies (default: on for a "
                   "shared backend)")
    p.add_argument("--failover-grace", type=float, metavar="SECONDS",
                   help="seconds of silence before its datasets fail over (default: the "
                   "cluster's grace)")
    p.add_argument("--default", action="store_true", help="make it the default class")
    p = command(commands, "list", list_, "list storage classes")
    p = command(commands, "show", show, "show one storage class")
    p.add_argument("name", metavar="NAME")
    p = command(commands, "update", update, "change a class's parameters, size or default")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--parameter", action="append", metavar="K=V",
                   help="the backend parameters (replaces them all; repeatable)")
    p.add_argument("--size", metavar="SIZE", help="the new default size")
    p.add_argument("--default", action=argparse.BooleanOptionalAction, default=None,
                   help="make it the default class, or not")
    p = command(commands, "delete", delete, "delete a storage class no dataset uses")
    p.add_argument("name", metavar="NAME")
