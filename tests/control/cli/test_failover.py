"""``shoal node fence|unfence|drain|list`` and ``shoal dataset failover``."""

from __future__ import annotations

import json

from .harness import CLI, DATASET_1, NODE_1, NODE_2


def cluster() -> CLI:
    """Two live nodes and one dataset on node1."""
    cli = CLI()
    cli.register(NODE_1, "node1")
    cli.register(NODE_2, "node2")
    cli.create(DATASET_1, NODE_1, "db")
    return cli


def test_fence_shows_in_list_and_unfence() -> None:
    """A fenced node is listed as fenced with its reason, and unfenced again."""
    cli = cluster()
    fenced = cli("node", "fence", "node1", "--reason", "disk replaced")
    assert fenced.code == 0
    assert fenced.out.startswith(f"node node1 ({NODE_1}) is fenced: disk replaced")
    listed = cli("node", "list").out.splitlines()
    assert "FENCED" in listed[0] and "disk replaced" in listed[1]
    nodes = json.loads(cli("node", "list", "--json").out)
    fence = nodes[0]["fence"]
    assert (fence["reason"], fence["automatic"]) == ("disk replaced", False)
    assert nodes[0]["liveness"] == "live"
    assert cli("node", "unfence", "node1").out == f"node node1 ({NODE_1}) is no longer fenced\n"
    assert json.loads(cli("node", "list", "--json").out)[0]["fence"] is None


def test_drain_and_undo() -> None:
    """Draining shows in the list; --undo stops it; --json answers the node."""
    cli = cluster()
    assert "is draining" in cli("node", "drain", "node2").out
    assert json.loads(cli("node", "list", "--json").out)[1]["draining"] is True
    undone = json.loads(cli("node", "drain", "node2", "--undo", "--json").out)
    assert undone["draining"] is False


def test_unknown_node_refused() -> None:
    """An unknown node is named in the error, with a non-zero status."""
    result = cluster()("node", "fence", "nosuch")
    assert result.code != 0 and "nosuch" in result.err


def test_dataset_failover_options() -> None:
    """``--off --grace`` sets both; ``--default`` goes back; a bad grace is a usage error."""
    cli = cluster()
    off = cli("dataset", "failover", "db", "--off", "--grace", "30")
    assert off.out == f"dataset {DATASET_1}: failover off; it fails over after 30 s of silence " \
        "of its node\n"
    back = json.loads(cli("dataset", "failover", "db", "--default", "--json").out)
    assert (back["enabled"], back["grace"], back["effective_grace"]) == (None, None, 10.0)
    assert cli("dataset", "failover", "db", "--on", "--grace", "-1").code == 2
    shown = json.loads(cli("dataset", "failover", "db", "--json").out)
    assert (shown["enabled"], shown["epoch"], shown["effective_grace"]) == (None, 0, 10.0)
    lone = cli("dataset", "failover", "db", "--grace", "30")
    assert lone.code == 2 and "--grace goes with" in lone.err


def test_show_has_failover_line() -> None:
    """``shoal dataset show`` says the failover option, its grace and the epoch."""
    cli = cluster()
    cli("dataset", "failover", "db", "--off")
    cli("dataset", "move", "db", "--to", "node2")
    shown = cli("dataset", "show", "db").out
    assert "failover:  off, after 10s silent (epoch 1)" in shown
    document = json.loads(cli("dataset", "show", "db", "--json").out)
    assert (document["failover"]["enabled"], document["failover"]["epoch"]) == (False, 1)
