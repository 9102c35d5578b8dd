"""``shoal node list|fence|unfence|drain``."""

from __future__ import annotations

from typing import Any

from control.cli.options import command, group
from control.cli.output import ago, labels_text, node_info_json, table
from control.cli.resolve import resolve_node
from control.cli.shell import Context
from control.client.interface import NodeInfo
from control.model import Capacity
from control.units import format_size


def fence_text(info: NodeInfo) -> str:
    """The FENCED column: ``-``, or who fenced the node and why."""
    fence = info.node.fence
    if fence is None:
        return "-"
    how = "auto" if fence.automatic else f"by {fence.actor or 'an operator'}"
    return f"{how}: {fence.reason}"


async def list_(ctx: Context) -> None:
    """List registered nodes: name, host, uuid, labels, era, liveness, fence, draining,
    and when last heard from."""
    nodes = await ctx.client.list_nodes()
    if ctx.json:
        ctx.print_json([node_info_json(n) for n in nodes])
        return
    now = ctx.clock.seconds()
    rows = [
        (
            n.node.display_name,
            n.node.host,
            str(n.node.uuid),
            labels_text(n.node.labels),
            n.node.era or "-",
            "live" if n.live else "not live",
            n.liveness or "-",
            fence_text(n),
            "yes" if n.node.draining else "-",
            ago(n.node.last_seen, now),
            capacity_text(n),
            _snapshot_method(n),
        )
        for n in sorted(nodes, key=lambda n: (n.node.display_name, str(n.node.uuid)))
    ]
    headers = (
        "NAME", "HOST", "UUID", "LABELS", "ERA", "STATUS", "LIVENESS", "FENCED", "DRAINING",
        "LAST SEEN", "CAPACITY", "SNAPSHOTS",
    )
    ctx.print(table(headers, rows))


async def _show(ctx: Context, info: NodeInfo, what: str) -> None:
    if ctx.json:
        ctx.print_json(node_info_json(info))
        return
    ctx.print(f"node {info.node.display_name} ({info.node.uuid}) {what}")


async def fence(ctx: Context) -> None:
    """Fence a node: its datasets fail over, and it stays fenced until unfenced."""
    target = resolve_node(ctx.args.node, await ctx.client.list_nodes())
    info = await ctx.client.fence_node(target, ctx.args.reason)
    fence = info.node.fence
    why = "" if fence is None else f": {fence.reason}"
    await _show(ctx, info, f"is fenced{why}; its datasets with failover on move to other nodes")


async def unfence(ctx: Context) -> None:
    """Lift a node's fence, so that it may hold datasets again."""
    target = resolve_node(ctx.args.node, await ctx.client.list_nodes())
    info = await ctx.client.unfence_node(target)
    await _show(ctx, info, "is no longer fenced")


async def drain(ctx: Context) -> None:
    """Move everything off a node (or, with ``--undo``, stop doing so)."""
    target = resolve_node(ctx.args.node, await ctx.client.list_nodes())
    info = await ctx.client.drain_node(target, not ctx.args.undo)
    if ctx.args.undo:
        await _show(ctx, info, "is no longer draining; datasets already moved stay where they are")
    else:
        await _show(
            ctx, info,
            "is draining: its datasets move to other nodes (leased ones once their lease goes)",
        )


def capacity_text(info: NodeInfo) -> str:
    """The CAPACITY column: ``loopback 12G free of 20G, shared`` (or node-local), or ``-``;
    each backend's, joined by ``; ``, when the node runs several."""
    found = info.capacities or (() if info.capacity is None else (info.capacity,))
    return "; ".join(_one_capacity(c) for c in found) or "-"


def _one_capacity(capacity: Capacity) -> str:
    room = "" if capacity.free is None else f" {format_size(capacity.free)} free"
    total = "" if capacity.total is None else f" of {format_size(capacity.total)}"
    reach = "shared" if capacity.shared else "node-local"
    return f"{capacity.backend}{room}{total}, {reach}"


def _snapshot_method(info: NodeInfo) -> str:
    """How the node's backend makes snapshots (``reflink``, ``copy``, ...), or ``-``."""
    if info.capacity is None or info.capacity.snapshot_method is None:
        return "-"
    return info.capacity.snapshot_method


def register(subparsers: Any) -> None:
    """Add ``shoal node ...``."""
    commands = group(subparsers, "node", "list, fence and drain the cluster's nodes")
    command(commands, "list", list_, "list registered nodes, their liveness, fences and drains")
    p = command(commands, "fence", fence, "fence a node: its datasets fail over elsewhere")
    p.add_argument("node", metavar="NODE", help="uuid, uuid prefix, host or name label")
    p.add_argument("--reason", help="why (shown in `shoal node list` and the events)")
    p = command(commands, "unfence", unfence, "lift a node's fence")
    p.add_argument("node", metavar="NODE", help="uuid, uuid prefix, host or name label")
    p = command(commands, "drain", drain, "move every dataset off a node")
    p.add_argument("node", metavar="NODE", help="uuid, uuid prefix, host or name label")
    p.add_argument("--undo", action="store_true", help="stop draining the node")
