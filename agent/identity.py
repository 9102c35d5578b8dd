"""
A node's identity: its uuid and name, persisted in the agent's state directory.

Several agents on one machine share one kernel and so one boot id, so a
node's identity never comes from the machine: it is created once, written to
``<state-dir>/identity.json`` and read back on every start. The plugin reads
the same file to learn which node it serves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from uuid import UUID, uuid4

from attrs import frozen

from agent.files import write_atomically
from control.pidlock import LockHeld, hold_lock

IDENTITY_FILE = "identity.json"
MOUNT_ROOT_FILE = "mount_root.json"
LOCK_FILE = "lock"
DEFAULT_STATE_DIR = "/var/lib/shoal/agent"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


class IdentityError(Exception):
    """The identity file is unreadable or was written for another node name."""


@frozen
class NodeIdentity:
    """Who this node is: a uuid that never changes, and a name for people."""

    uuid: UUID
    name: str


def identity_path(state_dir: str) -> str:
    """Where the identity of the agent using ``state_dir`` is kept."""
    return os.path.join(state_dir, IDENTITY_FILE)


def read_identity(state_dir: str) -> NodeIdentity:
    """The identity persisted in ``state_dir``; raises :class:`IdentityError` if there is none."""
    path = identity_path(state_dir)
    try:
        with open(path) as f:
            raw = json.load(f)
        return NodeIdentity(uuid=UUID(raw["uuid"]), name=str(raw["name"]))
    except FileNotFoundError:
        raise IdentityError(
            f"No node identity at {path}: start the agent (`shoal agent run --state-dir "
            f"{state_dir}`) on this node first, or point at its --state-dir."
        ) from None
    except (ValueError, KeyError, TypeError) as e:
        raise IdentityError(
            f"The node identity at {path} is damaged ({e}); fix or remove it."
        ) from e


def load_or_create_identity(
    state_dir: str, name: str, new_uuid: Callable[[], UUID] = uuid4, bound: UUID | None = None
) -> NodeIdentity:
    """Read this node's identity, creating it on first start.

    Refuses a state directory that belongs to a node of another name, so two
    agents cannot end up sharing one identity by mistake. ``bound`` is the
    uuid the agent's node certificate speaks for: a new identity takes it, and
    an existing identity with another uuid is refused (the certificate is
    another node's).
    """
    os.makedirs(state_dir, exist_ok=True)
    try:
        identity = read_identity(state_dir)
    except IdentityError:
        if os.path.exists(identity_path(state_dir)):
            raise
        identity = NodeIdentity(uuid=bound or new_uuid(), name=name)
        body = {"uuid": str(identity.uuid), "name": identity.name}
        write_atomically(identity_path(state_dir), json.dumps(body).encode())
        return identity
    if identity.name != name:
        raise IdentityError(
            f"{identity_path(state_dir)} belongs to node {identity.name!r}, not {name!r}: "
            "give each agent its own --state-dir."
        )
    if bound is not None and identity.uuid != bound:
        raise IdentityError(
            f"{identity_path(state_dir)} is node {identity.uuid}, but this agent's certificate "
            f"speaks for node {bound}: use this node's own certificate, or issue one for it "
            f"with `shoal ca issue node {name} --uuid {identity.uuid}`."
        )
    return identity


def write_mount_root(state_dir: str, mount_root: str) -> None:
    """Record where this node's agent mounts datasets, for the local plugin to trust.

    The plugin hands a container only paths below this root: it reads it
    here, from the node itself, never from the control service.
    """
    body = json.dumps({"mount_root": mount_root}).encode()
    write_atomically(os.path.join(state_dir, MOUNT_ROOT_FILE), body)


def read_mount_root(state_dir: str) -> str:
    """The mount root the local agent recorded; raises :class:`IdentityError` if none."""
    path = os.path.join(state_dir, MOUNT_ROOT_FILE)
    try:
        with open(path) as f:
            root = json.load(f)["mount_root"]
    except FileNotFoundError:
        raise IdentityError(
            f"No mount root recorded at {path}: start this node's agent (`shoal agent run "
            f"--state-dir {state_dir}`) first, or point at its --state-dir."
        ) from None
    except (ValueError, KeyError, TypeError) as e:
        raise IdentityError(f"The mount root file {path} is damaged ({e}); fix or remove it") from e
    if not isinstance(root, str) or not root.startswith("/"):
        raise IdentityError(f"The mount root in {path} is not an absolute path; fix or remove it.")
    return root


class StateDirLocked(IdentityError):
    """Another live agent holds the state directory's lock."""


def lock_state_dir(state_dir: str) -> int:
    """Take ``<state-dir>/lock`` for the life of this process; returns the open descriptor.

    Two agents on one state directory would share one node identity and fight
    over its volumes, so the second one is refused with
    :class:`StateDirLocked` naming the first one's pid. The kernel drops the
    lock when the process ends, however it ends.
    """
    try:
        return hold_lock(os.path.join(state_dir, LOCK_FILE))
    except LockHeld as held:
        raise StateDirLocked(
            f"Another agent (pid {held.holder}) is running with --state-dir {state_dir}: two "
            "agents must never share one node identity. Stop that agent, or give this one "
            "its own --state-dir."
        ) from None


def boot_id(path: str = BOOT_ID_PATH) -> str:
    """The kernel's boot id: the node's era, which changes on every reboot."""
    with open(path) as f:
        return f.read().strip()
