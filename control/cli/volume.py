"""``shoal volume orphans|destroy``: backend volumes that no dataset owns."""

from __future__ import annotations

from typing import Any

from control.cli.options import command, group
from control.cli.output import node_name, node_names, table
from control.cli.shell import Context
from control.units import format_size
from control.wire import dataset_to_json, reported_orphan_to_json


async def orphans(ctx: Context) -> None:
    """List the orphaned volumes nodes report: each with its dataset id, size and node."""
    found = await ctx.client.list_orphans()
    if ctx.json:
        ctx.print_json([reported_orphan_to_json(node, orphan) for node, orphan in found])
        return
    names = node_names(await ctx.client.list_nodes())
    rows = [
        (
            orphan.blockdevice_id,
            str(orphan.dataset_id or "-"),
            format_size(orphan.size),
            node_name(node, names),
        )
        for node, orphan in found
    ]
    ctx.print(table(("VOLUME", "DATASET", "SIZE", "SEEN BY"), rows))


async def destroy(ctx: Context) -> None:
    """Have an orphaned volume destroyed by a node that sees it."""
    record = await ctx.client.destroy_orphan(ctx.args.blockdevice_id)
    if ctx.json:
        ctx.print_json(dataset_to_json(record))
        return
    names = node_names(await ctx.client.list_nodes())
    ctx.print(
        f"volume {ctx.args.blockdevice_id} will be destroyed by "
        f"{node_name(record.primary, names)}: dataset {record.dataset_id} is recorded as "
        "deleted until the volume is gone"
    )


def register(subparsers: Any) -> None:
    """Add ``shoal volume ...``."""
    commands = group(subparsers, "volume", "backend volumes that no dataset owns")
    command(commands, "orphans", orphans, "list orphaned volumes and the nodes that see them")
    p = command(commands, "destroy", destroy, "destroy an orphaned volume (never a live one)")
    p.add_argument("blockdevice_id", metavar="BLOCKDEVICE_ID",
                   help="the volume's id, as `shoal volume orphans` lists it")
