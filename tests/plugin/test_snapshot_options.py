"""The Create options ``from-snapshot``, ``clone-of`` and ``fs``: parsed, and carried out."""

from __future__ import annotations

from uuid import uuid4

import pytest

from control.errors import Conflict, InvalidRequest, NotFound
from control.model import Dataset, DatasetSnapshot, NodeState, ReportedSnapshot, SourceKind
from plugin import rules

from .harness import NODE1, NODE2, Cluster, failure, make_cluster, result, start

GiB = 1024**3


def test_parse_source_options() -> None:
    """The options are read; a copy without size takes its source's, not the default."""
    options = rules.parse_create_options({"from-snapshot": "nightly", "fs": "xfs"}, GiB)
    assert options == rules.CreateOptions(None, False, "nightly", None, "xfs")
    clone = rules.parse_create_options({"clone-of": "db", "size": "2G"}, GiB)
    assert clone == rules.CreateOptions(2 * GiB, True, None, "db", None)
    assert rules.parse_create_options({"fs": "ext4"}, GiB).size == GiB


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"from-snapshot": "a", "clone-of": "b"}, "not both"),
        ({"fs": "btrfs"}, "not one of: ext4, xfs"),
        ({"clone-of": ""}, "non-empty string"),
    ],
)
def test_bad_source_options_refused(opts: dict[str, str], message: str) -> None:
    """Both sources, an unknown filesystem or an empty name are refused with the reason."""
    with pytest.raises(InvalidRequest, match=message):
        rules.parse_create_options(opts, None)


def test_find_snapshot_only_live_ones() -> None:
    """A deleted snapshot's name finds nothing, with how to list them."""
    dead = DatasetSnapshot(uuid4(), "old", uuid4(), 0.0, uuid4(), deleted=True)
    with pytest.raises(NotFound, match="shoal snapshot list"):
        rules.find_snapshot([dead], "old")


@pytest.fixture
def cluster() -> Cluster:
    """Two nodes with a plugin service each."""
    return make_cluster()


def _volume(cluster: Cluster, name: str) -> Dataset:
    return next(d for d in cluster.datasets() if d.metadata.get("name") == name)


def test_restore_and_clone_volumes(cluster: Cluster) -> None:
    """``-o from-snapshot`` restores on this node; ``-o clone-of`` clones where the source is."""
    result(cluster.services[NODE1].create("db", {"size": "1G"}))
    source = _volume(cluster, "db")
    snapshot = result(cluster.client.create_snapshot(source.dataset_id, "nightly"))
    early = failure(start(cluster.services[NODE2].create("restored", {"from-snapshot": "nightly"})))
    assert isinstance(early, Conflict) and "not ready yet" in early.description
    made = (ReportedSnapshot(snapshot.snapshot_id, GiB),)
    node1 = next(n for n in cluster.control.store.nodes() if n.uuid == NODE1)
    era = node1.era
    generation = cluster.control.store.versions().configuration
    result(cluster.client.report_state(NodeState(NODE1, era, generation, snapshots=made)))
    result(cluster.services[NODE2].create("restored", {"from-snapshot": "nightly"}))
    result(cluster.services[NODE2].create("cloned", {"clone-of": "db", "size": "2G"}))
    configuration = result(cluster.client.node_configuration(NODE2)).datasets
    [restored] = [d for d in configuration if d.name == "restored"]
    assert restored.source is not None and restored.source.kind is SourceKind.SNAPSHOT
    assert restored.maximum_size == GiB
    clones = result(cluster.client.node_configuration(NODE1)).datasets
    [clone] = [d for d in clones if d.name == "cloned"]
    assert clone.source is not None
    assert (clone.source.source_id, clone.maximum_size) == (source.dataset_id, 2 * GiB)


def test_xfs_volume_and_unknown_sources(cluster: Cluster) -> None:
    """``-o fs=xfs`` makes an XFS volume here; unknown sources create nothing (404)."""
    result(cluster.services[NODE2].create("xfsvol", {"fs": "xfs"}))
    [xfs] = result(cluster.client.node_configuration(NODE2)).datasets
    assert (xfs.name, xfs.filesystem) == ("xfsvol", "xfs")
    for opts in ({"from-snapshot": "none"}, {"clone-of": "none"}):
        assert isinstance(failure(start(cluster.services[NODE1].create("nothing", opts))), NotFound)
    assert [d.name for d in cluster.datasets()] == ["xfsvol"]
