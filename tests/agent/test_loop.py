"""
The convergence loop against the real API in memory, the fake backend and fake filesystems.

Time is a ``task.Clock`` and every runner is synchronous, so a test sees
exactly what the loop does at each instant and never sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import pytest
from attrs import define, field
from structlog.testing import capture_logs
from twisted.internet.defer import Deferred, fail

from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage
from agent.changes import MountFilesystem
from agent.discovery import mount_point
from agent.effects import CONFIRM_AFTER
from agent.executor import Executor
from agent.fs.fake import FakeFilesystems
from agent.lifecycle import Phase
from agent.loop import ConvergenceLoop, LoopSettings, NodeFacts
from control.client.http import HTTPClient
from control.client.testing import FlushingClock, MemoryControl
from control.errors import NotFound, Unavailable
from control.model import MINIMUM_DATASET_SIZE, DatasetState, NodeState, VolumeStatus
from control.runners import synchronous_runner

CLUSTER = UUID(int=42)
ROOT = "/shoal"


@define
class RecordingClient:
    """A client that records calls and fails those named in ``failures`` (in order)."""

    inner: HTTPClient
    calls: list[str] = field(factory=list)
    failures: dict[str, list[Exception]] = field(factory=dict)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Deferred:
            self.calls.append(name)
            pending = self.failures.get(name)
            if pending:
                return fail(pending.pop(0))
            return method(*args, **kwargs)

        return call


@define
class Node:
    """One agent under test, with its fake backend and filesystems."""

    loop: ConvergenceLoop
    backend: FakeBlockDeviceAPI
    filesystems: FakeFilesystems

    @property
    def uuid(self) -> UUID:
        """The node's uuid."""
        return self.loop.node.node_uuid

    def mounted(self, dataset_id: UUID) -> bool:
        """Whether the dataset is mounted here at its mount point."""
        return any(m.path == mount_point(ROOT, dataset_id) for m in self.filesystems.mounts())


@define
class World:
    """A clock, a fake control service, a fake SAN, and agents on them."""

    clock: FlushingClock = field(factory=FlushingClock)
    control: MemoryControl = field(init=False)
    storage: FakeStorage = field(factory=FakeStorage)
    client: RecordingClient = field(init=False)
    jitter: list[float] = field(factory=list)
    heartbeat_jitter: float = 0.0

    def __attrs_post_init__(self) -> None:
        self.control = MemoryControl(self.clock, node_timeout=15.0)
        self.client = RecordingClient(self.control.client)

    def random(self) -> float:
        """The injected randomness: the queued jitters, else 0.5."""
        return self.jitter.pop(0) if self.jitter else 0.5

    def node(self, index: int, runner: Callable[..., Deferred] | None = None) -> Node:
        """A started agent number ``index``."""
        node_uuid = UUID(int=index + 1)
        backend = FakeBlockDeviceAPI(self.storage, CLUSTER, str(node_uuid))
        filesystems = FakeFilesystems(self.storage, str(node_uuid))
        executor = Executor(backend, filesystems, runner or synchronous_runner)
        loop = ConvergenceLoop(
            self.client,  # type: ignore[arg-type]
            self.clock,
            NodeFacts(node_uuid, f"host{index}", f"era-{index}", {"rack": str(index)}),
            executor,
            LoopSettings(mount_root=ROOT, heartbeat=5.0, watch_timeout=60.0),
            random=self.random,
            run_blocking=synchronous_runner,
            heartbeat_jitter=lambda: self.heartbeat_jitter,
        )
        loop.start()
        return Node(loop, backend, filesystems)

    def create(self, primary: Node) -> UUID:
        """Create a dataset on ``primary`` through the client."""
        created: list[Any] = []
        self.client.inner.create_dataset(primary.uuid, MINIMUM_DATASET_SIZE).addCallback(
            created.append
        )
        return created[0].dataset_id

    def calls_since(self, mark: int) -> list[str]:
        """The client calls made after the ``mark``-th."""
        return self.client.calls[mark:]


def test_registers_first_with_its_facts():
    """The first call is the registration, with host, era and labels; then it converges."""
    world = World()
    node = world.node(0)
    assert world.client.calls[0] == "register_node"
    stored = world.control.store.nodes()
    assert [(n.uuid, n.host, n.era, dict(n.labels)) for n in stored] == [
        (node.uuid, "host0", "era-0", {"rack": "0"})
    ]
    assert node.loop.phase is Phase.WAITING


