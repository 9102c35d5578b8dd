"""The plugin process's setup: its node identity and command line."""

from __future__ import annotations

import argparse
import json
import os
from uuid import UUID

import pytest

from control.errors import Unavailable
from plugin.cli import default_size_arg
from plugin.serve import AgentNode

NODE = UUID(int=5)


def test_node_comes_from_the_agent_identity(tmp_path: str) -> None:
    """The node uuid is read from <agent-state-dir>/identity.json, once found."""
    node = AgentNode(str(tmp_path))
    with pytest.raises(Unavailable, match="start the agent"):
        node()
    with open(os.path.join(str(tmp_path), "identity.json"), "w") as f:
        json.dump({"uuid": str(NODE), "name": "node1"}, f)
    assert node() == NODE
    os.remove(os.path.join(str(tmp_path), "identity.json"))
    assert node() == NODE


def test_default_size_option() -> None:
    """--default-size takes binary units and refuses sizes a dataset cannot have."""
    assert default_size_arg("1G") == 1024**3
    for bad in ("1M", "lots"):
        with pytest.raises(argparse.ArgumentTypeError):
            default_size_arg(bad)


def test_mount_root_comes_from_the_agent_or_the_flag(tmp_path: str) -> None:
    """The mount root is what the local agent recorded, unless --mount-root says otherwise."""
    from agent.identity import write_mount_root

    node = AgentNode(str(tmp_path))
    with pytest.raises(Unavailable, match="mount root is not known yet"):
        node.mount_root()
    write_mount_root(str(tmp_path), "/var/lib/shoal/mounts")
    assert node.mount_root() == "/var/lib/shoal/mounts"
    assert AgentNode(str(tmp_path), "/srv/m").mount_root() == "/srv/m"


def test_plugin_options_for_mount_checks() -> None:
    """--mount-root and --test-directory-mounts reach the plugin's options."""
    from control.cli.options import Parser
    from plugin.cli import options_from_args, register

    parser = Parser(prog="shoal")
    register(parser.add_subparsers(parser_class=Parser))
    plain = options_from_args(parser.parse_args(["plugin", "serve"]))
    assert (plain.mount_root, plain.check_mount_table) == (None, True)
    args = parser.parse_args(
        ["plugin", "serve", "--mount-root", "/srv/m", "--test-directory-mounts"]
    )
    options = options_from_args(args)
    assert (options.mount_root, options.check_mount_table) == ("/srv/m", False)


def test_plugin_metrics_address_option() -> None:
    """--metrics-address reaches the plugin's options; by default nothing is served."""
    from control.cli.options import Parser
    from plugin.cli import options_from_args, register

    parser = Parser(prog="shoal")
    register(parser.add_subparsers(parser_class=Parser))
    assert options_from_args(parser.parse_args(["plugin", "serve"])).metrics_address is None
    args = parser.parse_args(["plugin", "serve", "--metrics-address", "[::1]:9525"])
    assert options_from_args(args).metrics_address == "[::1]:9525"


def test_socket_is_for_root_or_one_group() -> None:
    """The socket is 0600 without --socket-group; 0660 for a group by name or number; an
    unknown group is refused."""
    import grp

    from control.errors import InvalidRequest
    from plugin.common.sockets import socket_access

    assert socket_access(None) == (0o600, None)
    mine = grp.getgrgid(os.getgid())
    assert socket_access(mine.gr_name) == (0o660, mine.gr_gid)
    assert socket_access(str(mine.gr_gid)) == (0o660, mine.gr_gid)
    with pytest.raises(InvalidRequest, match="No group"):
        socket_access("no-such-group-shoal")


def test_plugin_refuses_a_node_certificate(tmp_path: str) -> None:
    """The plugin started with a node certificate is refused, told to use an operator's."""
    from datetime import UTC, datetime

    from control import ca
    from control.errors import InvalidRequest
    from control.roles import Role
    from plugin.cli import check_plugin_certificate

    now = datetime.now(UTC)
    ca.init_ca_files(tmp_path, "test", now)
    ca.issue_files(tmp_path, "node", "n1", now, node=NODE)
    ca.issue_files(tmp_path, "user", "plugin-n1", now, role=Role.OPERATOR)
    with pytest.raises(InvalidRequest, match="--role operator"):
        check_plugin_certificate(os.path.join(str(tmp_path), "node-n1.crt"))
    check_plugin_certificate(os.path.join(str(tmp_path), "user-plugin-n1.crt"))
    check_plugin_certificate(None)
