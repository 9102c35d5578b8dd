"""Run ``shoal`` in-process against the real API in memory (:class:`MemoryControl`)."""

from __future__ import annotations

import io
from typing import Any
from uuid import UUID

from attrs import define, field

from control.cli.program import run
from control.cli.shell import Settings, Shell, clock_runner
from control.client.interface import ShoalClient
from control.client.testing import FlushingClock, MemoryControl
from control.model import Condition, DatasetState, NodeState, VolumeStatus
from tests.control.client.suite import result_of

START = 1_700_000_000.0
NODE_1 = UUID("aaaaaaaa-0000-4000-8000-000000000001")
NODE_2 = UUID("bbbbbbbb-0000-4000-8000-000000000002")
DATASET_1 = UUID("11111111-0000-4000-8000-000000000001")
DATASET_2 = UUID("22222222-0000-4000-8000-000000000002")
GiB = 1024**3


@define
class Result:
    """What one command did."""

    code: int
    out: str
    err: str


@define
class CLI:
    """A cluster in memory and a way to run ``shoal`` commands against it."""

    env: dict[str, str] = field(factory=dict)
    clock: FlushingClock = field(factory=FlushingClock)
    control: MemoryControl = field(init=False)
    client: ShoalClient = field(init=False)
    settle: Any = field(init=False)
    settings: list[Settings] = field(factory=list)
    eras: dict[UUID, str] = field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self.clock.advance(START)
        self.control = MemoryControl(self.clock)
        self.client = self.control.client
        self.settle = self.control.flush

    def _make_client(self, settings: Settings, reactor: Any) -> ShoalClient:
        self.settings.append(settings)
        return self.client

    def __call__(self, *argv: str) -> Result:
        """Run ``shoal ARGV...`` and return its status and output."""
        out, err = io.StringIO(), io.StringIO()
        runner = clock_runner(self.clock, self.settle)
        shell = Shell(out, err, self.env, self._make_client, runner, self.clock)
        code = run(list(argv), shell)
        assert "Traceback" not in err.getvalue()
        return Result(code, out.getvalue(), err.getvalue())

    def wait(self, d: Any) -> Any:
        """The result of a client call."""
        self.settle()
        return result_of(d)

    def register(self, node: UUID = NODE_1, host: str = "node1", **labels: str) -> None:
        """Register a node."""
        self.wait(self.client.register_node(node, host, f"era-{host}", labels, "/shoal"))
        self.eras[node] = f"era-{host}"

    def create(self, dataset: UUID = DATASET_1, node: UUID = NODE_1, name: str | None = None,
               size: int | None = GiB) -> None:
        """Create a dataset."""
        metadata = {"name": name} if name else {}
        self.wait(self.client.create_dataset(node, size, metadata, dataset))

    def report(self, node: UUID, *states: tuple[UUID, VolumeStatus],
               conditions: tuple[Condition, ...] = ()) -> None:
        """Report which datasets a node has, and how, and what blocks them."""
        datasets = {
            d: DatasetState(d, s, GiB, "/dev/loop0", f"/shoal/{d}" if s.value == "mounted"
                            else None)
            for d, s in states
        }
        report = NodeState(node, self.eras.get(node), 0, datasets, conditions=conditions)
        self.wait(self.client.report_state(report))
