"""``shoal dataset failover DATASET --on|--off|--default [--grace S]`` (docs/failover.md)."""

from __future__ import annotations

import argparse
from typing import Any

from control.cli.options import UsageError, command
from control.cli.resolve import resolve_dataset
from control.cli.shell import Context
from control.client.interface import DatasetFailover
from control.wire import JSON

_SETTINGS = {"on": True, "off": False, "default": None}


def failover_json(options: DatasetFailover) -> JSON:
    """A dataset's failover options as JSON, like ``PUT /v1/shoal/datasets/<id>/failover``."""
    return {
        "dataset_id": str(options.dataset_id),
        "primary": str(options.primary),
        "epoch": options.epoch,
        "enabled": options.enabled,
        "grace": options.grace,
        "effective_grace": options.effective_grace,
    }


def failover_text(options: DatasetFailover) -> str:
    """One line saying what the options mean."""
    enabled = {
        True: "on",
        False: "off",
        None: "default (on when its node's backend is shared)",
    }[options.enabled]
    return (
        f"dataset {options.dataset_id}: failover {enabled}; it fails over after "
        f"{options.effective_grace:g} s of silence of its node"
    )


def failover_summary(options: DatasetFailover) -> str:
    """The ``failover:`` line of ``shoal dataset show``: the option, grace and epoch."""
    enabled = {True: "on", False: "off", None: "default"}[options.enabled]
    return f"{enabled}, after {options.effective_grace:g}s silent (epoch {options.epoch})"


async def set_failover(ctx: Context) -> None:
    """Show a dataset's failover options, or turn its failover on, off or back to the
    default, with a longer grace."""
    if ctx.args.setting is None and ctx.args.grace is not None:
        raise UsageError("--grace goes with --on, --off or --default (they set both)", "")
    listing = await ctx.client.list_datasets()
    dataset = resolve_dataset(ctx.args.dataset, listing.datasets)
    if ctx.args.setting is None:
        options = await ctx.client.get_failover(dataset.dataset_id)
    else:
        options = await ctx.client.set_failover(
            dataset.dataset_id, _SETTINGS[ctx.args.setting], ctx.args.grace
        )
    if ctx.json:
        ctx.print_json(failover_json(options))
    else:
        ctx.print(failover_text(options))


def _grace(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return seconds


def register_dataset_failover(commands: Any) -> None:
    """Add ``shoal dataset failover`` to the ``dataset`` group's ``commands``."""
    p = command(commands, "failover", set_failover,
                "show a dataset's automatic failover, or turn it on, off or back to the default")
    p.add_argument("dataset", metavar="ID|NAME")
    setting = p.add_mutually_exclusive_group()
    for name, meaning in (
        ("on", "fail over when its node is fenced (needs a shared backend)"),
        ("off", "stay on a fenced node until moved by hand"),
        ("default", "on exactly when its node's backend is shared"),
    ):
        setting.add_argument(f"--{name}", dest="setting", action="store_const", const=name,
                             help=meaning)
    p.add_argument("--grace", type=_grace, metavar="S",
                   help="seconds of silence before it fails over; only lengthens the "
                   "cluster's grace (default: the cluster's)")
