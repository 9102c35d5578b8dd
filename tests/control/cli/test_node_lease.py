"""``shoal node list`` and ``shoal lease ...``."""

from __future__ import annotations

import json

from control.model import Capacity, NodeState

from .harness import CLI, DATASET_1, NODE_1, NODE_2, START, GiB


def cluster() -> CLI:
    """Two nodes, one of them silent for a minute, and one dataset."""
    cli = CLI()
    cli.register(NODE_2, "node2", rack="r2")
    cli.clock.advance(60)
    cli.register(NODE_1, "node1")
    cli.create(DATASET_1, NODE_1, "db")
    return cli


def test_node_list_table() -> None:
    """Nodes show host, uuid, labels, era, liveness, fence, drain and when last seen."""
    result = cluster()("node", "list")
    assert result.code == 0
    assert [line.split() for line in result.out.splitlines()] == [
        ["NAME", "HOST", "UUID", "LABELS", "ERA", "STATUS", "LIVENESS", "FENCED", "DRAINING",
         "LAST", "SEEN", "CAPACITY", "SNAPSHOTS"],
        ["node1", "node1", str(NODE_1), "-", "era-node1", "live", "live", "-", "-", "0s", "ago",
         "-", "-"],
        ["node2", "node2", str(NODE_2), "rack=r2", "era-node2", "not", "live", "dead", "-", "-",
         "1m", "ago", "-", "-"],
    ]


def test_node_list_shows_snapshot_method() -> None:
    """A node that reported its capacity shows how its backend makes snapshots."""
    cli = cluster()
    capacity = Capacity(backend="loopback", total=20 * GiB, free=12 * GiB, shared=False,
                        snapshot_method="reflink")
    cli.wait(cli.client.report_state(NodeState(NODE_1, cli.eras.get(NODE_1), capacity=capacity)))
    out = cli("node", "list").out
    lines = [line.split() for line in out.splitlines()]
    assert lines[1][0] == "node1" and lines[1][-1] == "reflink"
    assert "loopback 12G free of 20G, node-local" in out
    listed = json.loads(cli("node", "list", "--json").out)
    assert listed[0]["capacity"]["snapshot_method"] == "reflink"


def test_node_list_json() -> None:
    """``--json`` prints what the API says about each node."""
    nodes = json.loads(cluster()("node", "list", "--json").out)
    assert [(n["host"], n["live"], n["last_seen"]) for n in nodes] == [
        ("node1", True, START + 60),
        ("node2", False, START),
    ]


def test_lease_cycle() -> None:
    """A lease is acquired by node name, listed with its expiry, renewed and released."""
    cli = cluster()
    acquired = cli("lease", "acquire", "db", "--node", "node1", "--expires", "90")
    assert acquired.out == f"acquired lease on dataset {DATASET_1} for node1, expiring in 1m\n"
    listed = cli("lease", "list").out.splitlines()
    assert listed[1].split() == [str(DATASET_1), "db", "node1", "in", "1m"]
    renewed = json.loads(cli("lease", "acquire", "db", "--node", "node1", "--json").out)
    assert (renewed["created"], renewed["expires"]) == (False, None)
    released = cli("lease", "release", "db")
    assert released.code == 0
    assert released.out == f"released lease on dataset {DATASET_1} held by node1\n"
    assert json.loads(cli("lease", "list", "--json").out) == []


def test_lease_conflict() -> None:
    """A lease held by another node is refused with the service's explanation."""
    cli = cluster()
    cli("lease", "acquire", "db", "--node", "node1")
    result = cli("lease", "acquire", "db", "--node", "node2")
    assert result.code == 1
    assert result.err.startswith(f"error: Cannot lease dataset {DATASET_1}: node node1 ({NODE_1})")
    assert f"`shoal lease release {DATASET_1}`" in result.err


def test_release_without_lease() -> None:
    """Releasing when nothing is leased is an error."""
    result = cluster()("lease", "release", "db")
    expected = f"error: Dataset {DATASET_1} has no lease to release.\n"
    assert (result.code, result.err) == (1, expected)


def test_lease_with_move() -> None:
    """``--move`` leases the dataset to the node and makes that node its primary."""
    cli = CLI()
    cli.register(NODE_1, "node1")
    cli.register(NODE_2, "node2")
    cli.create(DATASET_1, NODE_1, "db")
    result = cli("lease", "acquire", "db", "--node", "node2", "--move")
    assert (result.code, result.err) == (0, "")
    assert result.out == (f"acquired lease on dataset {DATASET_1} for node2, expiring never; "
                          "node2 is its primary\n")
    (dataset,) = cli.wait(cli.client.list_datasets()).datasets
    assert dataset.primary == NODE_2
