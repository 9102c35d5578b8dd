"""
The ``shoal`` program: builds the parser from command modules and runs one command.

Each module in :data:`COMMAND_MODULES` (and each of :data:`OPTIONAL_MODULES`
that is installed, such as ``agent.cli`` for ``shoal agent run``) exposes
``register(subparsers)``. Refusals print ``error: <description>`` to stderr
and exit 1; a wrong command line exits 2; no traceback is ever shown.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from twisted.internet.defer import Deferred

from control import __version__
from control.cli.options import Parser, UsageError, add_global_options, fill_defaults
from control.cli.shell import Context, Settings, Shell, real_shell
from control.errors import ShoalError

COMMAND_MODULES = (
    "control.cli.dataset",
    "control.cli.node",
    "control.cli.lease",
    "control.cli.ca",
    "control.cli.control",
)
OPTIONAL_MODULES = ("agent.cli", "plugin.cli")
"""Modules other packages may provide to add their commands."""


def command_modules(optional: Sequence[str] = OPTIONAL_MODULES) -> list[ModuleType]:
    """The command modules to register: ours, and the optional ones that are installed."""
    modules = [importlib.import_module(name) for name in COMMAND_MODULES]
    for name in optional:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as e:
            if e.name is None or not name.startswith(e.name):
                raise
    return modules


def build_parser(modules: Sequence[ModuleType]) -> argparse.ArgumentParser:
    """The ``shoal`` argument parser with every module's commands."""
    parser = Parser(
        prog="shoal",
        description="Shoal: container volumes that move with their containers.",
    )
    parser.add_argument("--version", action="version", version=f"shoal {__version__}")
    add_global_options(parser, suppress=True)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    parser.set_defaults(handler=None, group_parser=parser)
    for module in modules:
        module.register(subparsers)
    return parser


def _print_error(shell: Shell, error: ShoalError) -> None:
    shell.err.write(f"error: {error.description}\n")
    for detail in error.errors[1:] if len(error.errors) > 1 else []:
        shell.err.write(f"  {detail}\n")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a command; ``note`` says what that means for what it was doing."""

    def __init__(self, note: str | None) -> None:
        super().__init__(note)
        self.note = note


def _run(args: argparse.Namespace, shell: Shell) -> Any:
    handler = args.handler
    if not inspect.iscoroutinefunction(handler):
        return handler(Context(args, shell, shell.clock))
    settings = Settings.from_args(args, shell.env)
    contexts: list[Context] = []

    def work(reactor: Any) -> Deferred[Any]:
        client = shell.make_client(settings, reactor)
        contexts.append(Context(args, shell, reactor, client))
        coroutine = handler(contexts[-1])
        d = Deferred.fromCoroutine(coroutine)
        close = getattr(client, "close", None)
        if close is not None:
            d.addBoth(lambda result: close().addBoth(lambda _: result))
        return d

    try:
        return shell.run(work)
    except KeyboardInterrupt:
        raise Interrupted(contexts[-1].on_interrupt if contexts else None) from None


def run(argv: Sequence[str], shell: Shell, modules: Sequence[ModuleType] | None = None) -> int:
    """Run the command line ``argv`` (without the program name); return the exit status."""
    parser = build_parser(command_modules() if modules is None else modules)
    try:
        args = fill_defaults(parser.parse_args(list(argv)))
        if args.handler is None:
            raise UsageError("choose a command", args.group_parser.format_usage())
        status = _run(args, shell)
    except UsageError as e:
        shell.err.write(f"{e.usage}error: {e}\n")
        return 2
    except ShoalError as e:
        _print_error(shell, e)
        return 1
    except Interrupted as e:
        shell.err.write(f"error: interrupted{'; ' + e.note if e.note else ''}\n")
        return 130
    except KeyboardInterrupt:
        shell.err.write("error: interrupted\n")
        return 130
    except Exception as e:  # the user gets a sentence, never a traceback
        shell.err.write(f"error: unexpected {type(e).__name__}: {e}\n")
        return 1
    return int(status or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``shoal`` entry point."""
    import sys

    return run(sys.argv[1:] if argv is None else argv, real_shell())
