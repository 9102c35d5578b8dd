"""
``shoal agent run``: run this node's agent (see :mod:`agent.service`).

The ``shoal`` program (:mod:`control.cli.program`) imports this module only
for ``shoal agent ...``, and this module imports :mod:`agent.service` only when
the agent runs, so ``shoal agent --help`` stays fast. The TLS options are the CLI's global
ones (``--ca-cert``, ``--cert``, ``--key``, or ``SHOAL_CA_CERT`` and friends),
and the client is built by the CLI's own :func:`control.cli.shell.http_client`.
"""

from __future__ import annotations

import argparse
import socket
from typing import TYPE_CHECKING, Any
from uuid import UUID

from attrs import evolve

from agent.backends.interface import BackendError
from agent.backends.registry import backend_names
from agent.defaults import (
    DEFAULT_CLUSTER_ID,
    DEFAULT_MOUNT_ROOT,
    OVERCOMMIT_RANGE,
    check_overcommit,
)
from agent.identity import DEFAULT_STATE_DIR
from control.cli.options import command, group
from control.cli.shell import Context, Settings, http_client
from control.errors import InvalidRequest

if TYPE_CHECKING:
    from agent.service import AgentOptions


def _cluster_id(value: str | None) -> UUID:
    if not value:
        return DEFAULT_CLUSTER_ID
    try:
        return UUID(value)
    except ValueError:
        raise InvalidRequest(f"--cluster-id must be a UUID, not {value!r}.") from None


BACKEND_OPTIONS = (
    "ceph_conf", "ceph_client", "ceph_keyring", "ceph_pool", "rbd_run_dir", "rbd_attach",
)
"""The ``shoal agent run`` options that go to the backend's factory as they are."""


def options_from_args(args: Any, env: Any) -> AgentOptions:
    """The :class:`AgentOptions` of a parsed ``shoal agent run`` command line."""
    from agent.service import AgentOptions, kill_after_changes, parse_labels

    specs = list(args.backend or ["loopback"])
    first, _, first_pool = specs[0].partition("=")
    return AgentOptions(
        node_name=args.node_name or socket.gethostname(),
        backend=first,
        pool=first_pool or args.pool,
        more_backends=tuple(specs[1:]),
        mount_root=args.mount_root,
        state_dir=args.state_dir,
        cluster_id=_cluster_id(args.cluster_id or env.get("SHOAL_CLUSTER_ID")),
        labels=parse_labels(args.label),
        host=args.host,
        era=args.era,
        heartbeat=args.heartbeat,
        kill_after_changes=kill_after_changes(env),
        pool_overcommit=args.pool_overcommit,
        backend_options={
            name: getattr(args, name)
            for name in BACKEND_OPTIONS
            if getattr(args, name, None) is not None
        },
        self_fence=not args.no_self_fence,
        metrics_address=args.metrics_address,
    )


def run(ctx: Context) -> int:
    """Run the agent until SIGTERM or SIGINT."""
    from agent.service import run_agent
    from control.logs import configure_logging

    env = ctx.shell.env
    settings = Settings.from_args(ctx.args, env)
    options = evolve(options_from_args(ctx.args, env), node_uuid=certificate_node(settings.cert))
    if ctx.args.control:
        settings = evolve(settings, url=",".join(ctx.args.control))
    configure_logging()
    return run_agent(options, lambda reactor: http_client(settings, reactor))


def certificate_node(cert: str | None) -> UUID | None:
    """The node uuid the agent's certificate file is bound to (``None`` without TLS)."""
    if cert is None:
        return None
    from control.roles import bound_node

    try:
        with open(cert, "rb") as f:
            return bound_node(f.read())
    except (OSError, ValueError) as e:
        raise InvalidRequest(f"Cannot read the node certificate {cert}: {e}") from e


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError(text)
    return value


def _overcommit(text: str) -> float:
    try:
        value = float(text)
        check_overcommit(value)
    except (ValueError, BackendError) as e:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an overcommit ratio between {OVERCOMMIT_RANGE[0]} and "
            f"{OVERCOMMIT_RANGE[1]}"
        ) from e
    return value


