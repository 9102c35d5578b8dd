"""``shoal events``: the event history, optionally followed as it grows."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from control.cli.dataset import seconds_arg
from control.cli.options import command
from control.cli.output import node_name, node_names
from control.cli.resolve import resolve_dataset, resolve_node
from control.cli.shell import Context
from control.cli.status import with_names
from control.model import Event, Versions
from control.wire import event_to_json

WATCH_SLICE = 30.0
"""The longest single watch while following."""
DEFAULT_LIMIT = 50
MAXIMUM_LIMIT = 1000


def limit_arg(text: str) -> int:
    """``--limit``: 1 to 1000 events."""
    import argparse

    if not text.isdigit() or not 1 <= int(text) <= MAXIMUM_LIMIT:
        raise argparse.ArgumentTypeError(f"expected a number from 1 to {MAXIMUM_LIMIT}")
    return int(text)


def event_line(event: Event, datasets: Mapping[UUID, str], names: Mapping[UUID, str]) -> str:
    """One event as a line: when, what, which dataset, which node, the message, by whom."""
    when = datetime.fromtimestamp(event.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    dataset = "-" if event.dataset_id is None else datasets.get(event.dataset_id,
                                                                  str(event.dataset_id))
    node = node_name(event.node_uuid, names)
    by = f" (by {with_names(event.actor, names)})" if event.actor else ""
    message = with_names(event.message, names)
    return f"{when}  {event.kind:<16} {dataset:<12} {node:<10} {message}{by}"


async def events(ctx: Context) -> None:
    """Print the event history (of a dataset and/or node); with --follow, keep printing."""
    args = ctx.args
    listing = await ctx.client.list_datasets()
    nodes = await ctx.client.list_nodes()
    dataset_id = None if args.dataset is None else resolve_dataset(
        args.dataset, listing.datasets).dataset_id
    node_uuid = None if args.node is None else resolve_node(args.node, nodes)
    datasets = {d.dataset_id: d.name or str(d.dataset_id)[:8] for d in listing.datasets}
    names = node_names(nodes)
    found = await ctx.client.list_events(dataset_id, node_uuid, None, args.limit)
    if not args.follow:
        if ctx.json:
            ctx.print_json([event_to_json(e) for e in found])
            return
        for event in found:
            ctx.print(event_line(event, datasets, names))
        return
    deadline = None if args.timeout is None else ctx.clock.seconds() + args.timeout
    last = 0
    seen = Versions(0, 0)
    while True:
        for event in found:
            if ctx.json:
                ctx.print(json.dumps(event_to_json(event), sort_keys=True))
            else:
                ctx.print(event_line(event, datasets, names))
            last = max(last, event.event_id or 0)
        wait = WATCH_SLICE
        if deadline is not None:
            wait = min(wait, deadline - ctx.clock.seconds())
            if wait <= 0:
                return
        seen = await ctx.client.watch(seen.configuration, seen.state, wait)
        found = await ctx.client.list_events(dataset_id, node_uuid, last, MAXIMUM_LIMIT)


def register(subparsers: Any) -> None:
    """Add ``shoal events``."""
    p = command(subparsers, "events", events, "show what happened to datasets and nodes")
    p.add_argument("--dataset", metavar="ID|NAME", help="only this dataset's events")
    p.add_argument("--node", metavar="NODE", help="only this node's events")
    p.add_argument("--limit", type=limit_arg, default=DEFAULT_LIMIT, metavar="N",
                   help=f"show the newest N events first (default {DEFAULT_LIMIT})")
    p.add_argument("--follow", action="store_true",
                   help="keep printing new events as they happen (Ctrl-C to stop)")
    p.add_argument("--timeout", type=seconds_arg, metavar="S",
                   help="with --follow, stop after S seconds")
