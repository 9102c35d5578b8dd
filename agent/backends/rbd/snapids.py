"""
Snapshot id records: which volume a snapshot id was taken of, kept in RADOS.

A snapshot id is unique in a cluster: the same id asked of another volume is
refused. Finding out by listing every image's snapshots costs an open per image
(it grows with the pool); instead, the object ``shoal.snapshot.<cluster>.<id>``
holding the volume's blockdevice id is *created exclusively* before the RBD
snapshot is made, so one RADOS operation says whether the id is free, already
this volume's (a retry: idempotent), or another volume's. It is removed after
its snapshot. A record left by a crash between the two steps only holds the id
for the same volume, which a retry completes. Snapshots made before these
records existed have none: their ids are still found by the listing that
:meth:`~agent.backends.rbd.snapshots.RbdSnapshots.destroy_snapshot` uses.
"""

from __future__ import annotations

import contextlib
from typing import Any
from uuid import UUID

from agent.backends.rbd import bindings
from agent.backends.rbd.naming import snapshot_id_object


def take(ioctx: Any, cluster_id: UUID, snapshot_id: str, blockdevice_id: str) -> str:
    """Record ``snapshot_id`` as ``blockdevice_id``'s unless recorded already; returns the
    blockdevice id it is recorded for (``blockdevice_id`` itself when it is free or ours)."""
    rados, _ = bindings.load()
    name = snapshot_id_object(cluster_id, snapshot_id)
    op = ioctx.create_write_op()
    try:
        op.new(rados.LIBRADOS_CREATE_EXCLUSIVE)
        op.write_full(blockdevice_id.encode())
        ioctx.operate_write_op(op, name)
    except rados.ObjectExists:
        return bytes(ioctx.read(name, 4096)).decode(errors="replace")
    finally:
        ioctx.release_write_op(op)
    return blockdevice_id


def drop(ioctx: Any, cluster_id: UUID, snapshot_id: str) -> None:
    """Remove the record of ``snapshot_id`` (none is fine)."""
    rados, _ = bindings.load()
    with contextlib.suppress(rados.ObjectNotFound):
        ioctx.remove_object(snapshot_id_object(cluster_id, snapshot_id))


__all__ = ["drop", "take"]
