"""
The garbage collector's settings for the control service (issue 16).

The configuration and the actual state are persistent maps (pyrsistent). Every
write makes a new version of a map of up to 100,000 entries, and the collector
traverses a new version in full (its C vector visits every entry) at each young
collection it lives through: at 100,000 datasets each young collection with a
few such versions alive took 20-180 ms, so a create cost 10-20 ms of CPU
instead of ~3 ms at 1,000 (py-spy --native: ``gc_collect_main`` held the GIL for
60% of the samples). Young collections are made rarer (:data:`YOUNG` allocations
apart instead of 700), so that most versions are gone before one runs, and what
the service loaded at start is frozen (:func:`freeze`) once it is warm, so that a
full collection no longer walks millions of long-lived objects (0.5-1.7 s each).

Neither changes what the program does: objects are still freed when their last
reference goes; only cycles are found later (and none among the frozen values,
which are immutable).
"""

from __future__ import annotations

import gc

YOUNG = 50_000
"""Allocations between young collections (CPython's default: 700)."""


def tune() -> None:
    """Make young collections rarer (the older generations keep their defaults)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)


def freeze() -> None:
    """Collect once, then leave every object alive now out of later collections
    (:func:`gc.freeze`): call it once the service has loaded what it keeps."""
    gc.collect()
    gc.freeze()
