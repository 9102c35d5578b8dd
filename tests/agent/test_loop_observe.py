"""
The loop observes the node while it fetches the configuration, when that is sound.

The real loop, the real API in memory, the fake backend; the configuration
fetch is held until the test releases it, so the test sees what the loop did
meanwhile.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from attrs import define, field
from twisted.internet.defer import Deferred

from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage
from agent.discovery import mount_point
from agent.executor import Executor
from agent.fs.fake import FakeFilesystems
from agent.loop import ConvergenceLoop, LoopSettings, NodeFacts
from agent.observe import discover
from control.client.http import HTTPClient
from control.client.testing import FlushingClock, MemoryControl
from control.model import MINIMUM_DATASET_SIZE
from control.runners import synchronous_runner

ROOT = "/shoal"
NODE = UUID(int=1)


@define
class HoldingClient:
    """A client whose configuration fetches, once ``hold`` is set, wait for :meth:`release`
    and are answered as of that moment."""

    inner: HTTPClient
    hold: bool = False
    held: list[tuple[Deferred[Any], tuple[Any, ...]]] = field(factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def node_configuration(self, *args: Any) -> Deferred[Any]:
        """Answer now, or once released."""
        if not self.hold:
            return self.inner.node_configuration(*args)
        d: Deferred[Any] = Deferred()
        self.held.append((d, args))
        return d

    def release(self) -> None:
        """Answer the held fetches with the configuration as it is now."""
        self.hold = False
        held, self.held = self.held, []
        for d, args in held:
            self.inner.node_configuration(*args).chainDeferred(d)


@define
class Rig:
    """One agent whose observations and actions are logged in order: ``observe`` (``observe
    while fetching`` when a fetch was held meanwhile) and ``act``."""

    clock: FlushingClock = field(factory=FlushingClock)
    storage: FakeStorage = field(factory=FakeStorage)
    control: MemoryControl = field(init=False)
    client: HoldingClient = field(init=False)
    events: list[str] = field(factory=list)
    filesystems: FakeFilesystems = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.control = MemoryControl(self.clock, node_timeout=15.0)
        self.client = HoldingClient(self.control.client)
        backend = FakeBlockDeviceAPI(self.storage, UUID(int=42), str(NODE))
        self.filesystems = FakeFilesystems(self.storage, str(NODE))
        ConvergenceLoop(
            self.client,  # type: ignore[arg-type]
            self.clock,
            NodeFacts(NODE, "host", "era", {}),
            Executor(backend, self.filesystems, self.run_change),
            LoopSettings(mount_root=ROOT),
            random=lambda: 0.5,
            run_blocking=self.run_blocking,
        ).start()

    def run_blocking(self, f: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Run ``f`` now, noting each observation."""
        if f is discover:
            self.events.append("observe while fetching" if self.client.held else "observe")
        return synchronous_runner(f, *args, **kwargs)

    def run_change(self, f: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Run one change's action now, noting it."""
        self.events.append("act")
        return synchronous_runner(f, *args, **kwargs)

    def create(self) -> UUID:
        """Create a dataset on the node through the client."""
        created: list[Any] = []
        self.control.client.create_dataset(NODE, MINIMUM_DATASET_SIZE).addCallback(
            created.append
        )
        return created[0].dataset_id

    def mounted(self, dataset_id: UUID) -> bool:
        """Whether the dataset is mounted at its mount point."""
        return any(m.path == mount_point(ROOT, dataset_id) for m in self.filesystems.mounts())


def test_woken_by_the_watch_it_observes_while_fetching() -> None:
    """A create wakes the loop; it observes the node before the configuration arrives, once."""
    rig = Rig()
    rig.client.hold = True
    mark = len(rig.events)
    dataset_id = rig.create()
    assert rig.client.held and rig.events[mark:] == ["observe while fetching"]
    rig.client.release()
    assert rig.events[mark + 1] == "act"
    assert rig.mounted(dataset_id)


def test_observes_again_when_the_fetch_brings_a_newer_generation() -> None:
    """A generation written while the node was being observed makes the loop observe again."""
    rig = Rig()
    rig.client.hold = True
    first = rig.create()
    mark = len(rig.events)
    second = rig.create()  # written while the loop waits for its fetch
    assert rig.events[mark:] == []
    rig.client.release()
    assert rig.events[mark : mark + 2] == ["observe", "act"]
    assert rig.mounted(first) and rig.mounted(second)


def test_with_a_filesystem_mounted_it_observes_after_the_fetch() -> None:
    """Once a filesystem is mounted here (a snapshot may freeze it ahead), a configuration
    change is observed only after the fetch answered, once, then acted on."""
    rig = Rig()
    first = rig.create()
    assert rig.mounted(first)
    rig.client.hold = True
    mark = len(rig.events)
    second = rig.create()
    assert rig.client.held and rig.events[mark:] == []
    rig.client.release()
    assert rig.events[mark : mark + 2] == ["observe", "act"]
    assert rig.mounted(second)
