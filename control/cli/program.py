"""
The ``shoal`` program: builds the parser from command modules and runs one command.

Each command group (``shoal dataset ...``, ``shoal agent ...``) lives in a
module exposing ``register(subparsers)``. :data:`COMMAND_GROUPS` names them
without importing them: the program imports only the module of the group on
the command line, and lists the others by name and help line. So ``shoal
--help`` and ``shoal dataset list`` never load the agent, the plugin, the API
or the store, and ``control`` holds no import of ``agent`` or ``plugin``: their
groups are found by module name, and skipped when not installed. Refusals
print ``error: <description>`` to stderr and exit 1; a wrong command line
exits 2; no traceback is ever shown.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from attrs import frozen

from control import __version__
from control.cli.options import (
    GLOBAL_DEFAULTS,
    Parser,
    UsageError,
    add_global_options,
    fill_defaults,
)
from control.cli.shell import Context, Settings, Shell, real_shell
from control.errors import ShoalError

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred


@frozen
class CommandGroup:
    """A ``shoal`` command group: its name, the module that registers it, its help line."""

    name: str
    module: str
    help: str
    optional: bool = False
    """Whether the module may be missing (another package provides it)."""


COMMAND_GROUPS = (
    CommandGroup("dataset", "control.cli.dataset", "create, list, move and delete datasets"),
    CommandGroup("node", "control.cli.node", "list, fence and drain the cluster's nodes"),
    CommandGroup("snapshot", "control.cli.snapshot", "create, list, show and delete snapshots"),
    CommandGroup("class", "control.cli.storage_class", "create, list, show and delete classes"),
    CommandGroup("lease", "control.cli.lease", "list, acquire and release leases on datasets"),
    CommandGroup("volume", "control.cli.volume", "backend volumes that no dataset owns"),
    CommandGroup("ca", "control.cli.ca", "the cluster certificate authority (mutual TLS)"),
    CommandGroup("events", "control.cli.events", "show what happened to datasets and nodes"),
    CommandGroup("control", "control.cli.control", "the control service"),
    CommandGroup("agent", "agent.cli", "the node agent", optional=True),
    CommandGroup("plugin", "plugin.cli", "the Docker volume plugin", optional=True),
    CommandGroup("csi", "plugin.csi.cli", "the Kubernetes CSI driver", optional=True),
)
"""Every command group, in the order ``shoal --help`` lists them."""
COMMAND_MODULES = tuple(g.module for g in COMMAND_GROUPS if not g.optional)
OPTIONAL_MODULES = tuple(g.module for g in COMMAND_GROUPS if g.optional)
"""Modules other packages may provide to add their commands."""
_VALUE_OPTIONS = frozenset(f"--{name.replace('_', '-')}" for name in GLOBAL_DEFAULTS) - {"--json"}


def import_command_module(name: str, optional: bool) -> ModuleType | None:
    """Import a command module; ``None`` when an optional one is not installed."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if not optional or e.name is None or not name.startswith(e.name):
            raise
        return None


def command_modules(optional: Sequence[str] = OPTIONAL_MODULES) -> list[ModuleType]:
    """Every command module to register: ours, and the optional ones that are installed."""
    modules = [importlib.import_module(name) for name in COMMAND_MODULES]
    for name in optional:
        module = import_command_module(name, optional=True)
        if module is not None:
            modules.append(module)
    return modules


def chosen_group(argv: Sequence[str]) -> CommandGroup | None:
    """The command group named on the command line, if any (global options may come first)."""
    takes_value = False
    for token in argv:
        if takes_value:
            takes_value = False
        elif token == "--":
            return None
        elif token.startswith("-"):
            takes_value = _takes_value(token)
        else:
            return next((g for g in COMMAND_GROUPS if g.name == token), None)
    return None


def _takes_value(option: str) -> bool:
    """Whether ``option`` is a global option whose value is the next word (abbreviations too)."""
    if "=" in option or not option.startswith("--") or len(option) < 3:
        return False
    return any(name.startswith(option) for name in _VALUE_OPTIONS)


def lazy_modules(argv: Sequence[str]) -> list[ModuleType]:
    """The modules for ``argv``: the chosen group's, and a stub naming each other group."""
    chosen = chosen_group(argv)
    modules = []
    for g in COMMAND_GROUPS:
        module = import_command_module(g.module, g.optional) if g is chosen else None
        modules.append(module if module is not None else _stub(g))
    return modules


def _stub(g: CommandGroup) -> ModuleType:
    """A module registering ``g`` by name and help only (for ``shoal --help`` and errors)."""
    module = ModuleType(g.module)

    def register(subparsers: Any) -> None:
        subparsers.add_parser(g.name, help=g.help, description=g.help)

    module.register = register  # type: ignore[attr-defined]
    return module


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
        from twisted.internet.defer import Deferred

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
    parser = build_parser(lazy_modules(argv) if modules is None else modules)
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
    import os
    import sys

    from control.cli.tls import plain_http_client, skip_tls_imports

    words = sys.argv[1:] if argv is None else argv
    if plain_http_client(words, os.environ):
        skip_tls_imports()
    return run(words, real_shell())
