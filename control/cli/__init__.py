"""
The ``shoal`` command line.

Command modules expose ``register(subparsers)`` (see :mod:`control.cli.options`);
:mod:`control.cli.program` builds the parser from them, including the optional
``agent.cli`` and ``plugin.cli`` modules when installed.
"""

from control.cli.program import main, run

__all__ = ["main", "run"]