def test_configuration_change_wakes_it_without_time_passing():
    """A create reaches the waiting agent through the watch: mounted with the clock unmoved."""
    world = World()
    node = world.node(0)
    with capture_logs() as logs:
        dataset_id = world.create(node)
    assert node.mounted(dataset_id)
    assert world.clock.seconds() == 0
    assert node.loop.phase is Phase.WAITING
    events = [entry["event"] for entry in logs]
    assert {"agent.observed", "agent.decided", "agent.pass.done"} <= set(events)
    decided = [e for e in logs if e["event"] == "agent.decided" and e["actions"]]
    assert [e["changes"] for e in decided] == [
        [f"CreateVolume({str(dataset_id)[:8]})"],
        [f"AttachVolume({str(dataset_id)[:8]})", f"MountAttached({str(dataset_id)[:8]})"],
        [f"MakeFilesystem({str(dataset_id)[:8]})", f"MountFilesystem({str(dataset_id)[:8]})"],
    ]


def test_reports_the_mount_at_once():
    """The pass after the mount reports it: the state shows the dataset mounted on its node."""
    world = World()
    node = world.node(0)
    dataset_id = world.create(node)
    state = world.control.store.cluster_state()
    reported = state.reports[node.uuid].datasets[dataset_id]
    assert reported.path == mount_point(ROOT, dataset_id)


def test_move_needs_no_poll_interval():
    """A move completes, old primary releasing and new one mounting, with no time passing."""
    world = World()
    one, two = world.node(0), world.node(1)
    dataset_id = world.create(one)
    one.filesystems.write_file(mount_point(ROOT, dataset_id) + "/marker", b"kept")
    world.client.inner.move_dataset(dataset_id, two.uuid)
    assert two.mounted(dataset_id) and not one.mounted(dataset_id)
    assert two.filesystems.read_file(mount_point(ROOT, dataset_id) + "/marker") == b"kept"
    assert world.clock.seconds() == 0
    assert one.loop.phase is Phase.WAITING and two.loop.phase is Phase.WAITING


def test_pass_that_only_mounted_is_confirmed_later_unless_woken():
    """After a pass whose every action was reported at once (the mount after a move), the
    pass confirming it waits CONFIRM_AFTER on the watch; a configuration change meanwhile
    starts a pass at once."""
    world = World()
    one, two = world.node(0), world.node(1)
    dataset_id = world.create(one)
    world.client.inner.move_dataset(dataset_id, two.uuid)
    assert two.mounted(dataset_id)
    passes = two.loop.passes
    world.clock.advance(CONFIRM_AFTER * 0.9)
    assert two.loop.passes == passes and two.loop.phase is Phase.WAITING
    world.clock.advance(CONFIRM_AFTER * 0.2)
    assert two.loop.passes > passes
    world.client.inner.move_dataset(dataset_id, one.uuid)
    assert one.mounted(dataset_id) and not two.mounted(dataset_id)
    passes = one.loop.passes
    other = world.create(one)
    assert one.mounted(other) and one.loop.passes > passes
    assert world.clock.seconds() == pytest.approx(CONFIRM_AFTER * 1.1)


def test_move_attaches_and_mounts_in_one_pass():
    """The new primary attaches and mounts the moved volume in one pass, and reports it mounted
    from that pass, without formatting it."""
    world = World()
    one, two = world.node(0), world.node(1)
    dataset_id = world.create(one)
    with capture_logs() as logs:
        world.client.inner.move_dataset(dataset_id, two.uuid)
    assert two.mounted(dataset_id)
    short = str(dataset_id)[:8]
    decided = [e["changes"] for e in logs if e["event"] == "agent.decided" and e["actions"]]
    assert [f"AttachVolume({short})", f"MountAttached({short})"] in decided
    assert not any(f"MakeFilesystem({short})" in changes for changes in decided)
    assert not any(f"MountFilesystem({short})" in changes for changes in decided)


