"""Tests for the watch notifier and GET /v1/shoal/watch."""

from __future__ import annotations

import gc
import weakref

from twisted.internet.defer import CancelledError, fail
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.server import Request, Site
from twisted.web.test.requesthelper import DummyChannel

from control.api.watch import Notifier
from control.model import Versions
from tests.control.api.harness import DATASET_1, NODE_A, Harness, result_of
from tests.control.api.watching import WATCH, Counters, fired


def _notifier() -> tuple[Clock, Counters, Notifier]:
    clock, counters = Clock(), Counters()
    return clock, counters, Notifier(clock, counters.read, interval=1.0)




def test_answers_at_once_when_already_passed() -> None:
    """A waiter behind the current counters is answered immediately."""
    _, counters, notifier = _notifier()
    counters.versions = Versions(3, 1)
    assert result_of(notifier.wait(2, 1, 30)) == Versions(3, 1)
    assert notifier.waiting == 0


def test_wakes_on_check_after_write() -> None:
    """A check after a write wakes the waiters it passed, and only those."""
    clock, counters, notifier = _notifier()
    on_config, on_state = fired(notifier.wait(0, 0, 30)), fired(notifier.wait(1, 0, 30))
    counters.versions = Versions(1, 0)
    notifier.check()
    assert on_config == [Versions(1, 0)] and on_state == []
    counters.versions = Versions(1, 1)
    notifier.check()
    assert on_state == [Versions(1, 1)]
    assert notifier.waiting == 0 and clock.getDelayedCalls() == []


def test_times_out_with_current_values() -> None:
    """After the timeout the waiter gets the counters as they are then."""
    clock, _, notifier = _notifier()
    seen = fired(notifier.wait(0, 0, 5))
    clock.advance(4.9)
    assert seen == []
    clock.advance(0.1)
    assert seen == [Versions(0, 0)]
    assert clock.getDelayedCalls() == []


def test_polls_only_while_someone_waits() -> None:
    """The counters are read every interval while waiting, and never otherwise."""
    clock, counters, notifier = _notifier()
    notifier.check()
    clock.advance(10)
    assert counters.reads == 0
    seen = fired(notifier.wait(0, 0, 30))
    clock.pump([1, 1, 1])
    assert counters.reads == 4
    counters.versions = Versions(0, 1)
    clock.advance(1)
    assert seen == [Versions(0, 1)]
    reads = counters.reads
    clock.advance(10)
    assert counters.reads == reads


def test_cancel_forgets_waiter_and_timers() -> None:
    """Cancelling a wait removes it and leaves no delayed calls behind."""
    clock, _, notifier = _notifier()
    d = notifier.wait(0, 0, 30)
    seen = fired(d)
    d.cancel()
    assert seen[0].check(CancelledError)
    d.addErrback(lambda f: None)
    assert notifier.waiting == 0 and clock.getDelayedCalls() == []


def test_write_during_read_reads_again() -> None:
    """A check while a read is in flight causes one more read afterwards."""
    _, counters, notifier = _notifier()
    counters.hold = True
    seen = fired(notifier.wait(0, 0, 30))
    notifier.check()
    notifier.check()
    assert counters.reads == 1
    counters.pending.pop().callback(Versions(0, 0))
    assert counters.reads == 2
    counters.pending.pop().callback(Versions(1, 0))
    assert seen == [Versions(1, 0)]


def test_read_failure_keeps_waiting() -> None:
    """A failed poll is logged and the waiter keeps waiting for the next one."""
    clock, counters, notifier = _notifier()
    seen = fired(notifier.wait(0, 0, 30))
    notifier._read = lambda: fail(RuntimeError("db down"))
    clock.advance(1)
    assert seen == [] and notifier.waiting == 1
    notifier._read = counters.read
    counters.versions = Versions(2, 0)
    clock.advance(1)
    assert seen == [Versions(2, 0)]


def test_stop_cancels_everyone() -> None:
    """Stopping cancels every waiter."""
    clock, _, notifier = _notifier()
    first, second = notifier.wait(0, 0, 30), notifier.wait(1, 1, 30)
    seen_first, seen_second = fired(first), fired(second)
    notifier.stop()
    assert seen_first[0].check(CancelledError) and seen_second[0].check(CancelledError)
    assert notifier.waiting == 0 and clock.getDelayedCalls() == []
    first.addErrback(lambda f: None)
    second.addErrback(lambda f: None)


# -- the route ----------------------------------------------------------------


def _registered() -> Harness:
    h = Harness()
    h.register()
    return h


def test_watch_wakes_on_configuration_write() -> None:
    """A dataset created while watching wakes the watcher with the new generation."""
    h = _registered()
    d = h.start("GET", f"{WATCH}?configuration=0&state=1&timeout=60")
    h.client.flush()
    assert not fired(d)
    h.create(dataset_id=str(DATASET_1))
    answer = h.finish(d)
    assert (answer.code, answer.body) == (200, {"configuration": 1, "state": 1})


def test_watch_wakes_on_state_change() -> None:
    """A node's changed report wakes a watcher waiting on the state version."""
    h = _registered()
    d = h.start("GET", f"{WATCH}?configuration=0&state=1")
    h.client.flush()
    report = {"era": "e1", "generation": 0, "datasets": []}
    h.call("PUT", f"/v1/shoal/state/{NODE_A}", report)
    assert h.finish(d).body == {"configuration": 0, "state": 2}


