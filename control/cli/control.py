"""``shoal control serve``: run the control service (see :mod:`control.service`)."""

from __future__ import annotations

import argparse
from typing import Any

from control.cli.dataset import seconds_arg
from control.cli.options import DEFAULT_PORT, command, group
from control.cli.shell import Context


def warn_about_ca_key(ctx: Context, tls_dir: str | None) -> None:
    """Warn on stderr when the service could read the cluster CA's private key."""
    if tls_dir is None:
        return
    from control.ca import readable_ca_key

    key = readable_ca_key(tls_dir)
    if key is not None:
        ctx.shell.err.write(
            f"warning: the cluster CA's private key {key} is readable by the control service; "
            "whoever takes over the service could issue certificates. The service needs only "
            "cluster.crt, control-service.crt and control-service.key: keep cluster.key "
            "offline (README, 'Keeping the CA key offline').\n"
        )
        ctx.shell.err.flush()


def positive_int(text: str) -> int:
    """A whole number of at least 1 (an argparse type)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def serve(ctx: Context) -> None:
    """Run the control service until it is stopped."""
    from control.service import run_control_service

    args = ctx.args
    warn_about_ca_key(ctx, args.tls_dir)
    run_control_service(
        port=args.port,
        host=args.host,
        database=args.database,
        tls_dir=args.tls_dir,
        node_timeout=args.node_timeout,
        allow_insecure=args.allow_insecure,
        events_per_dataset=args.events_per_dataset,
        events_max_age=args.events_max_age,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        idle_timeout=args.idle_timeout,
        max_connections=args.max_connections,
        max_connections_per_address=args.max_connections_per_address,
        database_threads=args.database_threads,
        failover_grace=args.failover_grace,
        metrics_address=args.metrics_address,
        watch_floor=args.watch_floor,
    )


async def replicas(ctx: Context) -> int:
    """Ask every control URL given whether it answers and whether it leads.

    Exits 1 when a replica does not answer, or when the answering ones do
    not have exactly one leader (during a handover, for a few seconds)."""
    from attrs import evolve

    from control.cli.output import table
    from control.cli.shell import Settings
    from control.client.endpoints import parse_urls
    from control.errors import ShoalError

    settings = Settings.from_args(ctx.args, ctx.shell.env)
    found: list[dict[str, Any]] = []
    for url in parse_urls(settings.url):
        client = ctx.shell.make_client(evolve(settings, url=url), ctx.clock)
        try:
            version = await client.version()
        except ShoalError as e:
            found.append({"url": url, "answers": False, "leader": None, "shoal": None,
                          "error": str(e)})
            continue
        found.append({"url": url, "answers": True, "leader": version.leader,
                      "shoal": version.shoal, "error": None})
    if ctx.json:
        ctx.print_json(found)
    else:
        rows = [(str(r["url"]), "yes" if r["answers"] else "no",
                 {True: "leader", False: "-", None: "?"}[r["leader"]],
                 str(r["shoal"] or r["error"] or "")) for r in found]
        ctx.print(table(("URL", "ANSWERS", "ROLE", "VERSION"), rows))
    leaders = [r for r in found if r["leader"]]
    return 0 if all(r["answers"] for r in found) and len(leaders) == 1 else 1


def grace_arg(text: str) -> float:
    """``--failover-grace``: seconds, at least the minimum grace."""
    from control.liveness import MINIMUM_GRACE

    seconds = seconds_arg(text)
    if seconds < MINIMUM_GRACE:
        raise argparse.ArgumentTypeError(
            f"{text!r} is too short: the grace must be at least {MINIMUM_GRACE:g} s so that "
            "agents can fence themselves first"
        )
    return seconds


def count_arg(text: str) -> int:
    """A positive whole number (of connections)."""
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def register(subparsers: Any) -> None:
    """Add ``shoal control ...``."""
    commands = group(subparsers, "control", "the control service")
    command(commands, "replicas", replicas,
            "show which of the control URLs (--url, repeated or comma-separated) answer, "
            "and which one leads")
    p = command(commands, "serve", serve, "run the control service")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--database", metavar="URL",
                   help="SQLAlchemy URL (default sqlite:////var/lib/shoal/control.db)")
    p.add_argument("--tls-dir", metavar="DIR",
                   help="serve HTTPS with mutual TLS using the certificates in DIR")
    p.add_argument("--failover-grace", type=grace_arg, default=10.0, metavar="S",
                   help="seconds a node may go without reporting before it is fenced and its "
                   "datasets fail over (default 10; agents fence themselves after half of it; "
                   "see docs/failover.md)")
    p.add_argument("--node-timeout", type=seconds_arg, default=30.0, metavar="S",
                   help="a node not heard from for S seconds is not live (default 30)")
    p.add_argument("--allow-insecure", action="store_true",
                   help="allow plain HTTP on a non-loopback address")
    p.add_argument("--events-per-dataset", type=positive_int, default=100, metavar="N",
                   help="keep the newest N events of each dataset (default 100)")
    p.add_argument("--events-max-age", type=seconds_arg, default=7 * 24 * 3600.0, metavar="S",
                   help="forget events older than S seconds (default 604800, a week)")
    p.add_argument("--database-threads", type=count_arg, default=8, metavar="N",
                   help="threads running database calls (default 8)")
    p.add_argument("--header-timeout", type=seconds_arg, default=10.0, metavar="S",
                   help="a request's line and headers must arrive within S seconds (default 10)")
    p.add_argument("--body-timeout", type=seconds_arg, default=30.0, metavar="S",
                   help="a request's body must arrive within S seconds of its headers "
                   "(default 30)")
    p.add_argument("--idle-timeout", type=seconds_arg, default=60.0, metavar="S",
                   help="close a kept-alive connection idle for S seconds (default 60)")
    p.add_argument("--max-connections", type=count_arg, metavar="N",
                   help="connections open at once, in all (default: the file-descriptor "
                   "limit less 128)")
    p.add_argument("--metrics-address", metavar="HOST:PORT",
                   help="also serve /metrics as plain HTTP here, e.g. 127.0.0.1:9523 (loopback "
                   "unless --allow-insecure); /metrics is always served on --port too")
    p.add_argument("--watch-floor", type=seconds_arg, metavar="S",
                   help="while anyone watches, read the counters every S seconds even without "
                   "news (default 1 on SQLite, 5 on PostgreSQL, where replicas hear each other's "
                   "writes by LISTEN/NOTIFY)")
    p.add_argument("--max-connections-per-address", type=count_arg, default=128, metavar="N",
                   help="connections open at once from one client address (default 128)")