@pytest.mark.parametrize("jitter, due", [(0.0, 2.0), (1.0, 1.8)])
def test_idle_loop_waits_on_the_watch_and_heartbeats(jitter: float, due: float):
    """Idle, the loop makes no call until the heartbeat is due, then reports again.

    The heartbeat is the service's (2 s with the default grace), shorter than the agent's 5 s;
    a jitter of 1 shortens the wait by 10%.
    """
    world = World(heartbeat_jitter=jitter)
    node = world.node(0)
    mark = len(world.client.calls)
    world.clock.advance(due - 0.05)
    assert world.calls_since(mark) == []
    world.clock.advance(0.1)
    assert "report_state" in world.calls_since(mark)
    assert world.control.store.nodes()[0].last_seen == pytest.approx(due)
    assert node.loop.phase is Phase.WAITING


def test_node_turns_not_live_when_heartbeats_stop():
    """The control service marks the node live while it beats, not live once it stopped."""
    world = World()
    node = world.node(0)
    world.clock.advance(30)
    assert [info.live for info in _nodes(world)] == [True]
    node.loop.stop()
    world.clock.advance(16)
    assert [info.live for info in _nodes(world)] == [False]


def _nodes(world: World) -> list[Any]:
    listed: list[Any] = []
    world.client.inner.list_nodes().addCallback(listed.extend)
    return listed


def test_errors_back_off_exponentially_with_jitter():
    """Consecutive failures wait min(cap, 0.1 * 2**(n-1)), half fixed, half jitter."""
    world = World()
    down = Unavailable("control service down")
    world.client.failures["node_configuration"] = [down, down, down]
    world.jitter = [0.0, 1.0, 0.5]
    node = world.node(0)
    assert node.loop.phase is Phase.BACKING_OFF
    delays = []
    for _ in range(3):
        (call,) = world.clock.getDelayedCalls()
        delays.append(round(call.getTime() - world.clock.seconds(), 6))
        world.clock.advance(call.getTime() - world.clock.seconds())
    assert delays == [0.05, 0.2, 0.3]
    assert node.loop.phase is Phase.WAITING and node.loop.failures == 0


def test_backoff_is_capped():
    """However many failures, the wait never exceeds the cap, nor the heartbeat (5 s here)."""
    world = World()
    world.client.failures["register_node"] = [Unavailable("down")] * 30
    world.jitter = [1.0] * 30
    node = world.node(0)
    for _ in range(8):
        world.clock.advance(world.clock.getDelayedCalls()[0].getTime() - world.clock.seconds())
    for _ in range(22):
        (call,) = world.clock.getDelayedCalls()
        assert call.getTime() - world.clock.seconds() == pytest.approx(5.0)
        assert node.loop.phase is Phase.BACKING_OFF
        world.clock.advance(call.getTime() - world.clock.seconds())
    assert node.loop.phase is Phase.WAITING
    assert world.client.calls.count("register_node") == 31


def test_registers_again_when_the_service_lost_the_node():
    """A 404 on a report makes the loop register again, then report."""
    world = World()
    world.client.failures["report_state"] = [NotFound("who?")]
    node = world.node(0)
    calls = world.client.calls
    assert calls[:4] == ["register_node", "node_configuration", "report_state", "register_node"]
    assert node.loop.phase is Phase.WAITING
    assert node.uuid in world.control.store.cluster_state().reports


def test_registers_again_after_backoff_when_a_report_is_refused_as_stale():
    """When the service holds another era for the node, the 409 leads to a new registration."""
    world = World()
    node = world.node(0)
    store = world.control.store
    registered = store.cluster_state().nodes[node.uuid]
    store.register_node(registered.__class__(uuid=node.uuid, host="h", era="restored-era"))
    world.clock.advance(2)
    calls = world.calls_since(0)
    assert calls.count("register_node") == 1 and node.loop.phase is Phase.BACKING_OFF
    world.clock.advance(1)
    assert world.client.calls.count("register_node") == 2
    assert store.cluster_state().nodes[node.uuid].era == "era-0"
    assert store.cluster_state().reports[node.uuid].era == "era-0"
    assert node.loop.phase is Phase.WAITING


def test_failed_change_is_retried_by_a_later_pass():
    """A failing attach backs its dataset off (not the loop), and a later pass mounts."""
    world = World()
    node = world.node(0)
    world.storage.inject_failure("attach_volume", RuntimeError("SAN hiccup"))
    dataset_id = world.create(node)
    assert node.loop.phase is Phase.WAITING and not node.mounted(dataset_id)
    world.clock.advance(1)
    assert node.mounted(dataset_id)


