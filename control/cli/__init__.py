"""
The ``shoal`` command line.

Command modules expose ``register(subparsers)`` (see :mod:`control.cli.options`);
:mod:`control.cli.program` builds the parser, importing only the module of the
command group on the command line (see :data:`control.cli.program.COMMAND_GROUPS`).
"""
