"""
Start-up without TLS libraries when a command cannot need them.

Importing Twisted's reactor loads pyOpenSSL and cryptography (about 120 ms of
``shoal dataset list``'s start-up) because ``twisted.internet.tcp`` offers
``startTLS`` when it can. A client command talking plain HTTP, with no
certificate given, never uses them: :func:`skip_tls_imports` marks them
unavailable before anything imports them, so Twisted's TCP transport is built
without TLS support. Commands that serve (``control``, ``agent``, ``plugin``)
or handle certificates (``ca``) always keep TLS.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

TLS_MODULES = ("OpenSSL",)
"""Top-level modules that only TLS needs (their absence makes Twisted skip ``startTLS``)."""

CLIENT_GROUPS = frozenset({"dataset", "node", "lease", "events", "volume"})
"""Command groups that only talk to the control service as clients."""

_TLS_OPTIONS = ("--ca-cert", "--cert", "--key")
_TLS_ENVIRONMENT = ("SHOAL_CA_CERT", "SHOAL_CERT", "SHOAL_KEY")
_VALUE_OPTIONS = frozenset({"--url", *_TLS_OPTIONS})


def _option(argv: Sequence[str], name: str) -> str | None:
    for index, word in enumerate(argv):
        if word == name and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def _all_options(argv: Sequence[str], name: str) -> list[str]:
    """Every value of the (repeatable) option ``name``."""
    found = []
    for index, word in enumerate(argv):
        if word == name and index + 1 < len(argv):
            found.append(argv[index + 1])
        elif word.startswith(name + "="):
            found.append(word.split("=", 1)[1])
    return found


def command_group(argv: Sequence[str]) -> str | None:
    """The command group ``shoal ARGV`` runs: its first word that is no global option (pure)."""
    words = iter(argv)
    for word in words:
        if word in _VALUE_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def plain_http_client(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether ``shoal ARGV`` is a client command that will talk plain HTTP (pure)."""
    if command_group(argv) not in CLIENT_GROUPS:
        return False
    if any(_option(argv, name) is not None for name in _TLS_OPTIONS):
        return False
    if any(environ.get(name) for name in _TLS_ENVIRONMENT):
        return False
    urls = _all_options(argv, "--url") or [environ.get("SHOAL_URL") or "http://"]
    return not any("https:" in given for given in urls)


def skip_tls_imports() -> None:
    """Mark the TLS libraries unavailable, unless something already imported them."""
    for name in TLS_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
