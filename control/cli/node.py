"""``shoal node list``."""

from __future__ import annotations

from typing import Any

from control.cli.options import command, group
from control.cli.output import ago, labels_text, node_info_json, table
from control.cli.shell import Context
from control.client.interface import NodeInfo


async def list_(ctx: Context) -> None:
    """List registered nodes: name, host, uuid, labels, era, liveness and when last heard from."""
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
            ago(n.node.last_seen, now),
            _snapshot_method(n),
        )
        for n in sorted(nodes, key=lambda n: (n.node.display_name, str(n.node.uuid)))
    ]
    header = ("NAME", "HOST", "UUID", "LABELS", "ERA", "STATUS", "LAST SEEN", "SNAPSHOTS")
    ctx.print(table(header, rows))


def _snapshot_method(info: NodeInfo) -> str:
    """How the node's backend makes snapshots (``reflink``, ``copy``, ...), or ``-``."""
    if info.capacity is None or info.capacity.snapshot_method is None:
        return "-"
    return info.capacity.snapshot_method


def register(subparsers: Any) -> None:
    """Add ``shoal node ...``."""
    commands = group(subparsers, "node", "list the cluster's nodes")
    command(commands, "list", list_, "list registered nodes and whether they are live")
