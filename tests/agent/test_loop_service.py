"""How ``shoal agent run`` assembles an agent: options, the kill hook, the loop it builds."""

from __future__ import annotations

import argparse
import os
import stat
from typing import Any
from uuid import UUID

import pytest
from twisted.internet.task import Clock

from agent.backends.fake import FakeBlockDeviceAPI
from agent.cli import options_from_args, register
from agent.fs.fake import FakeFilesystems
from agent.identity import read_identity, read_mount_root
from agent.service import (
    DEFAULT_CLUSTER_ID,
    KILL_AFTER_CHANGES,
    AgentOptions,
    build_loop,
    kill_after_changes,
    killing_runner,
    parse_labels,
)
from control.cli.options import Parser, UsageError
from control.client.testing import MemoryControl
from control.errors import InvalidRequest
from control.store.threaded import synchronous_runner


def parse(*argv: str) -> argparse.Namespace:
    """``argv`` parsed by the real ``shoal`` parser for ``agent run``."""
    parser = Parser(prog="shoal")
    register(parser.add_subparsers(parser_class=Parser))
    return parser.parse_args(["agent", "run", *argv])


def test_command_line_becomes_options():
    """Every option lands in AgentOptions; the cluster id defaults to the documented one."""
    args = parse("--node-name", "n1", "--label", "rack=a", "--label", "zone=b=c",
                 "--pool", "/p", "--mount-root", "/m", "--state-dir", "/s", "--era", "e1")
    options = options_from_args(args, {})
    assert options == AgentOptions(
        node_name="n1", backend="loopback", pool="/p", mount_root="/m", state_dir="/s",
        cluster_id=DEFAULT_CLUSTER_ID, labels={"rack": "a", "zone": "b=c"}, era="e1",
    )


def test_metrics_address_option():
    """``--metrics-address`` reaches the options; without it no metrics are served."""
    assert options_from_args(parse("--node-name", "n1"), {}).metrics_address is None
    args = parse("--node-name", "n1", "--metrics-address", "127.0.0.1:9524")
    assert options_from_args(args, {}).metrics_address == "127.0.0.1:9524"


def test_rbd_options_become_backend_options():
    """The rbd backend's options reach its factory; unset ones are left out."""
    args = parse("--node-name", "n1", "--backend", "rbd", "--ceph-conf", "/c.conf",
                 "--ceph-client", "node1", "--ceph-pool", "shoal", "--rbd-attach", "fuse")
    options = options_from_args(args, {})
    assert options.backend == "rbd"
    assert dict(options.backend_options) == {
        "ceph_conf": "/c.conf", "ceph_client": "node1", "ceph_pool": "shoal", "rbd_attach": "fuse"
    }
    assert options_from_args(parse("--node-name", "n1"), {}).backend_options == {}


def test_several_backends_each_with_its_pool(tmp_path):
    """--backend repeated: the first is the default (its pool from --pool or NAME=POOL), the
    others name theirs; the agent builds one MultiBackend of them all."""
    from agent.backends.multi import MultiBackend
    from agent.service import _make_backend

    local = str(tmp_path / "local")
    args = parse("--node-name", "n1", "--pool", str(tmp_path / "shared"),
                 "--backend", "loopback", "--backend", f"local={local}")
    options = options_from_args(args, {})
    assert (options.backend, options.more_backends) == ("loopback", (f"local={local}",))
    backend = _make_backend(options, "node-uuid")
    assert isinstance(backend, MultiBackend)
    assert [c.backend for c in backend.capacities()] == ["loopback", "local"]
    assert [c.shared for c in backend.capacities()] == [True, False]
    missing = options_from_args(parse("--pool", "/p", "--backend", "loopback",
                                      "--backend", "local"), {})
    with pytest.raises(InvalidRequest, match="needs its own pool: --backend local=DIR"):
        _make_backend(missing, "node-uuid")


def test_cluster_id_from_option_or_environment():
    """--cluster-id wins over SHOAL_CLUSTER_ID, which wins over the default."""
    one, two = UUID(int=1), UUID(int=2)
    env = {"SHOAL_CLUSTER_ID": str(two)}
    assert options_from_args(parse("--cluster-id", str(one)), env).cluster_id == one
    assert options_from_args(parse(), env).cluster_id == two
    with pytest.raises(InvalidRequest):
        options_from_args(parse("--cluster-id", "nope"), {})


