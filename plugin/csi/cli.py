"""``shoal csi serve``: run the Kubernetes CSI driver (see :mod:`plugin.csi.serve`, docs/csi.md)."""

from __future__ import annotations

import argparse
import os
from typing import Any
from uuid import UUID

from agent.identity import DEFAULT_STATE_DIR as AGENT_STATE_DIR
from control.cli.dataset import seconds_arg
from control.cli.options import command, group
from control.cli.shell import Context, Settings
from plugin.cli import default_size_arg

DEFAULT_ENDPOINT = "unix:///run/csi/shoal.sock"
MODES = ("controller", "node", "all")


def node_id_arg(text: str) -> UUID:
    """``--node-id``: the Shoal node uuid this node's agent registered."""
    try:
        return UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a node uuid (`shoal node list` shows them)"
        ) from None


def count_arg(text: str) -> int:
    """A count of zero or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of zero or more")
    return value


def serve(ctx: Context) -> None:
    """Serve the driver until stopped."""
    from twisted.internet import reactor

    from control.logs import configure_logging
    from plugin.csi.serve import CsiOptions, run_csi

    args = ctx.args
    configure_logging()
    client = ctx.shell.make_client(Settings.from_args(args, ctx.shell.env), reactor)
    options = CsiOptions(
        endpoint=args.endpoint,
        mode=args.mode,
        node_id=args.node_id,
        agent_state_dir=args.agent_state_dir,
        mount_root=os.path.realpath(args.mount_root) if args.mount_root else None,
        default_size=args.default_size,
        stage_timeout=args.stage_timeout,
        snapshot_wait=args.snapshot_wait,
        max_volumes=args.max_volumes,
        workers=args.workers,
    )
    run_csi(reactor, client, options)


def register(subparsers: Any) -> None:
    """Add ``shoal csi ...``."""
    commands = group(subparsers, "csi", "the Kubernetes CSI driver")
    p = command(commands, "serve", serve, "serve the CSI Identity, Controller and Node services")
    p.add_argument("--endpoint", default=os.environ.get("CSI_ENDPOINT", DEFAULT_ENDPOINT),
                   help="the gRPC Unix socket, unix:///path (default: $CSI_ENDPOINT, else "
                        f"{DEFAULT_ENDPOINT})")
    p.add_argument("--mode", choices=MODES, default="all",
                   help="controller (one per cluster), node (one per node) or all (default)")
    p.add_argument("--control", dest="url", metavar="URL", default=argparse.SUPPRESS,
                   action="append", help="control service URL (same as --url; repeatable, "
                   "or comma-separated, to name several control replicas)")
    p.add_argument("--node-id", type=node_id_arg, metavar="UUID",
                   help="node mode: this node's Shoal uuid (default: read from "
                        "--agent-state-dir, as the Docker plugin does)")
    p.add_argument("--agent-state-dir", default=AGENT_STATE_DIR, metavar="DIR",
                   help=f"the local agent's --state-dir (default {AGENT_STATE_DIR})")
    p.add_argument("--mount-root", metavar="DIR",
                   help="where this node's agent mounts datasets (default: what the agent "
                        "recorded in --agent-state-dir)")
    p.add_argument("--default-size", type=default_size_arg, default=1024**3, metavar="SIZE",
                   help="size of a volume whose request names none (default 1G)")
    p.add_argument("--stage-timeout", type=seconds_arg, default=100.0, metavar="S",
                   help="seconds NodeStageVolume and NodeExpandVolume wait for the agent "
                        "(default 100)")
    p.add_argument("--snapshot-wait", type=seconds_arg, default=30.0, metavar="S",
                   help="seconds CreateSnapshot waits for ready_to_use before answering "
                        "not ready (default 30)")
    p.add_argument("--max-volumes", type=count_arg, default=0, metavar="N",
                   help="volumes one node may have published at once: NodeGetInfo's "
                        "max_volumes_per_node, enforced by ControllerPublishVolume "
                        "(default 0: no limit)")
    p.add_argument("--workers", type=count_arg, default=16, metavar="N",
                   help="gRPC threads (concurrent RPCs; default 16)")
