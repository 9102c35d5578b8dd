"""
Reference counts of Mount requests, and the leases the plugin holds for them.

Docker sends a Mount per container create and per start, each with its own
ID; Podman sends one ID per volume and keeps its own count. So a volume's
users are a *set* of IDs: a Mount adds its ID, an Unmount removes it, and the
volume is free on this node when the set is empty. ``leases`` remembers which
datasets the plugin leased for which name, so a lease whose release failed is
released later (at the next Unmount or when the plugin starts).

:class:`MountTable` is a frozen value; :class:`MountFile` persists it to
``<state-dir>/mounts.json`` with an atomic replace, so the counts survive a
restart of the plugin and a crash never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
from uuid import UUID

from attrs import evolve, frozen
from pyrsistent import PMap, PSet, pmap, pset

from agent.files import write_atomically

FORMAT_VERSION = 1
MOUNTS_FILE = "mounts.json"


class MountFileError(Exception):
    """The persisted mount table cannot be read."""


@frozen
class MountTable:
    """Which Mount IDs use each volume, and which dataset each leased volume is."""

    users: PMap = pmap()
    leases: PMap = pmap()

    def count(self, name: str) -> int:
        """How many Mount IDs currently use ``name``."""
        return len(self.users.get(name, pset()))

    def mounted(self, name: str, mount_id: str) -> MountTable:
        """The table after a successful Mount of ``name`` by ``mount_id``."""
        ids: PSet = self.users.get(name, pset())
        return evolve(self, users=self.users.set(name, ids.add(mount_id)))

    def unmounted(self, name: str, mount_id: str) -> MountTable:
        """The table after an Unmount; unknown names and IDs change nothing."""
        ids: PSet = self.users.get(name, pset()).discard(mount_id)
        users = self.users.set(name, ids) if ids else self.users.discard(name)
        return evolve(self, users=users)

    def leased(self, name: str, dataset_id: UUID) -> MountTable:
        """The table after the plugin took the lease on ``dataset_id`` for ``name``."""
        return evolve(self, leases=self.leases.set(name, dataset_id))

    def released(self, name: str) -> MountTable:
        """The table after the plugin released (or lost) the lease for ``name``."""
        return evolve(self, leases=self.leases.discard(name))

    def to_release(self) -> dict[str, UUID]:
        """The leases held for volumes nobody on this node uses any more."""
        return {name: d for name, d in self.leases.items() if not self.count(name)}

    def to_json(self) -> dict[str, object]:
        """The table as the JSON document stored on disk."""
        return {
            "version": FORMAT_VERSION,
            "users": {name: sorted(ids) for name, ids in sorted(self.users.items())},
            "leases": {name: str(d) for name, d in sorted(self.leases.items())},
        }

    @classmethod
    def from_json(cls, obj: object) -> MountTable:
        """Read a table written by :meth:`to_json`; raise :class:`MountFileError` if malformed."""
        if not isinstance(obj, dict) or obj.get("version") != FORMAT_VERSION:
            raise MountFileError(f"unknown mount table format (want version {FORMAT_VERSION})")
        try:
            users = {str(k): pset(str(i) for i in v) for k, v in obj["users"].items() if v}
            leases = {str(k): UUID(v) for k, v in obj["leases"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise MountFileError(f"unreadable mount table ({e!r})") from None
        return cls(users=pmap(users), leases=pmap(leases))


class MountFile:
    """The mount table persisted in one file; the service saves it from a thread."""

    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, MOUNTS_FILE)
        self._state_dir = state_dir

    def load(self) -> MountTable:
        """The persisted table, or an empty one if none was written yet."""
        try:
            with open(self.path, "rb") as f:
                raw = json.loads(f.read())
        except FileNotFoundError:
            return MountTable()
        except ValueError as e:
            raise MountFileError(f"{self.path} is not JSON ({e}); fix or remove it.") from None
        try:
            return MountTable.from_json(raw)
        except MountFileError as e:
            raise MountFileError(f"{self.path}: {e}; fix or remove it.") from None

    def save(self, table: MountTable) -> None:
        """Replace the persisted table with ``table`` atomically."""
        os.makedirs(self._state_dir, exist_ok=True)
        write_atomically(self.path, json.dumps(table.to_json(), indent=1).encode())
