"""``shoal snapshot create|list|show|delete``: copy-on-write snapshots of datasets."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from control.cli.dataset import seconds_arg
from control.cli.options import command, group
from control.cli.output import duration, node_name, node_names, table
from control.cli.resolve import resolve_dataset, resolve_snapshot
from control.cli.shell import Context
from control.cli.status import condition_text, with_names
from control.cli.wait import Blocked, TimedOut
from control.client.waiting import WATCH_SLICE, news, permanent_error
from control.errors import Conflict
from control.model import Dataset, DatasetSnapshot, Versions
from control.units import format_size
from control.wire import snapshot_to_json

DEFAULT_TIMEOUT = 120.0


def status(snapshot: DatasetSnapshot) -> str:
    """``pending`` (being made), ``ready`` or ``deleting`` (its node destroys it)."""
    if snapshot.deleted:
        return "deleting"
    return "ready" if snapshot.ready else "pending"


def source_name(snapshot: DatasetSnapshot, datasets: Mapping[UUID, Dataset]) -> str:
    """The source dataset's name, else its id (``(gone)`` once its record is purged)."""
    source = datasets.get(snapshot.dataset_id)
    if source is None:
        return f"{snapshot.dataset_id} (gone)"
    return source.name or str(source.dataset_id)


def rows(
    snapshots: Sequence[DatasetSnapshot],
    datasets: Mapping[UUID, Dataset],
    names: Mapping[UUID, str],
    now: float,
) -> list[tuple[str, ...]]:
    """One table row per snapshot, oldest first."""
    ordered = sorted(snapshots, key=lambda s: (s.created, str(s.snapshot_id)))
    return [
        (s.name, str(s.snapshot_id), source_name(s, datasets), format_size(s.size),
         status(s), node_name(s.node, names), f"{duration(now - s.created)} ago")
        for s in ordered
    ]


HEADERS = ("NAME", "SNAPSHOT", "DATASET", "SIZE", "STATUS", "NODE", "CREATED")


async def _datasets(ctx: Context) -> list[Dataset]:
    return (await ctx.client.list_datasets()).datasets


async def _find(ctx: Context) -> DatasetSnapshot:
    return resolve_snapshot(ctx.args.snapshot, await ctx.client.list_snapshots())


async def print_snapshot(ctx: Context, snapshot: DatasetSnapshot) -> None:
    """Print one snapshot, as JSON with ``--json``."""
    if ctx.json:
        ctx.print_json(snapshot_to_json(snapshot))
        return
    datasets = {d.dataset_id: d for d in await _datasets(ctx)}
    names = node_names(await ctx.client.list_nodes())
    now = ctx.clock.seconds()
    lines = [
        ("snapshot:", str(snapshot.snapshot_id)),
        ("name:", snapshot.name),
        ("dataset:", f"{source_name(snapshot, datasets)} ({snapshot.dataset_id})"),
        ("size:", format_size(snapshot.size)),
        ("status:", status(snapshot)),
        ("node:", node_name(snapshot.node, names)),
        ("filesystem:", snapshot.filesystem),
        ("created:", f"{duration(now - snapshot.created)} ago"),
    ]
    ctx.print(table(("", ""), lines).split("\n", 1)[1])


async def wait_ready(ctx: Context, snapshot: DatasetSnapshot, timeout: float) -> DatasetSnapshot:
    """The snapshot once its node reports it made; prints what its node reports meanwhile.

    Woken by the watch (never polling); raises :class:`TimedOut` after
    ``timeout`` seconds and :class:`Blocked` on a permanent error of the source.
    """
    deadline = ctx.clock.seconds() + timeout
    seen, shown = Versions(0, 0), frozenset[tuple[object, ...]]()
    names = node_names(await ctx.client.list_nodes())
    ctx.progress(f"waiting for snapshot {snapshot.name!r} to be ready")
    ctx.on_interrupt = (
        f"stopped waiting for snapshot {snapshot.name!r}, but it is still being made: "
        "`shoal snapshot list` shows when it is ready."
    )
    while True:
        current = await ctx.client.get_snapshot(snapshot.snapshot_id)
        if current.ready or current.deleted:
            ctx.on_interrupt = None
            if current.deleted:
                raise Conflict(f"Snapshot {current.name!r} was deleted while waiting for it.")
            return current
        conditions = await ctx.client.list_conditions(current.dataset_id)
        fresh, shown = news(conditions, current.dataset_id, shown)
        for found in fresh:
            ctx.progress(condition_text(found, names, ctx.clock.seconds()))
        blocked = permanent_error(conditions, current.dataset_id)
        if blocked is not None:
            raise Blocked(f"{node_name(blocked.node_uuid, names)} cannot make it: "
                          f"{with_names(blocked.condition.message, names)}.")
        left = deadline - ctx.clock.seconds()
        if left <= 0:
            raise TimedOut(f"Timed out after {duration(timeout)} waiting for snapshot "
                           f"{current.name!r} to be ready (its node has not reported it).")
        seen = await ctx.client.watch(seen.configuration, seen.state, min(left, WATCH_SLICE))


