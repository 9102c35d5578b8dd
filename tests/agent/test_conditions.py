"""The per-dataset memory of failures and waits: pure functions of memory, changes and clock."""

from __future__ import annotations

import errno
from uuid import UUID

from agent.changes import (
    ACTIONS,
    CreateVolume,
    InParallel,
    MountAttached,
    MountFilesystem,
    NoOp,
    UnmountFilesystem,
    Wait,
)
from agent.conditions import (
    STEPS,
    BackoffSettings,
    Troubles,
    failure_condition,
    held_back,
    is_permanent,
    noticing_waits,
    reason_of,
    settled,
    step_of,
)
from agent.fs.interface import FilesystemError
from control.model import Condition, ConditionKind

A = UUID(int=1)
B = UUID(int=2)
SETTINGS = BackoffSettings(initial=1.0, cap=8.0)


class CapacityError(Exception):
    """A backend error that declares itself permanent, as an insufficient-capacity one does."""

    permanent = True


def test_a_file_too_large_is_a_permanent_too_large_condition():
    """EFBIG from the pool: reason too_large, permanent, the OS's own words, step create."""
    error = OSError(errno.EFBIG, "File too large")
    condition = failure_condition(CreateVolume(A, 10), error, None, 5.0)
    assert condition == Condition(
        dataset_id=A,
        kind=ConditionKind.ERROR,
        reason="too_large",
        message="create failed: File too large",
        since=5.0,
        step="create",
        attempts=1,
        permanent=True,
    )


def test_any_error_with_a_true_permanent_attribute_is_permanent():
    """A backend's own permanent error plugs in without this module knowing its class."""
    assert is_permanent(CapacityError("pool is full"))
    assert is_permanent(OverflowError("too big"))
    assert not is_permanent(RuntimeError("SAN hiccup"))
    assert not is_permanent(OSError(errno.EIO, "I/O error"))


def test_a_busy_unmount_reads_as_busy():
    """umount's 'target is busy' is the busy reason, transient."""
    error = FilesystemError("umount /m failed with exit code 32: umount: /m: target is busy.")
    assert reason_of(error) == "busy"
    condition = failure_condition(UnmountFilesystem(A, "/m"), error, None, 0.0)
    assert condition.step == "unmount" and not condition.permanent
    assert "target is busy" in condition.message


def test_the_same_failure_again_counts_attempts_and_keeps_since():
    """A second identical failure is attempt 2 since the first; a different step starts afresh."""
    error = RuntimeError("SAN hiccup")
    first = failure_condition(CreateVolume(A, 10), error, None, 1.0)
    second = failure_condition(CreateVolume(A, 10), error, first, 4.0)
    assert (second.attempts, second.since) == (2, 1.0)
    other = failure_condition(MountFilesystem(A, "/d", "/m"), error, second, 9.0)
    assert (other.attempts, other.since, other.step) == (1, 9.0, "mount")


def test_a_failed_dataset_backs_off_alone():
    """After a failure only that dataset is held back, until its retry time."""
    failures = [(CreateVolume(A, 10), RuntimeError("no"))]
    troubles = settled(Troubles(), frozenset(), failures, 10.0, 0.0, SETTINGS)
    assert troubles.held(10.0) == {A}
    assert troubles.next_retry(10.0) == 0.5
    assert troubles.held(10.5) == frozenset()
    tree = InParallel([CreateVolume(A, 10), CreateVolume(B, 10)])
    assert held_back(tree, troubles.held(10.0)) == CreateVolume(B, 10)
    assert held_back(CreateVolume(A, 10), frozenset({A})) == NoOp()


def test_backoff_grows_per_attempt_up_to_the_cap():
    """Each further failure doubles the dataset's delay, never beyond the cap."""
    troubles = Troubles()
    delays = []
    for attempt in range(6):
        now = attempt * 100.0
        troubles = settled(
            troubles, frozenset(), [(CreateVolume(A, 10), RuntimeError("no"))], now, 0.999, SETTINGS
        )
        delays.append(round(troubles.failing[A].retry_at - now))
    assert delays == [1, 2, 4, 8, 8, 8]


def test_a_held_dataset_keeps_its_memory_and_a_recovered_one_is_forgotten():
    """Held: kept; not held and not failing again (it worked, or needs nothing): cleared."""
    troubles = settled(
        Troubles(), frozenset(), [(CreateVolume(A, 10), RuntimeError("no"))], 0.0, 0.0, SETTINGS
    )
    assert settled(troubles, frozenset({A}), [], 0.1, 0.0, SETTINGS) == troubles
    assert settled(troubles, frozenset(), [], 5.0, 0.0, SETTINGS).conditions() == ()


def test_waits_become_waiting_conditions_that_keep_their_since():
    """A Wait is reported as a waiting condition with its code; the same wait keeps its since."""
    wait = Wait(A, "waiting for node 2 to unmount and detach volume v", "waiting_for_node")
    troubles = noticing_waits(Troubles(), InParallel([wait, CreateVolume(B, 1)]), 3.0)
    later = noticing_waits(troubles, wait, 7.0)
    assert later.conditions() == (
        Condition(A, ConditionKind.WAITING, "waiting_for_node", wait.reason, since=3.0),
    )
    assert noticing_waits(later, NoOp(), 8.0).conditions() == ()


def test_every_action_has_a_step_name():
    """Every kind of action is named by a step, as its conditions report it."""
    assert set(STEPS) == set(ACTIONS)
    assert step_of(MountAttached(UUID(int=7), "b1", "/shoal/x")) == "mount"
