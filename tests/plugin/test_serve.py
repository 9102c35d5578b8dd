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
