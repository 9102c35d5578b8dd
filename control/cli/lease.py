"""``shoal lease list|acquire|release``."""

from __future__ import annotations

from typing import Any

from control.cli.dataset import seconds_arg
from control.cli.options import command, group
from control.cli.output import duration, node_name, node_names, table
from control.cli.resolve import resolve_dataset, resolve_node
from control.cli.shell import Context
from control.model import Dataset, Lease
from control.wire import lease_to_json


def _expiry(lease: Lease, now: float) -> str:
    left = lease.seconds_left(now)
    return "never" if left is None else f"in {duration(left)}"


async def list_(ctx: Context) -> None:
    """List the leases that have not expired."""
    leases = await ctx.client.list_leases()
    now = ctx.clock.seconds()
    if ctx.json:
        ctx.print_json([lease_to_json(x, now) for x in leases])
        return
    datasets = {d.dataset_id: d for d in (await ctx.client.list_datasets()).datasets}
    names = node_names(await ctx.client.list_nodes())
    rows = []
    for lease in leases:
        dataset = datasets.get(lease.dataset_id)
        name = (dataset.name if dataset else None) or "-"
        node = node_name(lease.node_uuid, names)
        rows.append((str(lease.dataset_id), name, node, _expiry(lease, now)))
    ctx.print(table(("DATASET", "NAME", "NODE", "EXPIRES"), rows))


async def _dataset(ctx: Context) -> Dataset:
    return resolve_dataset(ctx.args.dataset, (await ctx.client.list_datasets()).datasets)


async def acquire(ctx: Context) -> None:
    """Acquire (or renew) a lease on a dataset for a node."""
    dataset = await _dataset(ctx)
    nodes = await ctx.client.list_nodes()
    node = resolve_node(ctx.args.node, nodes)
    lease, created = await ctx.client.acquire_lease(
        dataset.dataset_id, node, ctx.args.expires, move=ctx.args.move
    )
    now = ctx.clock.seconds()
    if ctx.json:
        ctx.print_json({**lease_to_json(lease, now), "created": created})
        return
    verb = "acquired" if created else "renewed"
    where = node_name(node, node_names(nodes))
    moved = f"; {where} is its primary" if ctx.args.move else ""
    ctx.print(f"{verb} lease on dataset {dataset.dataset_id} for {where}, "
              f"expiring {_expiry(lease, now)}{moved}")


async def release(ctx: Context) -> None:
    """Release a dataset's lease."""
    dataset = await _dataset(ctx)
    lease = await ctx.client.release_lease(dataset.dataset_id)
    if ctx.json:
        ctx.print_json(lease_to_json(lease, ctx.clock.seconds()))
        return
    holder = node_name(lease.node_uuid, node_names(await ctx.client.list_nodes()))
    ctx.print(f"released lease on dataset {dataset.dataset_id} held by {holder}")


def register(subparsers: Any) -> None:
    """Add ``shoal lease ...``."""
    commands = group(subparsers, "lease", "list, acquire and release leases on datasets")
    command(commands, "list", list_, "list leases")
    p = command(commands, "acquire", acquire, "lease a dataset to a node")
    p.add_argument("dataset", metavar="DATASET", help="dataset id, id prefix or name")
    p.add_argument("--node", required=True, help="the node holding the lease")
    p.add_argument("--expires", type=seconds_arg, metavar="S",
                   help="seconds until it expires (default: never)")
    p.add_argument("--move", action="store_true",
                   help="also make the node the dataset's primary, in the same write")
    p = command(commands, "release", release, "release a dataset's lease")
    p.add_argument("dataset", metavar="DATASET", help="dataset id, id prefix or name")
