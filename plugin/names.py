"""
Volume names: which ones the plugin accepts.

Docker's rule for local volume names is ``[a-zA-Z0-9][a-zA-Z0-9_.-]+``; the
plugin applies the same rule, plus a length limit, to every name it is given.
Names never become paths (a volume is mounted at ``<mount-root>/<dataset id>``),
and the rule admits no ``/``, so no name can reach outside the mount root.
"""

from __future__ import annotations

import re

from control.errors import InvalidRequest

MAX_NAME_LENGTH = 128
"""The longest volume name accepted (well under the 256 characters metadata allows)."""

NAME_METADATA_KEY = "name"
"""The dataset metadata key holding the volume name."""

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


def is_valid_name(name: object) -> bool:
    """Whether ``name`` is a string the plugin accepts as a volume name."""
    return (
        isinstance(name, str)
        and len(name) <= MAX_NAME_LENGTH
        and _NAME.fullmatch(name) is not None
    )


def check_name(name: object) -> str:
    """Return ``name`` if it is a valid volume name, else raise :class:`InvalidRequest`."""
    if is_valid_name(name):
        assert isinstance(name, str)
        return name
    shown = repr(name)[:60]
    raise InvalidRequest(
        f"Invalid volume name {shown}: a name is 2 to {MAX_NAME_LENGTH} characters, starts "
        "with a letter or digit, and holds only letters, digits, '_', '.' and '-'."
    )
