"""Tests for the watch's hold on versions a write in flight may yet record (issue 16)."""

from __future__ import annotations

from control.model import Versions
from tests.control.api.harness import DATASET_1, NODE_A, NODE_B
from tests.control.api.watching import NODE_C, counted_notifier, fired

NO_STATE = 10**18 - 1


def test_a_generation_read_before_its_write_records_it_wakes_only_whom_it_concerns() -> None:
    """A generation read (by another request) before its write recorded whom it concerns
    wakes only those, once the write has recorded it, instead of everyone."""
    counters, notifier = counted_notifier()
    a = fired(notifier.wait(0, NO_STATE, 30, {NODE_A}))
    b = fired(notifier.wait(0, NO_STATE, 30, {NODE_B}))
    with notifier.writing():
        counters.versions = Versions(1, 0)
        notifier.check()  # say, a group of reports answered first
        assert (a, b) == ([], [])
        notifier.changed(1, {NODE_A, DATASET_1})
    assert a == [Versions(1, 0)]
    assert b == []


def test_a_generation_its_write_did_not_record_wakes_everyone_once_it_is_done() -> None:
    """A write that records nothing (its generation was another's) releases the hold: the
    unrecorded generation concerns everyone, as before."""
    counters, notifier = counted_notifier()
    a = fired(notifier.wait(0, NO_STATE, 30, {NODE_A}))
    with notifier.writing():
        counters.versions = Versions(1, 0)
        notifier.check()
        assert a == []
    assert a == [Versions(1, 0)]


def test_a_write_begun_after_the_generation_was_read_does_not_hold_it() -> None:
    """Only the writes in flight when a generation was first judged may hold it: a later
    write (which cannot have made it) does not."""
    counters, notifier = counted_notifier()
    a = fired(notifier.wait(0, NO_STATE, 30, {NODE_A}))
    earlier = notifier.writing()
    earlier.__enter__()
    counters.versions = Versions(1, 0)
    notifier.check()
    with notifier.writing():
        earlier.__exit__(None, None, None)
        assert a == [Versions(1, 0)]


def test_no_write_in_flight_wakes_at_once() -> None:
    """With no write in flight, an unrecorded generation wakes every targeted waiter at once."""
    counters, notifier = counted_notifier()
    a = fired(notifier.wait(0, NO_STATE, 30, {NODE_A}))
    counters.versions = Versions(1, 0)
    notifier.check()
    assert a == [Versions(1, 0)]


def test_a_state_version_waits_for_its_report_not_for_a_configuration_write() -> None:
    """A state version read before its report recorded it wakes only whom it concerns; a
    configuration write in flight does not hold a state version."""
    counters, notifier = counted_notifier()
    a = fired(notifier.wait(0, 0, 30, {NODE_A}))
    c = fired(notifier.wait(0, 0, 30, {NODE_C}))
    with notifier.writing("state"):
        counters.versions = Versions(0, 1)
        notifier.check()
        assert (a, c) == ([], [])
        notifier.reached(1, 1, {NODE_A, DATASET_1}, generation=0)
    assert a == [Versions(0, 1)]
    assert c == []
    b = fired(notifier.wait(0, 1, 30, {NODE_B}))
    with notifier.writing("configuration"):
        counters.versions = Versions(0, 2)
        notifier.check()
        assert b == [Versions(0, 2)]


def test_a_waiter_gone_while_held_is_forgotten() -> None:
    """A held waiter whose client went away is not answered when the write is done."""
    counters, notifier = counted_notifier()
    waiting = notifier.wait(0, NO_STATE, 30, {NODE_A})
    seen = fired(waiting)
    with notifier.writing():
        counters.versions = Versions(1, 0)
        notifier.check()
        waiting.cancel()
        notifier.changed(1, {NODE_A})
    assert len(seen) == 1 and notifier.waiting == 0
