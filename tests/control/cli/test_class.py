"""``shoal class ...`` against the real API in memory."""

from __future__ import annotations

import json

from control.topology import ZONE

from .harness import CLI, NODE_1, NODE_2


def test_create_list_show_update_delete() -> None:
    """A class is created from flags, listed, shown, updated and deleted."""
    cli = CLI()
    made = cli(
        "class", "create", "fast-a", "--backend", "loopback", "--filesystem", "xfs",
        "--size", "2G", "--reclaim", "Retain", "--binding", "WaitForFirstConsumer",
        "--topology", "topology.kubernetes.io/zone=a|b", "--access-mode", "RWO",
        "--access-mode", "ROX", "--parameter", "tier=ssd", "--default",
    )
    assert made.code == 0, made.err
    assert "storage class fast-a ready (the default)" in made.err + made.out
    listed = cli("class", "list")
    assert "fast-a" in listed.out and "WaitForFirstConsumer" in listed.out
    assert "[topology.kubernetes.io/zone in (a, b)]" in listed.out
    shown = json.loads(cli("class", "show", "fast-a", "--json").out)
    assert shown["access_modes"] == ["ReadWriteOnce", "ReadOnlyMany"]
    assert shown["default_size"] == 2 * 1024**3 and shown["reclaim_policy"] == "Retain"
    updated = json.loads(cli("class", "update", "fast-a", "--parameter", "tier=nvme",
                             "--no-default", "--json").out)
    assert updated["parameters"] == {"tier": "nvme"} and updated["default"] is False
    assert cli("class", "delete", "fast-a").code == 0
    assert json.loads(cli("class", "list", "--json").out) == []


def test_refusals_are_explained() -> None:
    """RWX, a bad term and an unknown class are refused with a message, exit 1."""
    cli = CLI()
    rwx = cli("class", "create", "x", "--access-mode", "RWX")
    assert rwx.code == 1 and "ReadWriteMany is not supported" in rwx.err
    term = cli("class", "create", "x", "--topology", "zone")
    assert term.code == 1 and "KEY=VALUE" in term.err
    missing = cli("class", "show", "nope")
    assert missing.code == 1 and "does not exist" in missing.err
    nothing = cli("class", "update", "x")
    assert nothing.code == 1 and "Nothing to change" in nothing.err


def _zoned() -> CLI:
    """node1 in zone a, node2 in zone b; a default WaitForFirstConsumer class for zone a."""
    cli = CLI()
    cli.register(NODE_1, "node1", **{ZONE: "a"})
    cli.register(NODE_2, "node2", **{ZONE: "b"})
    made = cli("class", "create", "za", "--binding", "WaitForFirstConsumer", "--size", "1G",
               "--topology", f"{ZONE}=a", "--default")
    assert made.code == 0, made.err
    return cli


def test_create_unbound_then_attach() -> None:
    """Without --node the default class leaves the dataset unbound; attach binds it."""
    cli = _zoned()
    made = cli("dataset", "create", "--meta", "name=db")
    assert made.code == 0, made.err
    assert "unbound until its first use" in made.out
    listed = cli("dataset", "list")
    assert "unbound" in listed.out
    refused = cli("dataset", "attach", "db", "--node", "node2", "--force")
    assert refused.code == 1 and f"[{ZONE}=a] (it has {ZONE}=b)" in refused.err
    bound = cli("dataset", "attach", "db", "--node", "node1", "--force", "--json")
    assert bound.code == 0, bound.err
    again = cli("dataset", "attach", "db", "--node", "node2", "--force")
    assert again.code == 1 and "only a ReadOnlyMany dataset" in again.err
    assert "shoal dataset move" in again.err


def test_create_with_node_outside_the_class_is_refused() -> None:
    """--node naming a node the class does not allow is refused naming the term."""
    cli = _zoned()
    refused = cli("dataset", "create", "--node", "node2", "--class", "za", "--force")
    assert refused.code == 1 and f"{ZONE}=a" in refused.err


def test_retain_delete_then_adopt() -> None:
    """Deleting a dataset of a Retain class releases it; adopt brings it back by its name."""
    cli = CLI()
    cli.register(NODE_1, "node1")
    assert cli("class", "create", "keep", "--reclaim", "Retain", "--default").code == 0
    made = cli("dataset", "create", "--meta", "name=db", "--size", "1G")
    assert made.code == 0, made.err
    assert cli("dataset", "delete", "db").code == 0
    listed = cli("dataset", "released")
    assert "db" in listed.out and "keep" in listed.out
    adopted = cli("dataset", "adopt", "db", "--node", "node1")
    assert adopted.code == 0, adopted.err
    assert "adopted dataset" in adopted.out and "node1" in adopted.out
    assert json.loads(cli("dataset", "released", "--json").out) == []


def test_failover_options_shown_and_given_to_datasets() -> None:
    """A class's failover options are shown and become its new datasets' options."""
    cli = CLI()
    cli.register(NODE_1, "node1")
    made = cli("class", "create", "slow", "--no-failover", "--failover-grace", "60", "--json")
    assert made.code == 0, made.err
    assert json.loads(made.out)["failover"] is False
    assert "off, after 60s" in cli("class", "show", "slow").out
    created = cli("dataset", "create", "--class", "slow", "--node", str(NODE_1), "--json")
    assert created.code == 0, created.err
    dataset_id = json.loads(created.out)["dataset"]["dataset_id"]
    options = json.loads(cli("dataset", "failover", dataset_id, "--json").out)
    assert (options["enabled"], options["grace"]) == (False, 60.0)


def test_read_only_many_reader_attached_and_detached() -> None:
    """attach on another node adds a ReadOnlyMany reader (shown by --json and in the text),
    detach removes it; the events say so."""
    cli = _zoned()
    made = cli("class", "create", "ro", "--access-mode", "ROX")
    assert made.code == 0, made.err
    made = cli("dataset", "create", "--class", "ro", "--node", "node1", "--meta", "name=pub",
               "--force")
    assert made.code == 0, made.err
    read = cli("dataset", "attach", "pub", "--node", "node2", "--force", "--json")
    assert read.code == 0, read.err
    shown = json.loads(read.out)
    assert shown["readers"] == [str(NODE_2)] and shown["access_mode"] == "ReadOnlyMany"
    assert shown["dataset"]["primary"] == str(NODE_1)
    text = cli("dataset", "show", "pub")
    assert "readers:" in text.out and "node2 (read-only, ReadOnlyMany)" in text.out
    gone = cli("dataset", "detach", "pub", "--node", "node2", "--json")
    assert gone.code == 0, gone.err
    assert json.loads(gone.out)["readers"] == []
    kinds = [e["kind"] for e in json.loads(gone.out)["events"]]
    assert "reader_added" in kinds and "reader_removed" in kinds
