"""
``shoal dataset create --from-snapshot|--clone-of|--fs`` and ``shoal dataset resize --wait``:
the options, finding the source a person names, and the resize's wait goal.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from uuid import UUID

from control.cli.output import node_name
from control.cli.resolve import resolve_dataset, resolve_snapshot
from control.cli.shell import Context
from control.cli.wait import Pending
from control.client.interface import StateDataset
from control.model import FORMATS, DataSource, SourceKind
from control.units import format_size


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--from-snapshot``, ``--clone-of`` (one or the other) and ``--fs``."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--from-snapshot", metavar="SNAPSHOT",
                        help="restore a snapshot (id, id prefix or name); it must be ready")
    source.add_argument("--clone-of", metavar="DATASET",
                        help="clone a dataset as it is now (id, id prefix or name)")
    parser.add_argument("--fs", choices=FORMATS,
                        help="filesystem of a new volume (default ext4; raw: a block-mode "
                        "dataset, never formatted or mounted; a restore or clone keeps its "
                        "source's)")


async def chosen_source(ctx: Context) -> tuple[DataSource | None, UUID | None]:
    """``(source, where it is)`` of ``--from-snapshot`` or ``--clone-of``, or ``(None, None)``.

    Where the source is (the snapshot's node, the dataset's primary) is the
    new dataset's primary unless ``--node`` says otherwise.
    """
    args = ctx.args
    if args.from_snapshot is not None:
        snapshot = resolve_snapshot(args.from_snapshot, await ctx.client.list_snapshots())
        return DataSource(SourceKind.SNAPSHOT, snapshot.snapshot_id), snapshot.node
    if args.clone_of is not None:
        datasets = (await ctx.client.list_datasets()).datasets
        dataset = resolve_dataset(args.clone_of, datasets)
        return DataSource(SourceKind.DATASET, dataset.dataset_id), dataset.primary
    return None, None


def describe_source(source: DataSource) -> str:
    """``restored from snapshot ID`` or ``cloned from dataset ID``."""
    if source.kind is SourceKind.SNAPSHOT:
        return f"restored from snapshot {source.source_id}"
    return f"cloned from dataset {source.source_id}"


def grown_to(dataset_id: UUID, node: UUID, size: int, names: Mapping[UUID, str]) -> Pending:
    """The goal of ``resize --wait``: ``node`` reports the dataset at ``size`` bytes or more."""
    where = node_name(node, names)

    def pending(states: Sequence[StateDataset]) -> str | None:
        state = next((s for s in states if s.dataset_id == dataset_id), None)
        if state is not None and state.maximum_size is not None and state.maximum_size >= size:
            return None
        now = "no node reports it" if state is None else (
            f"it reports {format_size(state.maximum_size)}")
        return f"dataset {dataset_id} to grow to {format_size(size)} on {where} ({now})"

    return pending
