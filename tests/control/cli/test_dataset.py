"""``shoal dataset ...`` against the fake client and the real API in memory."""

from __future__ import annotations

import json
from uuid import UUID

import pytest

from control.model import Condition, ConditionKind, VolumeStatus

from .harness import CLI, DATASET_1, DATASET_2, NODE_1, NODE_2, START, GiB

MOUNTED, ATTACHED = VolumeStatus.MOUNTED, VolumeStatus.ATTACHED


@pytest.fixture
def cli() -> CLI:
    """A two-node cluster in memory."""
    cli = CLI()
    cli.register(NODE_1, "node1")
    cli.register(NODE_2, "node2", name="second")
    return cli


def test_list_table(cli: CLI) -> None:
    """The list is an aligned table saying where each dataset actually is."""
    cli.create(DATASET_1, NODE_1, "db")
    cli.create(DATASET_2, NODE_2, None, size=None)
    cli.report(NODE_1, (DATASET_1, MOUNTED))
    result = cli("dataset", "list")
    assert result.code == 0
    header, first, second = result.out.splitlines()
    assert header.split() == ["DATASET", "NAME", "SIZE", "PRIMARY", "STATUS", "PATH"]
    assert first.split() == [str(DATASET_1), "db", "1G", "node1", "mounted", f"/shoal/{DATASET_1}"]
    assert second.split() == [str(DATASET_2), "-", "-", "second", "pending", "-"]
    assert header.index("STATUS") == first.index("mounted") == second.index("pending")


def test_list_json(cli: CLI) -> None:
    """``--json`` prints the configuration and state of each dataset."""
    cli.create(DATASET_1, NODE_1, "db")
    cli.report(NODE_1, (DATASET_1, ATTACHED))
    [doc] = json.loads(cli("dataset", "list", "--json").out)
    assert doc["dataset"]["dataset_id"] == str(DATASET_1)
    assert doc["dataset"]["metadata"] == {"name": "db"}
    assert doc["state"] == {
        "dataset_id": str(DATASET_1), "primary": str(NODE_1), "path": None, "maximum_size": GiB
    }


def test_create(cli: CLI) -> None:
    """Create takes a node by label, a size with a unit, metadata and an id."""
    result = cli("dataset", "create", "--node", "second", "--size", "10G", "--meta", "name=web",
                 "--meta", "tier=gold", "--id", str(DATASET_1))
    assert result.code == 0, result.err
    assert f"created dataset {DATASET_1} on second" in result.out
    assert "size:      10G" in result.out and "status:    pending" in result.out
    [dataset] = cli.wait(cli.client.list_datasets()).datasets
    assert (dataset.primary, dataset.maximum_size) == (NODE_2, 10 * GiB)
    assert dict(dataset.metadata) == {"name": "web", "tier": "gold"}


def test_create_json(cli: CLI) -> None:
    """``--json`` create prints only the JSON document on stdout."""
    result = cli("--json", "dataset", "create", "--node", "node1")
    doc = json.loads(result.out)
    assert doc["dataset"]["primary"] == str(NODE_1)
    assert (doc["state"], doc["lease"]) == (None, None)
    assert "created dataset" in result.err


def test_create_needs_node_choice(cli: CLI) -> None:
    """With several nodes, create asks which one."""
    result = cli("dataset", "create")
    assert result.code == 1
    assert result.err == "error: The cluster has 2 nodes (node1, node2): choose one with --node.\n"


def test_create_single_node_default() -> None:
    """With one node, create uses it."""
    cli = CLI()
    cli.register(NODE_1, "node1")
    assert cli("dataset", "create").code == 0
    assert cli.wait(cli.client.list_datasets()).datasets[0].primary == NODE_1


def test_create_refused_by_service(cli: CLI) -> None:
    """The service's refusal is printed as one line, exit status 1."""
    result = cli("dataset", "create", "--node", "node1", "--size", "1M")
    assert result.code == 1
    assert result.err.startswith("error: The request body is not valid: $.maximum_size: 1048576")
    assert "at least 67108864 (64 MiB)" in result.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dataset", "create", "--size", "lots"], "argument --size: Invalid size 'lots'"),
        (["dataset", "create", "--meta", "novalue"], "expected KEY=VALUE"),
        (["dataset", "create", "--id", "x"], "'x' is not a UUID"),
        (["dataset", "move", "db"], "the following arguments are required: --to"),
        (["dataset", "create", "--timeout", "-1"], "not a positive number"),
    ],
)
def test_usage_errors(cli: CLI, argv: list[str], message: str) -> None:
    """Bad command lines exit 2 with usage and one error line."""
    result = cli(*argv)
    assert result.code == 2
    assert result.err.startswith("usage: shoal dataset")
    assert result.err.splitlines()[-1].startswith("error: ")
    assert message in result.err.splitlines()[-1]


def test_show_by_name_and_prefix(cli: CLI) -> None:
    """A dataset is found by name or id prefix, and shown with its lease."""
    cli.create(DATASET_1, NODE_1, "db")
    cli.wait(cli.client.acquire_lease(DATASET_1, NODE_1, 60))
    by_name = cli("dataset", "show", "db")
    assert by_name.code == 0
    assert "lease:     held by node1 for 60s" in by_name.out
    assert cli("dataset", "show", "1111").out == by_name.out


def test_show_ambiguous_and_unknown(cli: CLI) -> None:
    """An ambiguous prefix lists the candidates; an unknown name says how to list."""
    cli.create(DATASET_1, NODE_1, "a")
    cli.create(DATASET_1.__class__(str(DATASET_1).replace("0001", "0009")), NODE_1, "b")
    ambiguous = cli("dataset", "show", "1111")
    assert ambiguous.code == 1 and "is ambiguous" in ambiguous.err and "(b)" in ambiguous.err
    unknown = cli("dataset", "show", "nope")
    assert unknown.code == 1 and "shoal dataset list" in unknown.err


