"""
Ceph's Python bindings (``rados``, ``rbd``), which PyPI does not have.

Debian's ``python3-rados`` and ``python3-rbd`` install two extension modules
for the system's CPython 3.11 into ``/usr/lib/python3/dist-packages``. Shoal's
venv is made from a CPython 3.11 too but does not see that directory, and
adding the whole directory to ``sys.path`` would mix Debian's copies of other
libraries into the venv. :func:`load` therefore imports the two modules by
file, and only them, when a plain ``import`` does not find them. Only the rbd
backend calls it, so agents on nodes without Ceph never load either.
"""

from __future__ import annotations

import glob
import importlib.util
import sys
from types import ModuleType
from typing import Any

from agent.backends.interface import BackendError

SYSTEM_DIRS = ("/usr/lib/python3/dist-packages", "/usr/lib/python3.11/dist-packages")
"""Where Debian and Ubuntu install the bindings."""
HINT = (
    "Install Ceph's Python bindings (Debian: apt-get install python3-rados python3-rbd) "
    "for the CPython version of Shoal's venv."
)


def _from_file(name: str) -> ModuleType:
    tag = sys.implementation.cache_tag  # e.g. cpython-311
    for directory in SYSTEM_DIRS:
        for path in sorted(glob.glob(f"{directory}/{name}.{tag}-*.so")):
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except ImportError:
                del sys.modules[name]
                raise
            return module
    raise BackendError(f"Python module {name!r} not found. {HINT}")


MARKS = {"rados": "Rados", "rbd": "RBD"}
"""A name each real binding defines (a script called ``rbd.py`` on the path is not one)."""


def _module(name: str) -> ModuleType:
    try:
        module = importlib.import_module(name)
    except ImportError:
        return _from_file(name)
    return module if hasattr(module, MARKS[name]) else _from_file(name)


def load() -> tuple[Any, Any]:
    """The ``rados`` and ``rbd`` modules; raises :class:`BackendError` saying what to install."""
    try:
        return _module("rados"), _module("rbd")
    except ImportError as e:
        raise BackendError(f"Ceph's Python bindings do not load ({e}). {HINT}") from e


__all__ = ["load"]