def test_stop_while_waiting_cancels_the_watch():
    """Stopping an idle loop ends it at once, leaving no timer behind."""
    world = World()
    node = world.node(0)
    stopped: list[object] = []
    node.loop.stop().addCallback(stopped.append)
    assert stopped == [None] and node.loop.phase is Phase.STOPPED
    mark = len(world.client.calls)
    world.clock.advance(100)
    assert world.calls_since(mark) == []


def test_stop_waits_for_the_change_in_flight():
    """A stop during a mount waits for the mount to finish and starts nothing after it."""
    world = World()
    held: list[tuple[Deferred, Callable[[], Any]]] = []

    def runner(f: Callable[..., Any], *args: Any) -> Deferred:
        if isinstance(args[0], MountFilesystem):
            d: Deferred = Deferred()
            held.append((d, lambda: f(*args)))
            return d
        return Deferred.fromCoroutine(_call(f, *args))

    node = world.node(0, runner)
    dataset_id = world.create(node)
    assert len(held) == 1 and node.loop.phase is Phase.CONVERGING
    stopped: list[object] = []
    node.loop.stop().addCallback(stopped.append)
    assert stopped == [] and node.loop.phase is Phase.STOPPING
    mark = len(world.client.calls)
    d, action = held[0]
    d.callback(action())
    assert stopped == [None] and node.loop.phase is Phase.STOPPED
    assert node.mounted(dataset_id)
    assert world.calls_since(mark) == []


async def _call(f: Callable[..., Any], *args: Any) -> Any:
    return f(*args)


def test_never_touches_a_volume_it_was_not_told_about():
    """A volume of an unknown dataset attached here is reported but left alone."""
    world = World()
    stranger = world.storage
    node_uuid = UUID(int=1)
    backend = FakeBlockDeviceAPI(stranger, CLUSTER, str(node_uuid))
    volume = backend.create_volume(uuid4(), MINIMUM_DATASET_SIZE)
    backend.attach_volume(volume.blockdevice_id, str(node_uuid))
    node = world.node(0)
    assert backend.list_volumes()[0].attached_to == str(node_uuid)
    reports = world.control.store.cluster_state().reports
    assert volume.dataset_id in reports[node.uuid].datasets
    assert node.loop.phase is Phase.WAITING


def test_idle_agent_is_not_woken_by_other_nodes_reports():
    """Only an agent waiting on another node watches the state version: no thundering herd."""
    world = World()
    node = world.node(0)
    other = UUID(int=99)
    world.client.inner.register_node(other, "elsewhere", "era-x", {})
    passes = node.loop.passes
    volume = {"dataset_id": uuid4(), "status": VolumeStatus.ATTACHED}
    world.client.inner.report_state(
        NodeState(node_uuid=other, datasets={volume["dataset_id"]: DatasetState(**volume)})
    )
    assert node.loop.passes == passes
    world.clock.advance(2.1)  # the service's heartbeat
    assert node.loop.passes == passes + 1


def test_old_primary_watch_no_longer_names_a_dataset_it_let_go():
    """Once a moved dataset's volume is detached (and its new primary known), the old primary's
    watch names the datasets its next pass asks about: not that one, whose changes concern it
    no more."""
    world = World()
    watched: list[tuple[Any, ...]] = []
    watch = world.client.inner.watch

    def recording(*args: Any) -> Deferred:
        watched.append(args)
        return watch(*args)

    world.client.inner.watch = recording  # type: ignore[method-assign]
    one, two = world.node(0), world.node(1)
    dataset_id = world.create(one)
    assert any(dataset_id in args[4] for args in watched if args[3] == one.uuid)
    world.client.inner.move_dataset(dataset_id, two.uuid)
    assert two.mounted(dataset_id) and not one.mounted(dataset_id)
    last = [args for args in watched if args[3] == one.uuid][-1]
    assert dataset_id not in last[4]


def test_refetches_the_configuration_only_when_its_generation_moved():
    """A heartbeat pass reuses the records in hand; a configuration change fetches anew."""
    world = World()
    node = world.node(0)
    mark = len(world.client.calls)
    world.clock.advance(5.1)
    assert "report_state" in world.calls_since(mark)
    assert "node_configuration" not in world.calls_since(mark)
    mark = len(world.client.calls)
    dataset_id = world.create(node)
    assert node.mounted(dataset_id)
    assert "node_configuration" in world.calls_since(mark)