def test_watch_sees_other_writers_by_polling() -> None:
    """A write made straight to the shared store is seen within a second."""
    h = _registered()
    d = h.start("GET", f"{WATCH}?configuration=0&state=1")
    h.client.flush()
    h.memory.register_node(h.memory.nodes()[0].__class__(NODE_A, "other-host"))
    h.clock.advance(1)
    assert h.finish(d).body == {"configuration": 0, "state": 2}


def test_watch_times_out() -> None:
    """Without a change the watch answers the current values after its timeout."""
    h = _registered()
    d = h.start("GET", f"{WATCH}?configuration=0&state=1&timeout=10")
    h.clock.advance(9)
    h.client.flush()
    assert not fired(d)
    h.clock.advance(1)
    assert h.finish(d).body == {"configuration": 0, "state": 1}


def test_watch_default_timeout_is_30() -> None:
    """The default timeout is 30 seconds."""
    h = _registered()
    d = h.start("GET", f"{WATCH}?configuration=0&state=1")
    h.clock.advance(29.5)
    h.client.flush()
    assert not fired(d)
    h.clock.advance(0.5)
    assert h.finish(d).code == 200


def test_watch_without_counters_waits_for_next_change() -> None:
    """Missing counters default to the current values."""
    h = _registered()
    d = h.start("GET", f"{WATCH}?timeout=5")
    h.client.flush()
    assert not fired(d)
    h.create()
    assert h.finish(d).body == {"configuration": 1, "state": 1}


def test_watch_answers_at_once_when_behind() -> None:
    """A watcher that is behind is answered immediately."""
    h = _registered()
    assert h.call("GET", f"{WATCH}?configuration=0&state=0").body == {
        "configuration": 0,
        "state": 1,
    }


def test_watch_bad_parameters() -> None:
    """Bad counters, timeouts or unknown parameters are 400 and wait for nothing."""
    h = _registered()
    for query in [
        "configuration=-1",
        "configuration=x",
        "state=1.5",
        "timeout=301",
        "timeout=-1",
        "timeout=nan",
        "timeout=abc",
        "configuration=1&configuration=2",
        "nope=1",
    ]:
        answer = h.call("GET", f"{WATCH}?{query}")
        assert answer.code == 400, query
    assert h.api.notifier.waiting == 0


def test_watch_cancelled_when_client_disconnects() -> None:
    """A client going away cancels its wait and leaves no timers behind."""
    h = _registered()
    channel = DummyChannel()
    channel.site = Site(h.api.resource())
    request = Request(channel)
    request.gotLength(0)
    request.requestReceived(b"GET", f"{WATCH}?configuration=5&state=5".encode(), b"HTTP/1.1")
    assert h.api.notifier.waiting == 1
    request.connectionLost(Failure(ConnectionDone()))
    assert h.api.notifier.waiting == 0
    assert h.clock.getDelayedCalls() == []
    assert channel.transport.written.getvalue() == b""


def test_watch_cancelled_at_shutdown_answers_503() -> None:
    """A watch the stopping service cancels is answered 503 with JSON, never 500."""
    h = _registered()
    d = h.start("GET", f"{WATCH}?configuration=5&state=5")
    h.client.flush()
    assert h.api.notifier.waiting == 1
    h.api.notifier.stop()
    answer = h.finish(d)
    assert answer.code == 503
    assert "shutting down" in answer.body["description"]


def test_recent_counters_serve_new_and_expiring_waiters_without_a_read() -> None:
    """Within ``interval`` of a read, a new waiter is judged and a timed-out one answered
    with the counters read then; after it, each is read afresh."""
    clock, counters, notifier = _notifier()
    counters.versions = Versions(3, 1)
    notifier.wait(3, 1, 30)
    assert counters.reads == 1
    assert result_of(notifier.wait(2, 1, 30)) == Versions(3, 1)  # behind: woken at once
    expiring = fired(notifier.wait(3, 1, 0.5))
    clock.advance(0.5)
    assert (expiring, counters.reads) == ([Versions(3, 1)], 1)
    counters.versions = Versions(4, 1)  # another replica wrote
    clock.advance(0.6)  # the tick reads it, and wakes the first waiter
    assert counters.reads == 2
    clock.advance(1.5)
    late = fired(notifier.wait(4, 1, 30))
    assert counters.reads >= 3 and late == []


def test_watch_request_is_freed_without_the_collector() -> None:
    """A watch answered at its timeout leaves no reference cycle behind: the request is freed
    by reference counting alone (at 1,000 nodes, collecting answered requests cost a sixth of
    the service's CPU)."""
    h = _registered()
    channel = DummyChannel()
    channel.site = Site(h.api.resource())
    request = Request(channel)
    request.gotLength(0)
    gone = weakref.ref(request)
    gc.collect()
    gc.disable()
    try:
        request.requestReceived(
            b"GET", f"{WATCH}?configuration=0&state=1&timeout=5".encode(), b"HTTP/1.1"
        )
        h.clock.advance(5)
        assert request.finished
        answer = channel.transport.written.getvalue()
        assert answer.endswith(b'{"configuration":0,"state":1}\r\n0\r\n\r\n')
        del request
        assert gone() is None
    finally:
        gc.enable()