async def create(ctx: Context) -> None:
    """Snapshot a dataset (by id or name), optionally waiting until it is ready."""
    dataset = resolve_dataset(ctx.args.dataset, await _datasets(ctx))
    made = await ctx.client.create_snapshot(dataset.dataset_id, ctx.args.name)
    ctx.progress(f"snapshot {made.name!r} ({made.snapshot_id}) of dataset "
                 f"{dataset.name or dataset.dataset_id}: {status(made)}")
    if ctx.args.wait and not made.ready:
        made = await wait_ready(ctx, made, ctx.args.timeout)
    await print_snapshot(ctx, made)


async def list_(ctx: Context) -> None:
    """List snapshots (of one dataset, if named)."""
    datasets = await _datasets(ctx)
    only = None if ctx.args.dataset is None else resolve_dataset(ctx.args.dataset, datasets)
    found = await ctx.client.list_snapshots(None if only is None else only.dataset_id)
    if ctx.json:
        ctx.print_json([snapshot_to_json(s) for s in found])
        return
    names = node_names(await ctx.client.list_nodes())
    by_id = {d.dataset_id: d for d in datasets}
    ctx.print(table(HEADERS, rows(found, by_id, names, ctx.clock.seconds())))


async def show(ctx: Context) -> None:
    """Show one snapshot (by id, name or id prefix), optionally waiting until it is ready."""
    snapshot = await _find(ctx)
    if ctx.args.wait and not snapshot.ready and not snapshot.deleted:
        snapshot = await wait_ready(ctx, snapshot, ctx.args.timeout)
    await print_snapshot(ctx, snapshot)


async def delete(ctx: Context) -> None:
    """Delete a snapshot; datasets restored from it are untouched."""
    snapshot = await _find(ctx)
    deleted = await ctx.client.delete_snapshot(snapshot.snapshot_id)
    ctx.progress(f"deleted snapshot {deleted.name!r} ({deleted.snapshot_id}); its node "
                 "destroys it. Datasets restored from it are not touched.")
    if ctx.json:
        ctx.print_json(snapshot_to_json(deleted))


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", action="store_true", help="wait until the snapshot is ready")
    parser.add_argument(
        "--timeout", type=seconds_arg, default=DEFAULT_TIMEOUT, metavar="S",
        help=f"give up waiting after S seconds (default {DEFAULT_TIMEOUT:g})",
    )


def register(subparsers: Any) -> None:
    """Add ``shoal snapshot ...``."""
    commands = group(subparsers, "snapshot", "create, list, show and delete snapshots")
    p = command(commands, "create", create, "snapshot a dataset (copy-on-write)")
    p.add_argument("dataset", metavar="DATASET", help="the dataset: id, id prefix or name")
    p.add_argument("--name", help="the snapshot's name (default: from the dataset's name); "
                   "asking again with the same name answers the same snapshot")
    _wait_options(p)
    p = command(commands, "list", list_, "list snapshots")
    p.add_argument("dataset", metavar="DATASET", nargs="?", help="only this dataset's")
    p = command(commands, "show", show, "show one snapshot")
    p.add_argument("snapshot", metavar="SNAPSHOT", help="id, id prefix or name")
    _wait_options(p)
    p = command(commands, "delete", delete, "delete a snapshot (restored datasets stay)")
    p.add_argument("snapshot", metavar="SNAPSHOT", help="id, id prefix or name")
