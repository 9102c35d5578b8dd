"""``shoal events`` against the real API in memory."""

from __future__ import annotations

import json

import pytest

from control.model import VolumeStatus

from .harness import CLI, DATASET_1, DATASET_2, NODE_1, NODE_2


@pytest.fixture
def cli() -> CLI:
    """A two-node cluster."""
    cli = CLI()
    cli.register(NODE_1, "node1")
    cli.register(NODE_2, "node2")
    return cli


def test_events_lists_history_with_names(cli: CLI) -> None:
    """Each event is a line with its kind, dataset name, node name and message."""
    cli.create(DATASET_1, NODE_1, "db")
    cli.report(NODE_1, (DATASET_1, VolumeStatus.MOUNTED))
    result = cli("events")
    assert result.code == 0, result.err
    kinds = [line.split()[1:4] for line in result.out.splitlines()]
    assert kinds == [["created", "db", "node1"], ["attached", "db", "node1"],
                     ["mounted", "db", "node1"]]
    assert "filesystem mounted on node1 (by node1)" in result.out


def test_events_filter_by_dataset_and_node_as_json(cli: CLI) -> None:
    """--dataset and --node filter; --json prints the events as a list."""
    cli.create(DATASET_1, NODE_1, "db")
    cli.create(DATASET_2, NODE_2, "web")
    docs = json.loads(cli("events", "--dataset", "web", "--json").out)
    assert [(d["kind"], d["dataset_id"]) for d in docs] == [("created", str(DATASET_2))]
    docs = json.loads(cli("events", "--node", "node1", "--json").out)
    assert [d["dataset_id"] for d in docs] == [str(DATASET_1)]


def test_follow_prints_new_events_as_they_happen(cli: CLI) -> None:
    """--follow wakes on the watch and prints each new event once, until --timeout."""
    cli.create(DATASET_1, NODE_1, "db")
    cli.clock.callLater(3, cli.report, NODE_1, (DATASET_1, VolumeStatus.ATTACHED))
    cli.clock.callLater(7, cli.client.move_dataset, DATASET_1, NODE_2)
    result = cli("events", "--follow", "--timeout", "20", "--json")
    assert result.code == 0, result.err
    kinds = [json.loads(line)["kind"] for line in result.out.splitlines()]
    assert kinds == ["created", "attached", "moved"]


def test_events_refuses_unknown_dataset(cli: CLI) -> None:
    """An unknown dataset name is refused with a hint."""
    result = cli("events", "--dataset", "nope")
    assert result.code == 1 and "shoal dataset list" in result.err
