"""
One bad dataset must not slow a node: 20 good creates with and without an always-failing one.

In process, on the fake backend: one real :class:`~agent.loop.ConvergenceLoop`
and the real client of an in-memory control service on a ``task.Clock``.
Every backend and filesystem call takes ``--op-ms`` of simulated time
(discovery ``--discover-ms``), so the figures are simulated seconds: they
show where passes wait, not CPU cost.
In the second scenario a dataset too large for the pool (``EFBIG`` on every
create, a permanent condition) has been failing for ``--head-start``
seconds when the 20 good creates arrive. Reported: per good dataset, the
time from its create to the report showing it mounted (p50, p99), and the
time until all 20 are mounted.

    .venv/bin/python bench/backoff.py [--good 20] [--op-ms 50]
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import structlog
from _common import Table, percentile
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater

from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage
from agent.executor import Executor
from agent.fs.fake import FakeFilesystems
from agent.loop import ConvergenceLoop, LoopSettings, NodeFacts
from control.client.testing import FlushingClock, MemoryControl
from control.model import MINIMUM_DATASET_SIZE, Dataset, VolumeStatus

CLUSTER = UUID(int=7)
NODE = UUID(int=1)


def slow_runner(clock: Clock, seconds: float) -> Callable[..., Deferred[Any]]:
    """A runner whose every call takes ``seconds`` of the clock's time."""

    def run(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        return deferLater(clock, seconds, f, *args, **kwargs)  # type: ignore[arg-type]

    return run


def advance_to_next_call(clock: Clock, limit: float | None = None) -> None:
    """Move the clock exactly to its next scheduled call (or to ``limit``, if sooner)."""
    times = [call.getTime() for call in clock.getDelayedCalls()]
    target = min(times, default=clock.seconds() + 1.0)
    if limit is not None:
        target = min(target, limit)
    clock.advance(max(0.0, target - clock.seconds()))


def mounted(control: MemoryControl) -> set[UUID]:
    """The datasets the node's latest report shows mounted."""
    report = control.store.cluster_state().reports.get(NODE)
    if report is None:
        return set()
    return {k for k, v in report.datasets.items() if v.status is VolumeStatus.MOUNTED}


def scenario(good: int, bad: bool, op: float, discover: float, head_start: float) -> list[float]:
    """Seconds from create to mounted for each good dataset; the last is the time for all."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    clock, storage = FlushingClock(), FakeStorage(largest_volume=MINIMUM_DATASET_SIZE)
    control = MemoryControl(clock=clock)
    client = control.client
    backend = FakeBlockDeviceAPI(storage, CLUSTER, str(NODE))
    executor = Executor(backend, FakeFilesystems(storage, str(NODE)), slow_runner(clock, op))
    loop = ConvergenceLoop(
        client,
        clock,
        NodeFacts(NODE, "host", "era"),
        executor,
        LoopSettings(mount_root="/shoal"),
        random=lambda: 0.5,
        run_blocking=slow_runner(clock, discover),
    )
    loop.start()
    while clock.seconds() < 1.0:
        advance_to_next_call(clock)
    if bad:
        client.create_dataset(NODE, 2 * MINIMUM_DATASET_SIZE)
        until = clock.seconds() + head_start
        while clock.seconds() < until:
            advance_to_next_call(clock, until)
    ids = [uuid4() for _ in range(good)]
    start = clock.seconds()
    for dataset_id in ids:  # all at once, so that both scenarios see one burst
        record = Dataset(dataset_id, NODE, maximum_size=MINIMUM_DATASET_SIZE)
        control.store.create_dataset(record, None, now=start, actor="bench")
    control.api.notifier.check()
    control.flush()
    done: dict[UUID, float] = {}
    while len(done) < good:
        if clock.seconds() - start > 600:
            raise RuntimeError("the good datasets did not converge in 600 simulated seconds")
        advance_to_next_call(clock)
        for dataset_id in mounted(control) & set(ids):
            done.setdefault(dataset_id, clock.seconds() - start)
    if bad:
        report = control.store.cluster_state().reports[NODE]
        assert any(c.permanent for c in report.conditions), "the bad dataset reports no condition"
    loop.stop()
    return sorted(done.values())


def main() -> None:
    """Run both scenarios and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--good", type=int, default=20)
    parser.add_argument("--op-ms", type=float, default=50.0)
    parser.add_argument("--discover-ms", type=float, default=10.0)
    parser.add_argument("--head-start", type=float, action="append",
                        help="seconds the bad dataset fails before the creates (repeatable; "
                             "default 0.2, 2 and 30)")
    args = parser.parse_args()
    op, discover = args.op_ms / 1000, args.discover_ms / 1000
    table = Table("One failing dataset beside good creates (bench/backoff.py, simulated time)")
    notes = []
    results = {}
    runs = [("without a failing dataset", False, 0.0)] + [
        (f"with a failing dataset ({h:g} s in)", True, h)
        for h in (args.head_start or [0.2, 2.0, 30.0])
    ]
    for name, bad, head_start in runs:
        samples = scenario(args.good, bad, op, discover, head_start)
        results[name] = samples
        table.add(f"{args.good} creates -> mounted, {name}", samples, None, None)
        notes.append(
            f"{name}: all {args.good} mounted after {samples[-1]:.3f} s "
            f"(p50 {percentile(samples, 0.5):.3f} s, p99 {percentile(samples, 0.99):.3f} s)"
        )
    base = results["without a failing dataset"][-1]
    worst = max(samples[-1] for samples in results.values())
    notes.append(f"worst time to converge all with / without the failing dataset: "
                 f"{worst / base:.2f}x")
    print(table.render())
    print()
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