def test_labels_must_be_key_value():
    """A label without '=' or without a key is refused with a sentence."""
    assert parse_labels(["a=1", "b="]) == {"a": "1", "b": ""}
    for bad in ("novalue", "=1"):
        with pytest.raises(InvalidRequest):
            parse_labels([bad])


def test_kill_hook_is_read_from_the_environment():
    """The test hook is off unless set, and must be a positive whole number."""
    assert kill_after_changes({}) is None
    assert kill_after_changes({KILL_AFTER_CHANGES: "3"}) == 3
    for bad in ("x", "0", "-1"):
        with pytest.raises(InvalidRequest):
            kill_after_changes({KILL_AFTER_CHANGES: bad})


def test_killing_runner_kills_right_after_the_nth_change():
    """The kill comes after the N-th call has completed, and only then."""
    events: list[str] = []
    run = killing_runner(synchronous_runner, 2, lambda: events.append("kill"))
    for name in ("one", "two", "three"):
        run(events.append, name)
    assert events == ["one", "two", "kill", "three"]


def test_build_loop_uses_the_persisted_identity_as_instance_id(tmp_path):
    """The node uuid from the state directory is the backend's instance id, across restarts."""
    options = AgentOptions(
        node_name="n1", backend="fake", state_dir=str(tmp_path / "state"),
        mount_root=str(tmp_path / "mounts"), era="era-1", labels={"rack": "a"},
    )
    clock: Any = Clock()
    loop = build_loop(options, MemoryControl(clock).client, clock, synchronous_runner)
    identity = read_identity(str(tmp_path / "state"))
    assert loop.node.node_uuid == identity.uuid
    assert loop.instance_id == str(identity.uuid)
    # Both are timed for the metrics (agent.metrics.Timed), around the fakes.
    assert isinstance(loop.executor.backend.inner, FakeBlockDeviceAPI)  # type: ignore[attr-defined]
    assert isinstance(loop.executor.filesystems.inner, FakeFilesystems)  # type: ignore[attr-defined]
    assert (loop.node.era, dict(loop.node.labels)) == ("era-1", {"rack": "a", "name": "n1"})
    again = build_loop(options, MemoryControl(clock).client, clock, synchronous_runner)
    assert again.node.node_uuid == identity.uuid


def test_build_loop_records_the_mount_root_for_the_plugin(tmp_path):
    """The agent writes its absolute mount root next to its identity, readable by root only."""
    state = tmp_path / "state"
    options = AgentOptions(
        node_name="n1", backend="fake", state_dir=str(state), mount_root=str(tmp_path / "m"),
        era="era-1",
    )
    clock: Any = Clock()
    build_loop(options, MemoryControl(clock).client, clock, synchronous_runner)
    assert read_mount_root(str(state)) == str(tmp_path / "m")
    for name in ("mount_root.json", "identity.json"):
        assert stat.S_IMODE(os.stat(state / name).st_mode) == 0o600


def test_loopback_needs_a_pool(tmp_path):
    """--backend loopback without --pool is refused with a sentence naming --pool."""
    options = AgentOptions(node_name="n1", state_dir=str(tmp_path / "s"),
                           mount_root=str(tmp_path / "m"), era="e")
    clock: Any = Clock()
    with pytest.raises(InvalidRequest, match="--pool"):
        build_loop(options, MemoryControl(clock).client, clock, synchronous_runner)


def test_pool_overcommit_option():
    """--pool-overcommit lands in the options and the backend; out of bounds is a usage error."""
    assert options_from_args(parse("--pool-overcommit", "1.5"), {}).pool_overcommit == 1.5
    assert options_from_args(parse(), {}).pool_overcommit is None
    for bad in ("0.5", "11", "lots"):
        with pytest.raises(UsageError, match="between 1.0 and 10.0"):
            parse("--pool-overcommit", bad)


def test_loopback_backend_gets_the_overcommit(tmp_path):
    """The loopback backend is built thin with the given ratio."""
    options = AgentOptions(node_name="n1", state_dir=str(tmp_path / "s"), pool=str(tmp_path / "p"),
                           mount_root=str(tmp_path / "m"), era="e", pool_overcommit=2.0)
    clock: Any = Clock()
    loop = build_loop(options, MemoryControl(clock).client, clock, synchronous_runner)
    assert getattr(loop.executor.backend, "overcommit", None) == 2.0