def test_move_wait_progress(cli: CLI) -> None:
    """``move --wait`` reports each step until the dataset is mounted on the new node."""
    cli.create(DATASET_1, NODE_1, "db")
    cli.report(NODE_1, (DATASET_1, MOUNTED))
    cli.clock.callLater(5, cli.report, NODE_1)
    cli.clock.callLater(6, cli.report, NODE_2, (DATASET_1, ATTACHED))
    cli.clock.callLater(9, cli.report, NODE_2, (DATASET_1, MOUNTED))
    result = cli("dataset", "move", "db", "--to", "node2", "--wait")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[:4] == [
        f"moving dataset {DATASET_1} to second",
        f"waiting for dataset {DATASET_1} to move to second (it is still on node1)",
        f"waiting for dataset {DATASET_1} to appear (no node reports it yet)",
        f"waiting for dataset {DATASET_1} to be mounted on second (it is attached there)",
    ]
    assert "status:    mounted" in result.out


def test_wait_timeout(cli: CLI) -> None:
    """Waiting gives up after ``--timeout``, saying what it still waited for."""
    result = cli("dataset", "create", "--node", "node1", "--id", str(DATASET_1), "--wait",
                 "--timeout", "10")
    assert result.code == 1
    assert result.err == (
        f"error: Timed out after 10s waiting for dataset {DATASET_1} to appear "
        "(no node reports it yet).\n"
    )
    assert cli.clock.seconds() - 1_700_000_000.0 == pytest.approx(10, abs=1)


def test_delete_wait(cli: CLI) -> None:
    """``delete --wait`` returns once no node reports the volume."""
    cli.create(DATASET_1, NODE_1, "db")
    cli.report(NODE_1, (DATASET_1, MOUNTED))
    cli.clock.callLater(3, cli.report, NODE_1)
    result = cli("dataset", "delete", "db", "--wait", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["dataset"]["deleted"] is True
    assert "to be destroyed (it is still on node1)" in result.err


def _too_large(attempts: int = 1) -> Condition:
    return Condition(DATASET_1, ConditionKind.ERROR, "too_large", "create failed: File too large",
                     START - 120, "create", attempts, True)


def _waiting_for(node: UUID) -> Condition:
    return Condition(DATASET_1, ConditionKind.WAITING, "waiting_for_node",
                     f"waiting for node {node} to unmount and detach volume v1", START)


def test_list_status_says_error_or_waiting(cli: CLI) -> None:
    """STATUS shows an agent's error, or a wait with node names put in."""
    cli.create(DATASET_1, NODE_1, "db")
    cli.create(DATASET_2, NODE_2, "web")
    cli.report(NODE_1, conditions=(_too_large(),))
    cli.report(NODE_2, conditions=(
        Condition(DATASET_2, ConditionKind.WAITING, "waiting_for_node",
                  f"waiting for node {NODE_1} to unmount", START),))
    lines = cli("dataset", "list").out.splitlines()
    assert "error: create failed: File too large" in lines[1]
    assert "waiting: waiting for node1 to unmount" in lines[2]
    [first, _] = json.loads(cli("dataset", "list", "--json").out)
    assert first["status"] == "error: create failed: File too large"
    assert first["conditions"][0]["node_uuid"] == str(NODE_1)
    assert first["conditions"][0]["permanent"] is True


def test_show_prints_conditions_and_events(cli: CLI) -> None:
    """show lists each condition with its node, attempts and age, then the latest events."""
    cli.create(DATASET_1, NODE_1, "db")
    cli.report(NODE_1, conditions=(_too_large(3),))
    result = cli("dataset", "show", "db")
    assert result.code == 0, result.err
    assert ("condition: node1: error (create, 3 attempts, for 2m, permanent): "
            "create failed: File too large") in " ".join(result.out.split())
    assert "created" in result.out and "error" in result.out
    doc = json.loads(cli("dataset", "show", "db", "--json").out)
    assert [e["kind"] for e in doc["events"]] == ["created", "error"]
    assert doc["conditions"][0]["reason"] == "too_large"


def test_wait_fails_fast_on_a_permanent_error(cli: CLI) -> None:
    """--wait prints the condition as it appears and stops with the agent's reason."""
    cli.clock.callLater(2, cli.report, NODE_1, conditions=(_too_large(),))
    result = cli("dataset", "create", "--node", "node1", "--id", str(DATASET_1), "--wait")
    assert result.code == 1
    assert "node1: error (create, 1 attempt" in result.out
    assert result.err.startswith("error: node1 cannot do it: create failed: File too large.")
    assert cli.clock.seconds() - START < 5


def test_wait_prints_a_waiting_condition_and_goes_on(cli: CLI) -> None:
    """A wait on another node is printed with names; the wait ends when the mount shows."""
    cli.create(DATASET_1, NODE_1, "db")
    cli.report(NODE_1, (DATASET_1, MOUNTED))
    cli.clock.callLater(1, cli.report, NODE_2, conditions=(_waiting_for(NODE_1),))
    cli.clock.callLater(3, cli.report, NODE_1)
    cli.clock.callLater(4, cli.report, NODE_2, (DATASET_1, MOUNTED))
    result = cli("dataset", "move", "db", "--to", "node2", "--wait")
    assert result.code == 0, result.err
    assert "second: waiting (for 1s): waiting for node1 to unmount and detach volume v1" in (
        result.out
    )
