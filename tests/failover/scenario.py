"""
Steps the failover scenarios (and ``bench/failover.py``) share: a dataset with a writer,
the checks of what reached the new node, and the return of a fenced node.
"""

from __future__ import annotations

import os
from uuid import UUID

from agent.backends.loopdev import devices_backed_by
from tests.agent.functional.cluster import AgentProcess
from tests.failover.harness import FailoverCluster, wait_for
from tests.failover.records import RecordCheck, WriterLog, check_records, durable_problems
from tests.failover.writer import WriterProcess

RECORDS_BEFORE_FAULT = 20
"""Records fsynced before a fault is injected."""


def writing(cluster: FailoverCluster, agent: AgentProcess) -> tuple[UUID, WriterProcess]:
    """A new dataset mounted on ``agent`` with a writer that has fsynced some records."""
    dataset_id = cluster.create(agent)
    cluster.wait_mounted(dataset_id, agent)
    writer = cluster.writer(dataset_id, agent)
    wait_for(lambda: writer.log().last_fsynced >= RECORDS_BEFORE_FAULT, 30, "records fsynced")
    return dataset_id, writer


def records_on(agent: AgentProcess, dataset_id: UUID, writer: WriterProcess) -> RecordCheck:
    """What the copy of the writer's file on ``agent``'s mount holds."""
    name = os.path.basename(writer.path)
    with open(os.path.join(agent.mount_path(dataset_id), name), "rb") as f:
        return check_records(writer.seed, f.read())


def check_arrived(
    cluster: FailoverCluster, dataset_id: UUID, writer: WriterProcess, target: AgentProcess,
    newest: int | None = None, racing: bool = False,
) -> WriterLog:
    """Kill the writer and check what reached ``target``: every fsynced record, nothing later.

    Also checks that no fsync of the writer returned once ``target`` had the
    dataset mounted, and that the checker saw none while another filesystem
    of the dataset was writable. ``racing``: the writer ran on while its
    filesystem was shut down (see :func:`durable_problems`). Returns the writer's log.
    """
    writer.kill()
    log = writer.log()
    problems = durable_problems(log, records_on(target, dataset_id, writer), newest, racing)
    assert problems == [], problems
    mounted = cluster.checker.mounted_under(dataset_id, target.mount_root)
    assert mounted, f"the checker never saw {dataset_id} mounted on {target.name}"
    late = log.fsynced_after(mounted[0].first)
    if newest is not None:
        # A record in flight when the writer was frozen may be logged only once it
        # runs again; whether it reached ``target`` is what durable_problems checked.
        late = [number for number in late if number > newest]
    assert late == []
    assert cluster.checker.writer_overlaps(log, dataset_id) == []
    return log


def returns_clean(cluster: FailoverCluster, agent: AgentProcess, dataset_id: UUID) -> None:
    """The fenced node runs again: it cleans up, is unfenced by the service, mounts nothing."""
    if agent.process is None or agent.process.poll() is not None:
        agent.start()
    wait_for(lambda: not cluster.fenced(agent), 60, f"{agent.name} unfenced")
    wait_for(lambda: not os.path.ismount(agent.mount_path(dataset_id)), 30,
             f"{agent.name}'s old mount gone")
    wait_for(lambda: len(devices_backed_by(cluster.volume_path(dataset_id))) == 1, 30,
             f"{agent.name}'s fenced loop device detached")
    unfenced = cluster.events("node_unfenced", node=agent.uuid)
    assert unfenced and unfenced[-1]["actor"] == "failover"


def assert_failed_over_once(
    cluster: FailoverCluster, dataset_id: UUID, old: AgentProcess, new: AgentProcess
) -> None:
    """One automatic fence of ``old``, one failover to ``new``, the epoch grown by one."""
    fences = cluster.events("node_fenced", node=old.uuid)
    assert [e["actor"] for e in fences] == ["failover"], fences
    moved = cluster.events("failed_over", dataset=dataset_id)
    assert [(e["details"]["from"], e["details"]["to"]) for e in moved] == [
        (str(old.uuid), str(new.uuid))
    ]
    assert cluster.failover(dataset_id)["epoch"] == 1
