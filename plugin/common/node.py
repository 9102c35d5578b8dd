"""
This node's identity as the local agent recorded it: shared by the Docker plugin and the CSI node.

The plugins never ask the control service which node they run on, nor where
its agent mounts datasets: both come from the agent's state directory on this
machine (or are given on the command line).
"""

from __future__ import annotations

from uuid import UUID

from agent.identity import IdentityError, read_identity, read_mount_root
from control.errors import Unavailable


class AgentNode:
    """This node's uuid and mount root, read from the local agent's state directory.

    The agent may start after the plugin, so the files are read on first need
    and remembered once found; until then every request explains what is
    missing. The mount root comes from this node only, never from the
    control service. A ``uuid`` or ``mount_root`` given (on the command line)
    is used instead of the file's.
    """

    def __init__(
        self, state_dir: str, mount_root: str | None = None, uuid: UUID | None = None
    ) -> None:
        self.state_dir = state_dir
        self._uuid: UUID | None = uuid
        self._mount_root = mount_root

    def mount_root(self) -> str:
        """Where the local agent mounts datasets, or :class:`Unavailable` saying why not known."""
        if self._mount_root is None:
            try:
                self._mount_root = read_mount_root(self.state_dir)
            except IdentityError as e:
                raise Unavailable(f"This node's mount root is not known yet: {e}") from None
        return self._mount_root

    def __call__(self) -> UUID:
        """The node's uuid, or :class:`Unavailable` saying how to give the node one."""
        if self._uuid is None:
            try:
                self._uuid = read_identity(self.state_dir).uuid
            except IdentityError as e:
                raise Unavailable(f"This node is not known yet: {e}") from None
        return self._uuid
