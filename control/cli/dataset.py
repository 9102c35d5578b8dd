"""``shoal dataset create|list|show|move|delete``."""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from control.cli import dataset_source, wait
from control.cli.failover import failover_json, failover_summary, register_dataset_failover
from control.cli.options import command, group
from control.cli.output import duration, node_name, node_names, state_json, table
from control.cli.resolve import resolve_dataset, resolve_node
from control.cli.shell import Context
from control.cli.status import blocking, condition_json, condition_text, status_of, with_names
from control.client.interface import NodeCondition, NodeInfo, StateDataset
from control.errors import Conflict, InvalidRequest, ShoalError
from control.model import AccessMode, Dataset, Event, Node, check_maximum_size
from control.topology import parse_enum
from control.units import format_size, parse_size
from control.wire import JSON, dataset_to_json, event_to_json, lease_to_json, node_dataset_to_json

DEFAULT_TIMEOUT = 120.0
SHOWN_EVENTS = 10
"""How many of its latest events ``shoal dataset show`` prints."""


def size_arg(text: str) -> int:
    """``--size``: a size with a binary unit (see :mod:`control.units`)."""
    try:
        size = parse_size(text)
        check_maximum_size(size, "the size")
    except ShoalError as e:
        raise argparse.ArgumentTypeError(e.description) from None
    return size


def meta_arg(text: str) -> tuple[str, str]:
    """``--meta``: one ``KEY=VALUE`` pair."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


CLI_TERMS = {"maximum_size": "--size"}
"""The API's field names, as the ``shoal dataset create`` options that set them."""


def in_cli_terms(error: ShoalError) -> ShoalError:
    """``error`` speaking of the CLI's options (``--size``) instead of the API's fields."""
    description = error.description
    for field, option in CLI_TERMS.items():
        description = re.sub(rf"\b{field}\b", option, description)
    if description == error.description:
        return error
    return type(error)(description, error.errors)


def uuid_arg(text: str) -> UUID:
    """``--id``: a dataset id."""
    try:
        return UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a UUID") from None


