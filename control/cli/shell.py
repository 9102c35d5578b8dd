"""
What a command touches outside itself, injected so tests run commands in-process.

:class:`Shell` holds the output streams, the environment, how to make a client
and how to run asynchronous work; :func:`real_shell` is the one ``shoal``
uses (the HTTP client over the reactor, run with ``twisted.internet.task.react``) and
:func:`clock_runner` runs work against a ``task.Clock`` for tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from attrs import frozen

from control.cli.options import DEFAULT_URL
from control.errors import InvalidRequest

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from control.client.interface import ShoalClient

Work = Callable[[Any], "Deferred[Any]"]
"""Asynchronous work: given the reactor (or a clock), a Deferred of its outcome."""
Runner = Callable[[Work], Any]
"""Runs work to its end and returns its outcome (raising its failure)."""


@frozen
class Settings:
    """Where the control service is and how to prove who we are to it."""

    url: str = DEFAULT_URL
    ca_cert: str | None = None
    cert: str | None = None
    key: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
        """Options win over the environment, which wins over the defaults."""
        return cls(
            url=joined_urls(args.url) or env.get("SHOAL_URL") or DEFAULT_URL,
            ca_cert=args.ca_cert or env.get("SHOAL_CA_CERT"),
            cert=args.cert or env.get("SHOAL_CERT"),
            key=args.key or env.get("SHOAL_KEY"),
        )


def joined_urls(given: str | list[str] | None) -> str | None:
    """``--url`` as given (once, repeated, or not at all) as one comma-separated string."""
    if given is None or isinstance(given, str):
        return given
    return ",".join(given) or None


ClientFactory = Callable[[Settings, Any], "ShoalClient"]


def http_client(settings: Settings, reactor: Any) -> ShoalClient:
    """An HTTP client for ``settings``: mutual TLS when the three TLS files are given."""
    from control.client.http import HTTPClient

    files = (settings.ca_cert, settings.cert, settings.key)
    if any(files) and not all(files):
        raise InvalidRequest("Mutual TLS needs all three of --ca-cert, --cert and --key.")
    if "https:" in settings.url and not all(files):
        raise InvalidRequest(
            f"{settings.url} is HTTPS: give --ca-cert, --cert and --key "
            "(or SHOAL_CA_CERT, SHOAL_CERT, SHOAL_KEY); see `shoal ca issue user NAME`."
        )
    tls = None
    if settings.ca_cert and settings.cert and settings.key:
        from control.ca import client_tls_policy

        tls = client_tls_policy(settings.ca_cert, settings.cert, settings.key)
    return HTTPClient(settings.url, tls=tls, reactor=reactor)


def react_runner(work: Work) -> Any:
    """Run ``work`` under the global reactor until it finishes; return its outcome."""
    from twisted.internet.task import react

    outcome: list[Any] = []

    def main(reactor: Any) -> Deferred[None]:
        return work(reactor).addBoth(outcome.append)

    with contextlib.suppress(SystemExit):
        react(main)
    return outcome_of(outcome)


def outcome_of(outcome: list[Any]) -> Any:
    """The work's result, raising its failure; ``KeyboardInterrupt`` if it never finished.

    The reactor stops before the work finishes only when it is told to (Ctrl-C, SIGTERM).
    """
    from twisted.python.failure import Failure

    if not outcome:
        raise KeyboardInterrupt
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]


def clock_runner(clock: Any, settle: Callable[[], None] = lambda: None, step: float = 1.0,
                 limit: int = 100_000) -> Runner:
    """A runner for tests: advances ``clock`` by ``step`` until the work is done."""

    def run(work: Work) -> Any:
        outcome: list[Any] = []
        work(clock).addBoth(outcome.append)
        settle()
        for _ in range(limit):
            if outcome:
                break
            clock.advance(step)
            settle()
        if not outcome:
            raise AssertionError("the command never finished")
        return outcome_of(outcome)

    return run


@frozen
class Shell:
    """The outside world of a command."""

    out: TextIO
    err: TextIO
    env: Mapping[str, str]
    make_client: ClientFactory
    run: Runner
    clock: Any

    def now(self) -> datetime:
        """The current time from the injected clock, as an aware datetime."""
        return datetime.fromtimestamp(self.clock.seconds(), UTC)


class _GlobalReactor:
    """The global reactor, imported on first use: ``shoal --help`` never loads it."""

    def __getattr__(self, name: str) -> Any:
        from twisted.internet import reactor

        return getattr(reactor, name)


def real_shell() -> Shell:
    """The shell of the ``shoal`` program: real streams, environment and reactor."""
    import os

    return Shell(sys.stdout, sys.stderr, os.environ, http_client, react_runner, _GlobalReactor())


class Context:
    """One command's arguments, output, clock and (for async commands) client."""

    def __init__(self, args: argparse.Namespace, shell: Shell, clock: Any,
                 client: ShoalClient | None = None) -> None:
        self.args = args
        self.shell = shell
        self.clock = clock
        self._client = client
        self.on_interrupt: str | None = None
        """What to tell the user if interrupted now (e.g. that the operation goes on)."""

    @property
    def client(self) -> ShoalClient:
        """The API client (only asynchronous commands have one)."""
        assert self._client is not None, "synchronous commands have no client"
        return self._client

    @property
    def json(self) -> bool:
        """Whether to print JSON instead of tables."""
        return bool(self.args.json)

    def print(self, text: str = "") -> None:
        """Write a line to standard output."""
        self.shell.out.write(text + "\n")
        self.shell.out.flush()

    def print_json(self, value: Any) -> None:
        """Write ``value`` as indented JSON to standard output."""
        self.print(json.dumps(value, indent=2, sort_keys=True))

    def progress(self, text: str) -> None:
        """Write a progress line (to stderr under ``--json``, keeping stdout parseable)."""
        stream = self.shell.err if self.json else self.shell.out
        stream.write(text + "\n")
        stream.flush()
