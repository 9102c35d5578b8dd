"""An idle pass derives from the very same observation and records only once, and sees
any change at once (issue 16: agent.lastcall and the loop's healthy report)."""

from __future__ import annotations

from agent.testing import SimulatedCluster

GiB = 1024**3


def reasons(cluster: SimulatedCluster, index: int) -> set[str]:
    """The reasons of the conditions in node ``index``'s last report."""
    report = cluster.nodes[index].loop.memory.last_report
    assert report is not None
    return {c.reason for c in report.conditions}


def idle_cluster() -> SimulatedCluster:
    """One node holding two datasets, converged, on storage of 100 GiB."""
    cluster = SimulatedCluster(1)
    cluster.storage.total = 100 * GiB
    cluster.create(0)
    cluster.create(0)
    cluster.converge(20)
    cluster.round(check=False)
    return cluster


def test_idle_passes_reuse_what_they_derive() -> None:
    """Two idle passes over the same observation and records derive the records by id and
    the datasets to ask about once, and the second skips the health check."""
    cluster = idle_cluster()
    loop = cluster.nodes[0].loop
    cluster.round(check=False)
    desired, asking = loop._desired._result, loop._asking._result
    cluster.round(check=False)
    assert loop._desired._result is desired and loop._asking._result is asking
    assert loop._healthy is not None
    assert reasons(cluster, 0) == set()


def test_a_health_condition_is_reported_at_once() -> None:
    """Storage running low after idle passes is reported by the next pass, and its end too."""
    cluster = idle_cluster()
    for _ in range(2):
        cluster.round(check=False)
    cluster.storage.total = cluster.storage.used() + GiB // 100  # under 10% free
    cluster.round(check=False)
    assert "pool_low" in reasons(cluster, 0)
    cluster.round(check=False)
    assert "pool_low" in reasons(cluster, 0)
    cluster.storage.total = 100 * GiB
    cluster.round(check=False)
    assert "pool_low" not in reasons(cluster, 0)


def test_a_new_record_is_derived_afresh() -> None:
    """A dataset created while idle is in the next pass's records by id."""
    cluster = idle_cluster()
    loop = cluster.nodes[0].loop
    cluster.round(check=False)
    created = cluster.create(0)
    cluster.converge(20)
    assert created in loop._desired._result
