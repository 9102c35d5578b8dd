"""``shoal snapshot ...``, ``shoal dataset create --from-snapshot/--clone-of/--fs`` and
``shoal dataset resize`` against the real API in memory."""

from __future__ import annotations

import json

import pytest
from attrs import evolve

from control.model import NodeState, ReportedSnapshot, VolumeStatus

from .harness import CLI, DATASET_1, NODE_1, NODE_2, GiB


@pytest.fixture
def cli() -> CLI:
    """Two nodes; dataset ``db`` (1G) on node1."""
    cli = CLI()
    cli.register(NODE_1, "node1")
    cli.register(NODE_2, "node2")
    cli.create(DATASET_1, NODE_1, "db")
    return cli


def _made(cli: CLI, name: str = "nightly") -> str:
    """Have node1 report the snapshot ``name`` made; returns its id."""
    [snapshot] = [s for s in cli.wait(cli.client.list_snapshots()) if s.name == name]
    generation = cli.control.store.versions().configuration
    report = NodeState(NODE_1, cli.eras[NODE_1], generation,
                       snapshots=(ReportedSnapshot(snapshot.snapshot_id, GiB),))
    cli.wait(cli.client.report_state(report))
    return str(snapshot.snapshot_id)


def test_create_list_show_delete(cli: CLI) -> None:
    """A snapshot is made by name of the dataset, listed, shown and deleted by its name."""
    created = cli("snapshot", "create", "db", "--name", "nightly")
    assert created.code == 0, created.err
    assert "status:      pending" in created.out and "snapshot 'nightly'" in created.out
    _made(cli)
    header, row = cli("snapshot", "list", "db").out.splitlines()
    assert header.split() == ["NAME", "SNAPSHOT", "DATASET", "SIZE", "STATUS", "NODE", "CREATED"]
    assert row.split()[0] == "nightly" and "ready" in row and "1G" in row
    assert "status:      ready" in cli("snapshot", "show", "nightly").out
    deleted = cli("snapshot", "delete", "nightly")
    assert deleted.code == 0 and "Datasets restored from it are not touched" in deleted.out
    assert "deleting" in cli("snapshot", "list").out


def test_json_output(cli: CLI) -> None:
    """``--json`` prints snapshot records."""
    made = json.loads(cli("--json", "snapshot", "create", "db", "--name", "n1").out)
    assert (made["name"], made["ready"]) == ("n1", False)
    assert json.loads(cli("snapshot", "list", "--json").out) == [made]
    assert json.loads(cli("snapshot", "show", made["snapshot_id"][:8], "--json").out) == made


def test_create_wait_until_ready(cli: CLI) -> None:
    """``--wait`` returns once the node reports the snapshot made."""
    cli("snapshot", "create", "db", "--name", "nightly")
    _made(cli)
    result = cli("snapshot", "create", "db", "--name", "nightly", "--wait")
    assert result.code == 0 and "status:      ready" in result.out


def test_wait_times_out(cli: CLI) -> None:
    """``--wait`` gives up after the timeout, saying what it waited for."""
    result = cli("snapshot", "create", "db", "--name", "slow", "--wait", "--timeout", "5")
    assert result.code == 1 and "Timed out after 5s waiting for snapshot 'slow'" in result.err


def test_refusals_are_sentences(cli: CLI) -> None:
    """An unknown dataset, a name of another dataset's snapshot: clear errors, status 1."""
    assert "No dataset 'nope'" in cli("snapshot", "create", "nope").err
    cli.create(NODE_2, NODE_1, "other")
    cli("snapshot", "create", "db", "--name", "nightly")
    clash = cli("snapshot", "create", "other", "--name", "nightly")
    assert clash.code == 1 and "choose another name" in clash.err


def test_restore_from_snapshot_and_clone(cli: CLI) -> None:
    """Restore by snapshot name (refused until ready), and clone by dataset name, larger."""
    cli("snapshot", "create", "db", "--name", "nightly")
    early = cli("dataset", "create", "--from-snapshot", "nightly", "--meta", "name=r")
    assert early.code == 1 and "not ready yet; wait for it" in early.err
    _made(cli)
    restored = cli("--json", "dataset", "create", "--from-snapshot", "nightly", "--size", "2G",
                   "--meta", "name=r")
    assert restored.code == 0, restored.err
    assert "restored from snapshot" in restored.err
    assert json.loads(restored.out)["dataset"]["maximum_size"] == 2 * GiB
    clone = cli("dataset", "create", "--clone-of", "db", "--node", "node2", "--meta", "name=c")
    assert clone.code == 0 and "on node2 (cloned from dataset" in clone.out
    small = cli("dataset", "create", "--clone-of", "db", "--size", "64M")
    assert small.code == 1 and "--size 64 MiB" in small.err and "never smaller" in small.err


def test_create_with_xfs(cli: CLI) -> None:
    """``--fs xfs`` makes an XFS dataset; sources are one or the other."""
    assert cli("dataset", "create", "--node", "node2", "--fs", "xfs").code == 0
    datasets = cli.wait(cli.control.client.node_configuration(NODE_2)).datasets
    assert [d.filesystem for d in datasets] == ["xfs"]
    both = cli("dataset", "create", "--from-snapshot", "a", "--clone-of", "b")
    assert both.code == 2 and "not allowed with argument" in both.err


def test_resize_and_wait(cli: CLI) -> None:
    """Resize grows; ``--wait`` returns once the primary reports the new size; smaller refused."""
    cli.report(NODE_1, (DATASET_1, VolumeStatus.MOUNTED))
    result = cli("dataset", "resize", "db", "--size", "2G", "--wait", "--timeout", "5")
    assert result.code == 1 and "to grow to 2G on node1 (it reports 1G)" in result.err
    state = cli.control.store.cluster_state().reports[NODE_1]
    grown = {DATASET_1: evolve(state.datasets[DATASET_1], maximum_size=2 * GiB)}
    generation = cli.control.store.versions().configuration
    cli.wait(cli.client.report_state(evolve(state, datasets=grown, generation=generation)))
    done = cli("dataset", "resize", "db", "--size", "2G", "--wait")
    assert done.code == 0 and "size:      2G" in done.out
    smaller = cli("dataset", "resize", "db", "--size", "1G")
    assert smaller.code == 1 and "--size 1 GiB is smaller" in smaller.err
    assert "only grow" in smaller.err
