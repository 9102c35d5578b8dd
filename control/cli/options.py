"""
Building blocks every ``shoal`` command module uses to register itself.

A command module exposes ``register(subparsers)`` and calls :func:`group` and
:func:`command` to add its parsers. A handler is either ``def handler(ctx) ->
int | None`` (runs without the reactor: ``ca``, ``control serve``) or ``async
def handler(ctx) -> int | None`` (gets a client and runs under the reactor).
The global options (``--json``, ``--url``, ``--ca-cert``, ``--cert``,
``--key``) are accepted before or after the command name.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any, NoReturn

DEFAULT_PORT = 4523
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
GLOBAL_DEFAULTS: dict[str, Any] = {
    "json": False,
    "url": None,
    "ca_cert": None,
    "cert": None,
    "key": None,
}
"""The global options' values when given neither before nor after the command."""

Handler = Callable[[Any], Any]


class UsageError(Exception):
    """The command line is wrong; the message says how (exit status 2)."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class Parser(argparse.ArgumentParser):
    """An argument parser that raises :class:`UsageError` instead of exiting.

    A word starting with ``-`` and a digit (``--size -5G``) is read as a value,
    not as an unknown option, so its own check can say what is wrong with it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def error(self, message: str) -> NoReturn:
        """Refuse the command line."""
        raise UsageError(message, self.format_usage())


def add_global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Add the options every command accepts (``suppress``: leave unset when absent)."""
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("global options")
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="print machine-readable JSON",
    )
    group.add_argument(
        "--url",
        default=default,
        action="append",
        help=f"control service URL (env SHOAL_URL; {DEFAULT_URL}); repeat it, or separate "
        "URLs by commas, to name several replicas of the cluster",
    )
    group.add_argument(
        "--ca-cert", default=default, help="cluster CA certificate (env SHOAL_CA_CERT)"
    )
    group.add_argument("--cert", default=default, help="client certificate (env SHOAL_CERT)")
    group.add_argument("--key", default=default, help="client key (env SHOAL_KEY)")


def group(subparsers: Any, name: str, help: str) -> Any:
    """Add a command group such as ``dataset``; returns its subparsers."""
    parser = subparsers.add_parser(name, help=help, description=help)
    parser.set_defaults(handler=None, group_parser=parser)
    return parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)


def command(subparsers: Any, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
    """Add a command running ``handler``; returns its parser for its own arguments."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=help)
    add_global_options(parser, suppress=True)
    parser.set_defaults(handler=handler, group_parser=None)
    return parser


def fill_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Give every global option its default if it was given nowhere."""
    for name, value in GLOBAL_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    return args
