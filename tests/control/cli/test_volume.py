"""``shoal volume orphans`` and ``shoal volume destroy``."""

from __future__ import annotations

import json

import pytest

from control.model import NodeState, OrphanVolume

from .harness import CLI, DATASET_1, NODE_1, GiB


@pytest.fixture
def cli() -> CLI:
    """node1 reports one orphaned volume of a dataset that has no record."""
    cli = CLI()
    cli.register(NODE_1, "node1")
    report = NodeState(
        NODE_1, cli.eras[NODE_1], 0, orphans=[OrphanVolume("vol-1", DATASET_1, GiB)]
    )
    cli.wait(cli.client.report_state(report))
    return cli


def test_orphans_table_and_json(cli: CLI) -> None:
    """Orphans show their volume id, dataset, size and the node that sees them."""
    result = cli("volume", "orphans")
    assert result.code == 0
    assert [line.split() for line in result.out.splitlines()] == [
        ["VOLUME", "DATASET", "SIZE", "SEEN", "BY"],
        ["vol-1", str(DATASET_1), "1G", "node1"],
    ]
    listed = json.loads(cli("volume", "orphans", "--json").out)
    assert listed == [
        {"node_uuid": str(NODE_1), "blockdevice_id": "vol-1", "dataset_id": str(DATASET_1),
         "size": GiB}
    ]


def test_destroy(cli: CLI) -> None:
    """Destroy records the dataset deleted on the node that sees the volume; then none is left."""
    result = cli("volume", "destroy", "vol-1")
    assert result.code == 0 and "will be destroyed by node1" in result.out
    record = json.loads(cli("volume", "destroy", "vol-1", "--json").out)
    assert (record["primary"], record["deleted"]) == (str(NODE_1), True)
    assert cli("volume", "orphans", "--json").out.strip() == "[]"
    missing = cli("volume", "destroy", "vol-2")
    assert missing.code == 1 and "No node reports an orphaned volume 'vol-2'" in missing.err