def seconds_arg(text: str) -> float:
    """``--timeout``: a positive number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return seconds


def default_node(nodes: Sequence[NodeInfo]) -> UUID:
    """The node to use when none is named: the only one there is."""
    if len(nodes) == 1:
        return nodes[0].node.uuid
    if not nodes:
        raise InvalidRequest("No node has registered yet: start an agent (`shoal agent run`).")
    known = ", ".join(sorted(n.node.display_name for n in nodes))
    raise InvalidRequest(f"The cluster has {len(nodes)} nodes ({known}): choose one with --node.")


def unseen(node: Node, now: float) -> str:
    """How long a node has been silent: ``not seen for 2m`` or ``never seen``."""
    if node.last_seen is None:
        return "never seen"
    return f"not seen for {duration(now - node.last_seen)}"


def liveness_status(dataset: Dataset, primary: NodeInfo | None, now: float) -> str | None:
    """``unknown (node1 not seen for 2m)`` when the dataset's primary is not live, else ``None``.

    What a silent node last reported may no longer be true, so it is not shown as a fact.
    """
    if dataset.deleted or primary is None or primary.live:
        return None
    return f"unknown ({primary.node.display_name} {unseen(primary.node, now)})"


def check_live(target: NodeInfo, now: float, force: bool) -> None:
    """Refuse to place a dataset on a node that is not live, unless ``force``."""
    if force or target.live:
        return
    raise Conflict(
        f"Node {target.node.display_name} is not live ({unseen(target.node, now)}): its agent "
        "may be down, and nothing would act on the dataset there until it is back. "
        "Start that node's agent, choose a live node (`shoal node list`), or give --force."
    )


def _status(dataset: Dataset, state: StateDataset | None, nodes: Sequence[NodeInfo],
            now: float, conditions: Sequence[NodeCondition]) -> str:
    primary = next((n for n in nodes if n.node.uuid == dataset.primary), None)
    return liveness_status(dataset, primary, now) or status_of(
        dataset, state, node_names(nodes), conditions
    )


def _node_info(nodes: Sequence[NodeInfo], uuid: UUID) -> NodeInfo:
    return next(n for n in nodes if n.node.uuid == uuid)


def _state_of(states: Sequence[StateDataset], dataset_id: UUID) -> StateDataset | None:
    return next((s for s in states if s.dataset_id == dataset_id), None)


def _document(dataset: Dataset, state: StateDataset | None, conditions: Sequence[NodeCondition],
              nodes: Sequence[NodeInfo], now: float) -> JSON:
    return {
        "dataset": dataset_to_json(dataset),
        "state": state_json(state),
        "status": _status(dataset, state, nodes, now, conditions),
        "conditions": [condition_json(c) for c in blocking(conditions, dataset.dataset_id)],
    }


def _event_line(event: Event, names: Mapping[UUID, str], now: float) -> tuple[str, ...]:
    return (f"{duration(now - event.at)} ago", event.kind, with_names(event.message, names),
            with_names(event.actor or "-", names))


async def show_dataset(ctx: Context, dataset: Dataset, nodes: Sequence[NodeInfo]) -> None:
    """Print one dataset with its actual state, lease, conditions and latest events."""
    states = await ctx.client.list_state_datasets()
    leases = await ctx.client.list_leases()
    conditions = await ctx.client.list_conditions(dataset.dataset_id)
    events = await ctx.client.list_events(dataset_id=dataset.dataset_id, limit=SHOWN_EVENTS)
    failover = await ctx.client.get_failover(dataset.dataset_id)
    dataset = await _full_record(ctx, dataset)
    state = _state_of(states, dataset.dataset_id)
    lease = next((x for x in leases if x.dataset_id == dataset.dataset_id), None)
    now = ctx.clock.seconds()
    names = node_names(nodes)
    if ctx.json:
        ctx.print_json({
            **_document(dataset, state, conditions, nodes, now),
            "lease": None if lease is None else lease_to_json(lease, now),
            "failover": failover_json(failover),
            "events": [event_to_json(e) for e in events],
            "access_mode": dataset.access_mode.value,
            "readers": sorted(str(r) for r in dataset.readers),
            "backend": dataset.backend,
        })
        return
    held = "none"
    if lease is not None:
        left = lease.seconds_left(now)
        until = "until released" if left is None else f"for {left:.0f}s"
        held = f"held by {node_name(lease.node_uuid, names)} {until}"
    rows = [
        ("dataset:", str(dataset.dataset_id)),
        ("name:", dataset.name or "-"),
        ("size:", format_size(dataset.maximum_size)),
        ("primary:", f"{node_name(dataset.primary, names)} ({dataset.primary})"),
        ("status:", _status(dataset, state, nodes, now, conditions)),
        ("path:", (state.path if state else None) or "-"),
        ("lease:", held),
        ("failover:", failover_summary(failover)),
        ("metadata:", ",".join(f"{k}={v}" for k, v in sorted(dataset.metadata.items())) or "-"),
    ]
    if dataset.readers:
        readers = ", ".join(sorted(node_name(r, names) for r in dataset.readers))
        rows.append(("readers:", f"{readers} (read-only, {dataset.access_mode.value})"))
    for found in blocking(conditions, dataset.dataset_id):
        rows.append(("condition:", condition_text(found, names, now)))
    ctx.print(table(("", ""), rows).split("\n", 1)[1])
    if events:
        ctx.print("")
        ctx.print(table(("WHEN", "EVENT", "MESSAGE", "BY"),
                        [_event_line(e, names, now) for e in events]))


async def _full_record(ctx: Context, dataset: Dataset) -> Dataset:
    """The dataset as the agents' route has it (access mode, readers, backend), which the
    Flocker v1 listing leaves out; as it is when that route does not answer."""
    if not dataset.bound:
        return dataset
    try:
        found = await ctx.client.node_configuration(dataset.primary, [dataset.dataset_id])
    except ShoalError:
        return dataset
    return next((d for d in found.datasets if d.dataset_id == dataset.dataset_id), dataset)


async def _find(ctx: Context) -> tuple[Dataset, list[NodeInfo]]:
    listing = await ctx.client.list_datasets()
    nodes = await ctx.client.list_nodes()
    return resolve_dataset(ctx.args.dataset, listing.datasets), nodes


async def create(ctx: Context) -> None:
    """Create a dataset, optionally waiting until it is mounted."""
    args = ctx.args
    nodes = await ctx.client.list_nodes()
    source, near = await dataset_source.chosen_source(ctx)
    placed = await _placed_by_class(ctx, source)
    primary: UUID | None = None
    if args.node is not None:
        primary = resolve_node(args.node, nodes)
    elif not placed:
        known = near is not None and any(n.node.uuid == near for n in nodes)
        primary = near if near is not None and known else default_node(nodes)
    if primary is not None:
        check_live(_node_info(nodes, primary), ctx.clock.seconds(), args.force)
    metadata = dict(args.meta or [])
    try:
        if source is None and args.fs is None and not placed and primary is not None:
            dataset = await ctx.client.create_dataset(primary, args.size, metadata, args.id)
        else:
            dataset = await ctx.client.create_shoal_dataset(
                primary, args.size, metadata, args.id, args.fs, source,
                storage_class=args.storage_class, access_mode=_mode(args.access_mode),
            )
    except ShoalError as e:
        raise in_cli_terms(e) from None
    primary = dataset.primary
    names = node_names(nodes)
    where = node_name(primary, names)
    how = "" if source is None else f" ({dataset_source.describe_source(source)})"
    if dataset.bound:
        ctx.progress(f"created dataset {dataset.dataset_id} on {where}{how}")
    else:
        ctx.progress(f"created dataset {dataset.dataset_id}, unbound until its first use "
                     "(a container mounting it, or `shoal dataset attach`)")
    if args.wait and dataset.bound:
        goal = wait.mounted_on(dataset.dataset_id, primary, names)
        await wait.wait_until(ctx, goal, args.timeout, dataset.dataset_id, names)
    await show_dataset(ctx, dataset, nodes)


async def _placed_by_class(ctx: Context, source: object) -> bool:
    """Whether the control service places the new dataset: a class is named, or there is
    a default class, and neither ``--node`` nor a source says where."""
    args = ctx.args
    if args.storage_class is not None or args.access_mode is not None:
        return True
    if args.node is not None or source is not None:
        return False
    return any(c.default for c in await ctx.client.list_classes())


def _mode(text: str | None) -> str | None:
    return None if text is None else parse_enum(AccessMode, text, "--access-mode").value


async def released(ctx: Context) -> None:
    """List released datasets: deleted with their volume retained."""
    found = await ctx.client.list_released()
    if ctx.json:
        ctx.print_json([node_dataset_to_json(d) for d in found])
        return
    rows = [(d.name or "-", str(d.dataset_id), format_size(d.maximum_size),
             d.storage_class or "-") for d in found]
    ctx.print(table(("NAME", "DATASET", "SIZE", "CLASS"), rows))


async def adopt(ctx: Context) -> None:
    """Make a released dataset (by id, id prefix or its old name) live again, with its data."""
    found = await ctx.client.list_released()
    dataset = resolve_dataset(ctx.args.volume, found)
    nodes = await ctx.client.list_nodes()
    target = None if ctx.args.node is None else resolve_node(ctx.args.node, nodes)
    try:
        adopted = await ctx.client.adopt_dataset(dataset.dataset_id, target)
    except ShoalError as e:
        raise in_cli_terms(e) from None
    names = node_names(nodes)
    ctx.progress(f"adopted dataset {adopted.dataset_id} on {node_name(adopted.primary, names)}, "
                 "with its retained volume")
    if ctx.args.wait:
        goal = wait.mounted_on(adopted.dataset_id, adopted.primary, names)
        await wait.wait_until(ctx, goal, ctx.args.timeout, adopted.dataset_id, names)
    await show_dataset(ctx, adopted, nodes)


async def attach(ctx: Context) -> None:
    """Bind an unbound dataset to a node (its first use), or let the node read a
    ReadOnlyMany dataset bound elsewhere; optionally waiting for the mount."""
    dataset, nodes = await _find(ctx)
    target = resolve_node(ctx.args.node, nodes)
    names = node_names(nodes)
    check_live(_node_info(nodes, target), ctx.clock.seconds(), ctx.args.force)
    reading = dataset.bound and dataset.primary != target
    try:
        if reading:
            done = await ctx.client.add_reader(dataset.dataset_id, target)
            ctx.progress(f"dataset {done.dataset_id} read on {node_name(target, names)} "
                         f"(read-only; primary {node_name(done.primary, names)})")
        else:
            done = await ctx.client.move_dataset(dataset.dataset_id, target)
            ctx.progress(f"dataset {done.dataset_id} bound to {node_name(target, names)}")
    except ShoalError as e:
        raise in_cli_terms(e) from None
    if ctx.args.wait:  # a reader: as the reader itself reports it
        goal = wait.mounted_on(done.dataset_id, target, names)
        where = target if reading else None
        await wait.wait_until(ctx, goal, ctx.args.timeout, done.dataset_id, names, where)
    await show_dataset(ctx, done, nodes)


async def detach(ctx: Context) -> None:
    """Stop a node reading a ReadOnlyMany dataset: it unmounts and detaches it there."""
    dataset, nodes = await _find(ctx)
    target = resolve_node(ctx.args.node, nodes)
    try:
        done = await ctx.client.remove_reader(dataset.dataset_id, target)
    except ShoalError as e:
        raise in_cli_terms(e) from None
    ctx.progress(f"dataset {done.dataset_id} no longer read on "
                 f"{node_name(target, node_names(nodes))}")
    await show_dataset(ctx, done, nodes)


async def list_(ctx: Context) -> None:
    """List every dataset with where it actually is."""
    listing = await ctx.client.list_datasets()
    states = await ctx.client.list_state_datasets()
    nodes = await ctx.client.list_nodes()
    conditions = await ctx.client.list_conditions()
    names = node_names(nodes)
    now = ctx.clock.seconds()
    if ctx.json:
        ctx.print_json([_document(d, _state_of(states, d.dataset_id), conditions, nodes, now)
                        for d in listing.datasets])
        return
    rows = []
    for d in sorted(listing.datasets, key=lambda d: (d.name or "~", str(d.dataset_id))):
        state = _state_of(states, d.dataset_id)
        path = (state.path if state else None) or "-"
        status = _status(d, state, nodes, now, conditions)
        primary = node_name(d.primary, names)
        rows.append((str(d.dataset_id), d.name or "-", format_size(d.maximum_size), primary,
                     status, path))
    ctx.print(table(("DATASET", "NAME", "SIZE", "PRIMARY", "STATUS", "PATH"), rows))


async def show(ctx: Context) -> None:
    """Show one dataset."""
    dataset, nodes = await _find(ctx)
    await show_dataset(ctx, dataset, nodes)


async def move(ctx: Context) -> None:
    """Move a dataset to another node, optionally waiting until it is mounted there."""
    dataset, nodes = await _find(ctx)
    target = resolve_node(ctx.args.to, nodes)
    names = node_names(nodes)
    if target == dataset.primary:
        moved = dataset
        ctx.progress(f"dataset {dataset.dataset_id} is already on {node_name(target, names)}; "
                     "nothing to move")
    else:
        check_live(_node_info(nodes, target), ctx.clock.seconds(), ctx.args.force)
        moved = await ctx.client.move_dataset(dataset.dataset_id, target)
        ctx.progress(f"moving dataset {moved.dataset_id} to {node_name(target, names)}")
    if ctx.args.wait:
        goal = wait.mounted_on(moved.dataset_id, target, names)
        await wait.wait_until(ctx, goal, ctx.args.timeout, moved.dataset_id, names)
    await show_dataset(ctx, moved, nodes)


async def delete(ctx: Context) -> None:
    """Delete a dataset, optionally waiting until no node has its volume."""
    dataset, nodes = await _find(ctx)
    deleted = await ctx.client.delete_dataset(dataset.dataset_id)
    ctx.progress(f"deleted dataset {deleted.dataset_id}; its node destroys the volume")
    if ctx.args.wait:
        names = node_names(nodes)
        goal = wait.gone(deleted.dataset_id, names)
        await wait.wait_until(ctx, goal, ctx.args.timeout, deleted.dataset_id, names)
    if ctx.json:
        ctx.print_json({"dataset": dataset_to_json(deleted)})


async def resize(ctx: Context) -> None:
    """Grow a dataset, optionally waiting until its primary reports the new size."""
    dataset, nodes = await _find(ctx)
    try:
        grown = await ctx.client.resize_dataset(dataset.dataset_id, ctx.args.size)
    except ShoalError as e:
        raise in_cli_terms(e) from None
    names = node_names(nodes)
    ctx.progress(
        f"resizing dataset {grown.dataset_id} from {format_size(dataset.maximum_size)} to "
        f"{format_size(grown.maximum_size)}; {node_name(grown.primary, names)} grows the "
        "volume and its filesystem online"
    )
    if ctx.args.wait:
        goal = dataset_source.grown_to(grown.dataset_id, grown.primary, ctx.args.size, names)
        await wait.wait_until(ctx, goal, ctx.args.timeout, grown.dataset_id, names)
    await show_dataset(ctx, grown, nodes)


def _wait_options(parser: argparse.ArgumentParser, goal: str) -> None:
    parser.add_argument("--wait", action="store_true", help=f"wait until {goal}")
    parser.add_argument(
        "--timeout", type=seconds_arg, default=DEFAULT_TIMEOUT, metavar="S",
        help=f"give up waiting after S seconds (default {DEFAULT_TIMEOUT:g})",
    )


def _force_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true",
                        help="place the dataset there even if the node is not live")


def register(subparsers: Any) -> None:
    """Add ``shoal dataset ...``."""
    commands = group(subparsers, "dataset", "create, list, move and delete datasets")
    p = command(commands, "create", create, "create a dataset")
    p.add_argument("--node", help="primary node: uuid, uuid prefix, host or name label "
                   "(default: the only node, or where the source is)")
    p.add_argument("--size", type=size_arg, help="maximum size, e.g. 10G, 512MiB (binary units)")
    p.add_argument("--meta", type=meta_arg, action="append", metavar="KEY=VALUE",
                   help="metadata (repeatable); name=NAME names the volume")
    p.add_argument("--id", type=uuid_arg, help="the dataset id (default: generated)")
    p.add_argument("--class", dest="storage_class", metavar="CLASS",
                   help="its storage class (default: the default class); without --node the "
                   "class places it, or leaves it unbound until its first use")
    p.add_argument("--access-mode", metavar="MODE",
                   help="RWO, RWOP or ROX: one its class allows (default: the class's first)")
    dataset_source.add_source_options(p)
    _force_option(p)
    _wait_options(p, "it is mounted on its primary")
    command(commands, "list", list_, "list datasets and where they are")
    p = command(commands, "show", show, "show one dataset")
    p.add_argument("dataset", metavar="ID|NAME")
    p = command(commands, "move", move, "move a dataset to another node")
    p.add_argument("dataset", metavar="ID|NAME")
    p.add_argument("--to", required=True, metavar="NODE", help="the new primary node")
    _force_option(p)
    _wait_options(p, "it is mounted on the new primary")
    command(commands, "released", released, "list released datasets (volumes retained)")
    p = command(commands, "adopt", adopt, "make a released dataset live again, with its data")
    p.add_argument("volume", metavar="VOLUME", help="the released dataset: id, prefix or name")
    p.add_argument("--node", metavar="NODE", help="where (default: the node with its volume)")
    _wait_options(p, "it is mounted there")
    p = command(commands, "attach", attach,
                "bind an unbound dataset to a node (first use), or add a ReadOnlyMany reader")
    p.add_argument("dataset", metavar="ID|NAME")
    p.add_argument("--node", required=True, metavar="NODE",
                   help="the node to bind it to, or (bound elsewhere) to read it read-only")
    _force_option(p)
    _wait_options(p, "it is mounted there")
    p = command(commands, "detach", detach, "stop a node reading a ReadOnlyMany dataset")
    p.add_argument("dataset", metavar="ID|NAME")
    p.add_argument("--node", required=True, metavar="NODE", help="the reader to remove")
    p = command(commands, "resize", resize, "grow a dataset online (never shrink)")
    p.add_argument("dataset", metavar="ID|NAME")
    p.add_argument("--size", type=size_arg, required=True,
                   help="the new maximum size, e.g. 20G: at least the current one")
    _wait_options(p, "its primary reports the new size")
    p = command(commands, "delete", delete, "delete a dataset and its volume")
    p.add_argument("dataset", metavar="ID|NAME")
    _wait_options(p, "no node has its volume any more")
    register_dataset_failover(commands)
