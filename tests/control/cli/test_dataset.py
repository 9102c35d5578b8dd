"""``shoal dataset ...`` against the fake client and the real API in memory."""

from __future__ import annotations

import io
import json
from typing import Any
from uuid import UUID

import pytest

from control.cli.dataset import in_cli_terms, liveness_status
from control.cli.program import run
from control.cli.shell import Shell
from control.client.interface import NodeInfo
from control.errors import Conflict, InvalidRequest
from control.model import Condition, ConditionKind, Dataset, Node, VolumeStatus

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
    assert result.err == "error: The cluster has 2 nodes (node1, second): choose one with --node.\n"


def test_create_single_node_default() -> None:
    """With one node, create uses it."""
    cli = CLI()
    cli.register(NODE_1, "node1")
    assert cli("dataset", "create").code == 0
    assert cli.wait(cli.client.list_datasets()).datasets[0].primary == NODE_1


def test_create_refused_by_service(cli: CLI) -> None:
    """The service's refusal is one line, exit status 1: a name in use names its dataset."""
    cli.create(DATASET_1, NODE_1, "db")
    result = cli("dataset", "create", "--node", "node1", "--meta", "name=db")
    assert result.code == 1
    assert result.err == (
        f"error: The name 'db' is already used by dataset {DATASET_1}: choose another name, "
        "or delete that dataset first.\n"
    )
    assert len(cli.wait(cli.client.list_datasets()).datasets) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dataset", "create", "--size", "lots"], "argument --size: Invalid size 'lots'"),
        (["dataset", "create", "--meta", "novalue"], "expected KEY=VALUE"),
        (["dataset", "create", "--id", "x"], "'x' is not a UUID"),
        (["dataset", "move", "db"], "the following arguments are required: --to"),
        (["dataset", "create", "--timeout", "-1"], "not a positive number"),
        (["dataset", "create", "--size", "-5G"], "argument --size: Invalid size '-5G': a size "
         "cannot be negative"),
        (["dataset", "create", "--size", "1M"], "argument --size: the size 1048576 is too small"),
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
    assert ambiguous.code == 1 and "is ambiguous" in ambiguous.err
    assert "b (11111111" in ambiguous.err
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


def test_size_messages_never_name_api_fields(cli: CLI) -> None:
    """Size refusals speak of the size, never of the API's ``maximum_size``."""
    for size in ("1M", "100000K", "-5G", "x"):
        assert "maximum_size" not in cli("dataset", "create", "--size", size).err


def test_move_to_same_node_says_so(cli: CLI) -> None:
    """A move to the node a dataset is already on says so and writes nothing."""
    cli.create(DATASET_1, NODE_1, "db")
    before = cli.wait(cli.client.list_datasets()).tag
    result = cli("dataset", "move", "db", "--to", "node1")
    assert result.code == 0, result.err
    assert result.out.startswith(f"dataset {DATASET_1} is already on node1; nothing to move\n")
    assert cli.wait(cli.client.list_datasets()).tag == before


def test_dead_node_refused_unless_forced(cli: CLI) -> None:
    """Creating on or moving to a node that is not live is refused; --force does it anyway."""
    cli.clock.advance(120)
    cli.register(NODE_1, "node1")
    create = cli("dataset", "create", "--node", "second")
    assert create.code == 1
    assert create.err == (
        "error: Node second is not live (not seen for 2m): its agent may be down, and nothing "
        "would act on the dataset there until it is back. Start that node's agent, choose a "
        "live node (`shoal node list`), or give --force.\n"
    )
    cli.create(DATASET_1, NODE_1, "db")
    move = cli("dataset", "move", "db", "--to", "second")
    assert move.code == 1 and "Node second is not live" in move.err
    assert cli.wait(cli.client.list_datasets()).datasets[0].primary == NODE_1
    assert cli("dataset", "move", "db", "--to", "second", "--force").code == 0
    assert cli("dataset", "create", "--node", "second", "--force").code == 0


def test_status_of_dataset_on_silent_node(cli: CLI) -> None:
    """A dataset whose primary is not live shows as unknown, with how long it has been silent."""
    cli.create(DATASET_1, NODE_2, "db")
    cli.report(NODE_2, (DATASET_1, MOUNTED))
    cli.clock.advance(125)
    cli.register(NODE_1, "node1")
    [row] = cli("dataset", "list").out.splitlines()[1:]
    assert "unknown (second not seen for 2m)" in row
    assert "status:    unknown (second not seen for 2m)" in cli("dataset", "show", "db").out


def test_interrupted_wait_says_the_operation_goes_on(cli: CLI) -> None:
    """Ctrl-C during ``--wait`` stops only the waiting, and says so."""
    cli.create(DATASET_1, NODE_1, "db")
    cli.report(NODE_1, (DATASET_1, MOUNTED))

    def interrupting(work: Any) -> Any:
        work(cli.clock)
        for _ in range(5):
            cli.settle()
            cli.clock.advance(1)
        raise KeyboardInterrupt  # what the runner raises when Ctrl-C stops the reactor

    out, err = io.StringIO(), io.StringIO()
    shell = Shell(out, err, {}, lambda settings, reactor: cli.client, interrupting, cli.clock)
    code = run(["dataset", "move", "db", "--to", "node2", "--wait"], shell)
    assert code == 130
    assert err.getvalue() == (
        f"error: interrupted; stopped waiting for dataset {DATASET_1} to move to second (it is "
        "still on node1), but the operation goes on in the cluster: `shoal dataset list` shows "
        "how far it got.\n"
    )
    assert cli.wait(cli.client.list_datasets()).datasets[0].primary == NODE_2


def test_api_field_names_become_options() -> None:
    """A refusal naming the API's fields is shown with the CLI's options."""
    error = in_cli_terms(InvalidRequest("maximum_size 5 is over the maximum_size limit.", ["e"]))
    assert isinstance(error, InvalidRequest)
    assert (error.description, error.errors) == ("--size 5 is over the --size limit.", ["e"])
    same = Conflict("The name 'db' is in use.")
    assert in_cli_terms(same) is same


def test_liveness_status() -> None:
    """Only a live dataset whose primary is known and silent is unknown, saying for how long."""
    node = Node(NODE_2, "10.0.0.2", labels={"name": "node2"}, last_seen=1000.0)
    dataset = Dataset(DATASET_1, NODE_2)
    assert liveness_status(dataset, NodeInfo(node, False), 1130.0) == \
        "unknown (node2 not seen for 2m)"
    never = Node(NODE_2, "10.0.0.2")
    assert liveness_status(dataset, NodeInfo(never, False), 1130.0) == \
        "unknown (10.0.0.2 never seen)"
    assert liveness_status(dataset, NodeInfo(node, True), 1130.0) is None
    assert liveness_status(dataset, None, 1130.0) is None
    deleted = Dataset(DATASET_1, NODE_2, deleted=True)
    assert liveness_status(deleted, NodeInfo(node, False), 1130.0) is None