def register(subparsers: Any) -> None:
    """Add ``shoal agent run``."""
    commands = group(subparsers, "agent", "the node agent")
    p = command(commands, "run", run, "converge this node toward the cluster's configuration")
    p.add_argument("--control", metavar="URL", action="append",
                   help="control service URL (else --url, SHOAL_URL, http://127.0.0.1:4523); "
                   "repeat it, or separate URLs by commas, to name several replicas")
    p.add_argument("--node-name", metavar="NAME",
                   help="this node's name (default: the host name); fixed at first start")
    p.add_argument("--label", action="append", metavar="K=V", help="a node label (repeatable)")
    p.add_argument("--backend", action="append", metavar="NAME[=POOL]",
                   help=f"storage backend: {', '.join(backend_names())} (default loopback); "
                   "repeat it to offer several (the first is the default; each further "
                   "file-pool backend names its own pool: --backend local=/var/lib/shoal/local)")
    p.add_argument("--pool", metavar="DIR", help="the loopback backend's shared volume pool")
    p.add_argument("--pool-overcommit", type=_overcommit, metavar="R",
                   help="make the loopback pool thin: sparse volumes, provisioned up to R "
                   f"times the pool's size ({OVERCOMMIT_RANGE[0]}..{OVERCOMMIT_RANGE[1]}); "
                   "default: thick, every volume fully allocated. Every agent of a pool "
                   "must use the same setting")
    ceph = p.add_argument_group("the rbd backend (Ceph RBD; see docs/backends.md)")
    ceph.add_argument("--ceph-conf", metavar="FILE",
                      help="the Ceph configuration file (default /etc/ceph/ceph.conf)")
    ceph.add_argument("--ceph-client", metavar="NAME",
                      help="the cephx client, without 'client.' (default admin)")
    ceph.add_argument("--ceph-keyring", metavar="FILE",
                      help="the client's keyring (default: as ceph.conf says)")
    ceph.add_argument("--ceph-pool", metavar="POOL", help="the pool of the volumes (default rbd)")
    ceph.add_argument("--rbd-attach", choices=("auto", "kernel", "fuse"),
                      help="attach with the kernel client (rbd map) or rbd-fuse plus a loop "
                      "device (default auto: the kernel client where the kernel has it)")
    ceph.add_argument("--rbd-run-dir", metavar="DIR",
                      help="where rbd-fuse mounts go (default /run/shoal/rbd)")
    p.add_argument("--mount-root", default=DEFAULT_MOUNT_ROOT, metavar="DIR",
                   help=f"datasets are mounted at DIR/<dataset id> (default {DEFAULT_MOUNT_ROOT})")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR, metavar="DIR",
                   help=f"where the node identity is kept (default {DEFAULT_STATE_DIR})")
    p.add_argument("--cluster-id", metavar="UUID",
                   help=f"the cluster's volumes in the backend (env SHOAL_CLUSTER_ID; "
                   f"default {DEFAULT_CLUSTER_ID})")
    p.add_argument("--host", metavar="ADDRESS",
                   help="the address to register (default: the host name)")
    p.add_argument("--era", help="override the era (default: the kernel boot id); for tests")
    p.add_argument("--heartbeat", type=_positive, default=5.0, metavar="S",
                   help="report at least every S seconds (default 5; the control service's "
                   "heartbeat, if shorter, wins)")
    p.add_argument("--metrics-address", metavar="HOST:PORT",
                   help="serve Prometheus metrics as plain HTTP at HOST:PORT/metrics, e.g. "
                   "127.0.0.1:9524 (default: not served)")
    p.add_argument("--no-self-fence", action="store_true",
                   help="never fence this node itself when its node lease runs out (default: "
                   "shut down and unmount every dataset once the control service's node_lease "
                   "passes without a successful report; docs/failover.md)")


__all__ = ["BACKEND_OPTIONS", "options_from_args", "register", "run"]
