"""``shoal plugin serve``: run the Docker volume plugin (see :mod:`plugin.serve`)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from agent.identity import DEFAULT_STATE_DIR as AGENT_STATE_DIR
from control.cli.dataset import seconds_arg
from control.cli.options import command, group
from control.cli.shell import Context, Settings
from control.errors import InvalidRequest, ShoalError
from control.model import check_maximum_size
from control.units import parse_size
from plugin.defaults import (
    DEFAULT_MOUNT_TIMEOUT,
    DEFAULT_SIZE,
    DEFAULT_SOCKET,
    DEFAULT_STATE_DIR,
)

if TYPE_CHECKING:
    from plugin.serve import PluginOptions


def default_size_arg(text: str) -> int:
    """``--default-size``: a dataset size such as ``1G`` (binary units, at least 64M)."""
    try:
        size = parse_size(text)
        check_maximum_size(size, "--default-size")
    except ShoalError as e:
        raise argparse.ArgumentTypeError(e.description) from None
    return size


def options_from_args(args: argparse.Namespace) -> PluginOptions:
    """The plugin's options from its command line."""
    from plugin.serve import PluginOptions

    return PluginOptions(
        socket=args.socket,
        agent_state_dir=args.agent_state_dir,
        state_dir=args.state_dir,
        default_size=args.default_size,
        mount_timeout=args.mount_timeout,
        check_mount_table=not args.test_directory_mounts,
        mount_root=os.path.realpath(args.mount_root) if args.mount_root else None,
        metrics_address=args.metrics_address,
        socket_group=args.socket_group,
    )


def check_plugin_certificate(cert: str | None) -> None:
    """Refuse a node certificate: the plugin creates and moves datasets, which needs an
    operator's (docs/operations.md, "Roles")."""
    if cert is None:
        return
    from control.roles import bound_node

    try:
        with open(cert, "rb") as f:
            node = bound_node(f.read())
    except (OSError, ValueError) as e:
        raise InvalidRequest(f"Cannot read the plugin's certificate {cert}: {e}") from e
    if node is not None:
        raise InvalidRequest(
            f"{cert} is the certificate of node {node}, which may not create or move datasets: "
            "give the plugin a user certificate of its own, `shoal ca issue user plugin-NAME "
            "--role operator`."
        )


def serve(ctx: Context) -> None:
    """Serve the plugin until stopped."""
    from twisted.internet import reactor

    from control.logs import configure_logging
    from plugin.serve import run_plugin

    settings = Settings.from_args(ctx.args, ctx.shell.env)
    check_plugin_certificate(settings.cert)
    configure_logging()
    client = ctx.shell.make_client(settings, reactor)
    run_plugin(reactor, client, options_from_args(ctx.args))


def register(subparsers: Any) -> None:
    """Add ``shoal plugin ...``."""
    commands = group(subparsers, "plugin", "the Docker volume plugin")
    p = command(commands, "serve", serve, "serve the Docker volume plugin on a Unix socket")
    p.add_argument("--socket", default=DEFAULT_SOCKET,
                   help=f"the plugin's Unix socket (default {DEFAULT_SOCKET}); mode 0600: "
                   "only its owner (root, as Docker runs) may use it")
    p.add_argument("--socket-group", metavar="GROUP",
                   help="also let this group (name or number) use the socket (mode 0660); "
                   "anyone who can use it can have any volume mounted on this node")
    p.add_argument("--control", dest="url", metavar="URL", default=argparse.SUPPRESS,
                   action="append", help="control service URL (same as --url; repeatable)")
    p.add_argument("--agent-state-dir", default=AGENT_STATE_DIR, metavar="DIR",
                   help="the local agent's --state-dir, holding this node's identity "
                        f"(default {AGENT_STATE_DIR})")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR, metavar="DIR",
                   help=f"where the plugin keeps its mount counts (default {DEFAULT_STATE_DIR})")
    p.add_argument("--default-size", type=default_size_arg, default=DEFAULT_SIZE, metavar="SIZE",
                   help="size of volumes created without a size option (default 1G)")
    p.add_argument("--mount-timeout", type=seconds_arg, default=DEFAULT_MOUNT_TIMEOUT,
                   metavar="S", help="seconds a Mount waits for the volume to arrive "
                                     f"(default {DEFAULT_MOUNT_TIMEOUT:g}; Docker gives up at 120)")
    p.add_argument("--mount-root", metavar="DIR",
                   help="where this node's agent mounts datasets (default: what the agent "
                        "recorded in --agent-state-dir); only paths below it are handed out")
    p.add_argument("--metrics-address", metavar="HOST:PORT",
                   help="serve Prometheus metrics as plain HTTP at HOST:PORT/metrics, e.g. "
                        "127.0.0.1:9525 (default: not served)")
    p.add_argument("--test-directory-mounts", action="store_true",
                   help="FOR TESTS ONLY: accept a plain directory at <mount root>/<dataset id> "
                        "instead of checking the kernel's mount table for a block device")
