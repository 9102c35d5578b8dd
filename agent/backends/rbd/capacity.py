"""
What an RBD pool can hold: its quota (or its share of the cluster), minus what is promised.

RBD images are thin, so free bytes alone would let volumes promise more than the
pool has. As the loopback backend's thin pools do, a create (restore, clone,
growth, snapshot) is refused once the sizes of every image and snapshot in the
pool would exceed ``overcommit`` times the pool's size. The pool's size is its
quota (``ceph osd pool set-quota POOL max_bytes N``; read from the OSD map, so no
manager is needed), else what ``ceph df`` reports for it (stored plus max
available), else the cluster's raw capacity.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from attrs import frozen

from agent.backends.interface import BackendError, InsufficientCapacity
from agent.backends.rbd import bindings
from agent.backends.rbd.session import CephSession
from control.units import describe_size

MiB = 2**20
LOCK_OBJECT = "shoal.capacity"
LOCK_SECONDS = 30
"""A capacity lock a dead agent left expires after this long."""
LOCK_TRIES = 600


@frozen
class Limits:
    """The pool's size, what is promised in it, and the largest volume that fits now."""

    total: int
    provisioned: int
    ceiling: int
    maximum: int


def pool_size(session: CephSession) -> int:
    """The pool's size in bytes (see the module docstring)."""
    pool = session.settings.pool
    osdmap = session.mon_command({"prefix": "osd dump", "format": "json"}) or {}
    for entry in osdmap.get("pools", []):
        if entry.get("pool_name") == pool and int(entry.get("quota_max_bytes", 0)) > 0:
            return int(entry["quota_max_bytes"])
    with contextlib.suppress(BackendError):
        df = session.mon_command({"prefix": "df", "format": "json"})
        for entry in (df or {}).get("pools", []):
            if entry.get("name") == pool:
                stats = entry.get("stats", {})
                size = int(stats.get("stored", 0)) + int(stats.get("max_avail", 0))
                if size > 0:
                    return size
    stats = session.cluster().get_cluster_stats()
    return int(stats["kb"]) * 1024


def provisioned(ioctx: Any) -> int:
    """The sizes of every image and snapshot in the pool, in bytes (librbd's pool
    statistics, ``rbd pool stats``: no image is opened)."""
    _, rbd = bindings.load()
    stats = rbd.RBD().pool_stats_get(ioctx)
    return int(stats["image_max_provisioned_bytes"]) + int(stats["trash_max_provisioned_bytes"])


def limits(session: CephSession, overcommit: float) -> Limits:
    """The pool's :class:`Limits` now."""
    total = pool_size(session)
    promised = session.run(provisioned)
    ceiling = int(total * overcommit) // MiB * MiB
    maximum = max(0, ceiling - promised) // MiB * MiB
    return Limits(total=total, provisioned=promised, ceiling=ceiling, maximum=maximum)


def refusal(size: int, found: Limits, pool: str) -> InsufficientCapacity:
    """The error refusing ``size`` more bytes in ``pool``."""
    if size > found.ceiling:
        return InsufficientCapacity(
            f"A volume of {describe_size(size)} cannot fit in Ceph pool {pool}: the largest it "
            f"can ever hold is {describe_size(found.ceiling)}. Ask for a smaller size, or raise "
            "the pool's quota (ceph osd pool set-quota).",
            reason="too_large",
            requested=size,
            available=found.maximum,
        )
    return InsufficientCapacity(
        f"A volume of {describe_size(size)} does not fit in Ceph pool {pool} now: the largest "
        f"that fits is {describe_size(found.maximum)}. Delete datasets or snapshots, raise the "
        "pool's quota, or ask for a smaller size.",
        reason="no_space",
        requested=size,
        available=found.maximum,
    )


_LOCAL = threading.Lock()


@contextlib.contextmanager
def locked(session: CephSession, pause: Callable[[float], Any]) -> Iterator[None]:
    """Hold the pool's capacity lock (a RADOS lock every agent takes around a create)."""
    rados, _ = bindings.load()
    cookie = uuid.uuid4().hex
    with _LOCAL:
        for _ in range(LOCK_TRIES):
            try:
                session.run(
                    lambda io: io.lock_exclusive(
                        LOCK_OBJECT, "shoal", cookie, desc="shoal create", duration=LOCK_SECONDS
                    )
                )
                break
            except (rados.ObjectBusy, rados.ObjectExists):
                pause(0.05)
        else:
            raise BackendError(
                f"The capacity lock of pool {session.settings.pool} stayed busy; try again."
            )
        try:
            yield
        finally:
            with contextlib.suppress(rados.Error):
                session.run(lambda io: io.unlock(LOCK_OBJECT, "shoal", cookie))


__all__ = ["Limits", "limits", "locked", "pool_size", "provisioned", "refusal"]