def test_stop_abandons_a_control_service_call_that_hangs():
    """A registration the service never answers does not hold up a stop."""
    world = World()
    hanging: list[Deferred] = []

    def never(*args: Any) -> Deferred:
        d: Deferred = Deferred()
        hanging.append(d)
        return d

    world.client.inner.register_node = never  # type: ignore[method-assign]
    node = world.node(0)
    assert node.loop.phase is Phase.REGISTERING and len(hanging) == 1
    stopped: list[object] = []
    node.loop.stop().addCallback(stopped.append)
    assert stopped == [None] and node.loop.phase is Phase.STOPPED
    assert world.clock.getDelayedCalls() == []


def test_a_hanging_call_times_out_and_backs_off():
    """A call unanswered for call_timeout seconds fails and is retried after a backoff."""
    world = World()
    answers: list[Deferred] = []
    register = world.client.inner.register_node

    def first_hangs(*args: Any) -> Deferred:
        if not answers:
            d: Deferred = Deferred()
            answers.append(d)
            return d
        return register(*args)

    world.client.inner.register_node = first_hangs  # type: ignore[method-assign]
    node = world.node(0)
    world.clock.advance(29.9)
    assert node.loop.phase is Phase.REGISTERING
    world.clock.advance(0.11)  # the timeout at 30.0; the first backoff is 0.05-0.1 s
    assert node.loop.phase is Phase.BACKING_OFF
    world.clock.advance(1)
    assert node.loop.phase is Phase.WAITING


class LaggingAttach(FakeBlockDeviceAPI):
    """A backend whose attach is acknowledged but not visible until ``visible`` is set."""

    visible = False

    def attach_volume(self, blockdevice_id: str, attach_to: str, epoch: int = 0) -> Any:
        """Acknowledge; really attach only once visible."""
        if self.visible:
            return super().attach_volume(blockdevice_id, attach_to, epoch)
        return None


def test_an_action_without_visible_effect_backs_off_instead_of_spinning():
    """Repeating the same decision on the same observation waits, growing, not a hot loop."""
    world = World()
    node = world.node(0)
    lagging = LaggingAttach(world.storage, CLUSTER, str(node.uuid))
    node.loop.executor = Executor(lagging, node.filesystems, synchronous_runner)
    node.loop.instance_id = lagging.compute_instance_id()
    dataset_id = world.create(node)
    assert node.loop.phase is Phase.WAITING and not node.mounted(dataset_id)
    passes = node.loop.passes
    assert passes < 6
    world.clock.advance(0.07)
    assert node.loop.passes == passes
    world.clock.advance(0.01)
    assert node.loop.passes == passes + 1
    LaggingAttach.visible = True
    try:
        world.clock.pump([0.05] * 20)
        assert node.mounted(dataset_id)
    finally:
        LaggingAttach.visible = False


def test_an_impossible_dataset_reports_why_and_does_not_slow_the_others():
    """A too-large create is reported as a permanent condition; a good dataset beside it mounts."""
    world = World()
    world.storage.largest_volume = MINIMUM_DATASET_SIZE
    node = world.node(0)
    bad: list[Any] = []
    world.client.inner.create_dataset(node.uuid, 2 * MINIMUM_DATASET_SIZE).addCallback(bad.append)
    bad_id = bad[0].dataset_id
    world.clock.advance(0.1)
    good_id = world.create(node)
    assert node.mounted(good_id) and not node.mounted(bad_id)
    assert world.clock.seconds() == 0.1
    report = world.control.store.cluster_state().reports[node.uuid]
    (condition,) = report.conditions_of(bad_id)
    assert (condition.step, condition.reason, condition.permanent) == ("create", "too_large", True)
    assert condition.message == "create failed: File too large"
    assert node.loop.phase is Phase.WAITING and node.loop.failures == 0


def test_a_failing_dataset_is_retried_with_growing_attempts():
    """The always-failing create is tried again after its own backoff, counting attempts."""
    world = World()
    world.storage.largest_volume = MINIMUM_DATASET_SIZE
    node = world.node(0)
    world.client.inner.create_dataset(node.uuid, 2 * MINIMUM_DATASET_SIZE)
    world.clock.pump([1.0] * 120)
    report = world.control.store.cluster_state().reports[node.uuid]
    (condition,) = report.conditions
    assert condition.attempts >= 4 and condition.since == 0
