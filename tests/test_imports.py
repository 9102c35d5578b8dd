"""
The import rules: who may load what, checked in a fresh interpreter per module.

- The agent and the plugin never load the control service's API or store (nor
  SQLAlchemy, Alembic; the agent not Klein either).
- Pure code (policy, classification, rules, model) loads no I/O code: no
  subprocess wrapper, no real filesystem, no reactor.
- ``shoal --help`` and ``shoal dataset ...`` load neither the agent, the plugin,
  the API, the store nor the reactor until a command needs it.
- No module of ``control`` imports ``agent`` or ``plugin``; the CLI finds their
  command groups by module name (:data:`control.cli.program.COMMAND_GROUPS`).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SERVICE = ("control.api", "control.store", "sqlalchemy", "alembic")
"""The control service's own machinery."""
IO = (
    "agent.backends.loopdev",
    "agent.backends.loopback",
    "agent.backends.loopfence",
    "agent.fs.real",
    "agent.fs.shutdown",
    "agent.observe",
    "agent.executor",
    "twisted.internet.reactor",
)
"""Modules that do I/O (or start the reactor)."""
ALL_OF_AGENT_AND_PLUGIN = ("agent", "plugin")
CEPH = ("agent.backends.rbd", "rados", "rbd")
"""The rbd backend and Ceph's bindings: loaded only when ``--backend rbd`` is chosen."""

RULES = [  # agent.testing is exempt: it assembles a whole cluster, control service included
    ("agent.loop", (*SERVICE, "klein")),
    ("agent.service", (*SERVICE, "klein", *CEPH)),
    ("agent.backends.registry", CEPH),
    ("plugin.serve", SERVICE),
    ("plugin.volumes", (*SERVICE, "klein")),
    ("plugin.testing", SERVICE),
    ("agent.policy", IO),
    ("agent.discovery", IO),
    ("agent.changes", IO),
    ("agent.fencing", IO),
    ("agent.effects", IO),
    ("agent.passlog", tuple(m for m in IO if m != "agent.executor")),  # uses its describe()
    ("plugin.rules", (*IO, "klein")),
    ("control.rules", (*IO, "control.api", "control.store", "sqlalchemy")),
    ("control.model", (*IO, "control.api", "control.store", "sqlalchemy")),
    ("control.snapshots", (*IO, "control.api", "control.store", "sqlalchemy")),
    ("control.snapshot_events", (*IO, "control.api", "control.store", "sqlalchemy")),
    ("control.wire", (*IO, "control.api", "control.store", "sqlalchemy")),
    ("control.election", (*IO, "control.api", "control.store", "sqlalchemy", "twisted")),
    ("control.client.endpoints", (*IO, "control.api", "control.store", "sqlalchemy")),
    ("control.failover", (*IO, "control.api", "control.store", "sqlalchemy")),
    ("control.failover_rules", (*IO, "control.api", "control.store", "sqlalchemy")),
    ("control.liveness", (*IO, "control.api", "control.store", "sqlalchemy")),
    ("control.topology", (*IO, "control.api", "control.store", "sqlalchemy")),
    ("control.placement", (*IO, "control.api", "control.store", "sqlalchemy")),
    ("control.classes", (*IO, "control.api", "control.store", "sqlalchemy")),
    ("control.binding", (*IO, "control.api", "control.store", "sqlalchemy")),
    ("control.readers", (*IO, "control.api", "control.store", "sqlalchemy")),
    ("control.reach", (*IO, "control.api", "control.store", "sqlalchemy", "twisted")),
    ("control.derived", (*IO, "control.api", "control.store", "sqlalchemy", "twisted")),
    ("control.cluster_metrics", (*IO, "control.api", "control.store", "sqlalchemy")),
    ("control.dataset_tally", (*IO, "control.api", "control.store", "sqlalchemy")),
    ("control.cli", (*SERVICE, "klein", *ALL_OF_AGENT_AND_PLUGIN)),
    ("agent.cli", (*SERVICE, "klein", "agent.service", "agent.loop", "agent.backends.loopback")),
    ("plugin.cli", (*SERVICE, "klein", "plugin.serve", "plugin.volumes", "agent.service")),
    ("plugin.csi.serve", (*SERVICE, "klein", "plugin.api", "plugin.volumes")),
    ("plugin.csi.rules", (*IO, "klein", "plugin.csi.hostfs")),
    ("plugin.csi.cli", (*SERVICE, "klein", "grpc", "plugin.csi.serve", "agent.service")),
    ("control.client.http", (*SERVICE, "klein", *ALL_OF_AGENT_AND_PLUGIN)),
]


def loaded_by(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def offending(loaded: set[str], forbidden: tuple[str, ...]) -> list[str]:
    """The loaded modules that are, or are inside, a forbidden one."""
    return sorted(
        name for name in loaded for bad in forbidden if name == bad or name.startswith(bad + ".")
    )


@pytest.mark.parametrize(("module", "forbidden"), RULES, ids=[m for m, _ in RULES])
def test_import_loads_nothing_forbidden(module: str, forbidden: tuple[str, ...]) -> None:
    """Importing the module loads none of the modules it must not depend on."""
    assert offending(loaded_by(f"import {module}"), forbidden) == []


@pytest.mark.parametrize("argv", [["--help"], ["dataset", "--help"], ["node", "--help"]])
def test_cli_help_is_light(argv: list[str]) -> None:
    """``shoal --help`` and a group's help load no agent, plugin, API, store or reactor."""
    code = (
        "import contextlib, io\n"
        "from control.cli.program import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    main({argv!r})\n"
    )
    forbidden = (*SERVICE, "klein", "treq", "twisted.internet.reactor", *ALL_OF_AGENT_AND_PLUGIN)
    assert offending(loaded_by(code), forbidden) == []


EXEMPT = {
    "control/localcluster.py": "the `make run` development tool starts and cleans local agents",
}


def _imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_control_never_imports_agent_or_plugin() -> None:
    """No module under ``control/`` (top level or inside a function) imports agent or plugin."""
    found = {}
    for path in sorted((ROOT / "control").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative in EXEMPT:
            continue
        bad = sorted(n for n in _imported_names(path) if n.split(".")[0] in ("agent", "plugin"))
        if bad:
            found[relative] = bad
    assert found == {}
