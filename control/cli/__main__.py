"""``python -m control.cli``: the ``shoal`` program."""

from control.cli.program import main

raise SystemExit(main())
