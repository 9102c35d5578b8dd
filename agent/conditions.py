"""
What blocks each dataset, and when to try it again: the loop's per-dataset memory (pure).

A failed change becomes an error :class:`~control.model.Condition` for its
dataset: the step that failed, the error as a person reads it, since when,
how many attempts, and whether it is *permanent* (it cannot succeed without
a change of configuration: a size the pool cannot hold). The dataset then
backs off on its own (:func:`held_back` leaves it out of the changes of the
passes before its retry time), so one failing dataset never slows the
node's other datasets. A :class:`~agent.changes.Wait` becomes a waiting
condition ("waiting for node ... to unmount").

Everything here is a pure function of the memory, the pass's changes, the
failures and the clock; :class:`Troubles` is frozen.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from uuid import UUID

from attrs import evolve, frozen
from pyrsistent import PMap, pmap

from agent.changes import (
    AttachVolume,
    Change,
    CleanUpFenced,
    CloneVolume,
    CreateSnapshot,
    CreateVolume,
    DestroySnapshot,
    DestroyVolume,
    DetachVolume,
    FenceVolume,
    GrowFilesystem,
    InParallel,
    MakeFilesystem,
    MountAttached,
    MountFilesystem,
    ResizeVolume,
    RestoreVolume,
    Sequentially,
    ShutDownFilesystem,
    UnmountFilesystem,
    Wait,
    in_parallel,
    leaves,
    sequentially,
)
from agent.pacing import backoff_delay
from control.model import Condition, ConditionKind

STEPS: dict[type, str] = {
    CreateVolume: "create",
    AttachVolume: "attach",
    MakeFilesystem: "mkfs",
    MountFilesystem: "mount",
    MountAttached: "mount",
    UnmountFilesystem: "unmount",
    DetachVolume: "detach",
    DestroyVolume: "destroy",
    CreateSnapshot: "snapshot",
    DestroySnapshot: "destroy_snapshot",
    RestoreVolume: "restore",
    CloneVolume: "clone",
    ResizeVolume: "resize",
    GrowFilesystem: "grow_filesystem",
    FenceVolume: "fence",
    ShutDownFilesystem: "shutdown",
    CleanUpFenced: "clean_up_fenced",
}
"""The step name of each action, as conditions report it."""

_REASONS_BY_ERRNO = {
    errno.EFBIG: "too_large",
    errno.ENOSPC: "no_space",
    errno.EBUSY: "busy",
    errno.EIO: "io_error",
    errno.EACCES: "permission_denied",
    errno.EPERM: "permission_denied",
}
_BUSY_WORDS = ("target is busy", "device is busy", "device or resource busy")


def step_of(change: Change) -> str:
    """The step name of an action (``create``, ``mount``, ...)."""
    return STEPS.get(type(change), type(change).__name__)


def is_permanent(error: BaseException) -> bool:
    """Whether ``error`` cannot go away without a change of configuration.

    A file too large for the pool (``EFBIG``), a size that overflows, and
    any error with a true ``permanent`` attribute (a backend's
    insufficient-capacity error) are permanent.
    """
    if getattr(error, "permanent", False) is True:
        return True
    if isinstance(error, OverflowError):
        return True
    return isinstance(error, OSError) and error.errno == errno.EFBIG


def reason_of(error: BaseException) -> str:
    """A short machine-readable code for ``error`` (``too_large``, ``busy``, ``failed``...)."""
    declared = getattr(error, "reason", None)
    if isinstance(declared, str) and declared:
        return declared
    if isinstance(error, OverflowError):
        return "too_large"
    if isinstance(error, OSError) and error.errno in _REASONS_BY_ERRNO:
        return _REASONS_BY_ERRNO[error.errno]
    text = str(error).lower()
    if any(word in text for word in _BUSY_WORDS):
        return "busy"
    if getattr(error, "permanent", False) is True:
        return "insufficient_capacity"
    return "failed"


def error_text(error: BaseException) -> str:
    """The error as a person reads it: an OS error's own words, else its message."""
    if isinstance(error, OSError) and error.strerror:
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror}{where}"
    text = str(error).strip()
    return text or type(error).__name__


