"""Tests for change values and their combinators."""

from uuid import UUID

from agent.changes import (
    IDLE_SLEEP,
    WAIT_SLEEP,
    AttachVolume,
    CreateVolume,
    InParallel,
    NoOp,
    Sequentially,
    Wait,
    actions,
    in_parallel,
    sequentially,
    sleep_after,
)

A = UUID(int=1)
B = UUID(int=2)


def test_changes_compare_equal_by_value():
    """Two changes built from equal values are equal, so tests can assert on trees."""
    assert CreateVolume(A, 64) == CreateVolume(A, 64)
    assert in_parallel([CreateVolume(A, 64), Wait(B, "x")]) == InParallel(
        [CreateVolume(A, 64), Wait(B, "x")]
    )


def test_empty_combinators_collapse_to_noop():
    """Nothing to do, in order or in parallel, is a NoOp."""
    assert sequentially([]) == NoOp()
    assert in_parallel([NoOp(sleep=3.0), NoOp(sleep=7.0)]) == NoOp(sleep=3.0)


def test_single_change_stands_for_itself():
    """A combinator of one change (plus no-ops) is that change."""
    assert in_parallel([NoOp(), AttachVolume(A, "b1")]) == AttachVolume(A, "b1")


def test_several_changes_keep_their_order():
    """Several changes become a Sequentially in the given order."""
    changes = [CreateVolume(A, 64), CreateVolume(B, 64)]
    assert sequentially(changes) == Sequentially(changes)


def test_actions_lists_io_leaves_only():
    """actions() skips waits and no-ops, in nested trees too."""
    tree = in_parallel([Wait(A, "x"), sequentially([CreateVolume(B, 64), AttachVolume(B, "b")])])
    assert actions(tree) == [CreateVolume(B, 64), AttachVolume(B, "b")]


def test_sleep_after():
    """Work means pass again now; a wait means soon; nothing means idle."""
    assert sleep_after(CreateVolume(A, 64)) == 0.0
    assert sleep_after(in_parallel([Wait(A, "x"), Wait(B, "y")])) == WAIT_SLEEP
    assert sleep_after(NoOp()) == IDLE_SLEEP