def failure_condition(
    change: Change, error: BaseException, previous: Condition | None, now: float
) -> Condition:
    """The error condition of ``change`` failing with ``error`` (after ``previous``, if any).

    The same step failing for the same reason counts one more attempt and
    keeps its ``since``; anything else starts afresh.
    """
    step = step_of(change)
    reason = reason_of(error)
    again = (
        previous is not None
        and previous.kind is ConditionKind.ERROR
        and previous.step == step
        and previous.reason == reason
    )
    return Condition(
        dataset_id=getattr(change, "dataset_id", None),
        kind=ConditionKind.ERROR,
        reason=reason,
        message=f"{step} failed: {error_text(error)}",
        since=previous.since if again and previous is not None else now,
        step=step,
        attempts=previous.attempts + 1 if again and previous is not None else 1,
        permanent=is_permanent(error),
    )


@frozen
class Failing:
    """One failing dataset: its condition and when it may be tried again."""

    condition: Condition
    retry_at: float


@frozen
class BackoffSettings:
    """Per-dataset retry spacing: ``min(cap, initial * 2**(attempts-1))``, half of it jitter."""

    initial: float = 0.5
    cap: float = 30.0


@frozen
class Troubles:
    """The loop's memory of what blocks each dataset (frozen; updated by pure functions)."""

    failing: PMap = pmap()
    waiting: PMap = pmap()

    def held(self, now: float) -> frozenset[UUID]:
        """The datasets still backing off at ``now``."""
        return frozenset(k for k, f in self.failing.items() if f.retry_at > now)

    def next_retry(self, now: float) -> float | None:
        """Seconds from ``now`` until the first backed-off dataset may be retried, if any."""
        ahead = [f.retry_at - now for f in self.failing.values() if f.retry_at > now]
        return min(ahead, default=None)

    def conditions(self) -> tuple[Condition, ...]:
        """Every condition, errors then waits, each in dataset order."""
        errors = [self.failing[k].condition for k in sorted(self.failing, key=str)]
        waits = [self.waiting[k] for k in sorted(self.waiting, key=str)]
        return (*errors, *waits)


def _dataset_of(change: Change) -> UUID | None:
    ids = {getattr(leaf, "dataset_id", None) for leaf in leaves(change)}
    return ids.pop() if len(ids) == 1 else None


def held_back(changes: Change, held: frozenset[UUID]) -> Change:
    """``changes`` without the subtrees of datasets in ``held`` (pure)."""
    if not held:
        return changes
    if _dataset_of(changes) in held:
        return in_parallel([])
    if isinstance(changes, InParallel):
        return in_parallel(held_back(c, held) for c in changes.changes)
    if isinstance(changes, Sequentially):
        return sequentially(held_back(c, held) for c in changes.changes)
    return changes


def noticing_waits(troubles: Troubles, changes: Change, now: float) -> Troubles:
    """``troubles`` with the waiting conditions of this pass's :class:`Wait` leaves."""
    waiting = {}
    for leaf in leaves(changes):
        if not isinstance(leaf, Wait):
            continue
        before = troubles.waiting.get(leaf.dataset_id)
        same = before is not None and before.message == leaf.reason
        waiting[leaf.dataset_id] = Condition(
            dataset_id=leaf.dataset_id,
            kind=ConditionKind.WAITING,
            reason=leaf.code,
            message=leaf.reason,
            since=before.since if same and before is not None else now,
        )
    return evolve(troubles, waiting=pmap(waiting))


def settled(
    troubles: Troubles,
    held: frozenset[UUID],
    failures: Iterable[tuple[Change, BaseException]],
    now: float,
    jitter: float,
    settings: BackoffSettings,
) -> Troubles:
    """
    ``troubles`` after a pass ran its changes with ``failures`` (pure).

    A failed dataset gets its condition (one more attempt) and a retry time;
    a dataset still held keeps its memory; every other one (it succeeded, or
    needs nothing any more) is forgotten.
    """
    failing = {k: v for k, v in troubles.failing.items() if k in held}
    for change, error in failures:
        dataset_id = getattr(change, "dataset_id", None)
        if dataset_id is None:
            continue
        before = troubles.failing.get(dataset_id)
        condition = failure_condition(change, error, before and before.condition, now)
        delay = backoff_delay(condition.attempts, jitter, settings.initial, settings.cap)
        failing[dataset_id] = Failing(condition, now + delay)
    return evolve(troubles, failing=pmap(failing))
