"""
Attachment records: which instance a volume is attached to, kept in RADOS.

An attachment is the object ``shoal.attachment.<image>`` in the volume's pool,
holding JSON ``{"instance_id", "epoch", "clients", "device", "method"}``. It is
*created exclusively* (``LIBRADOS_CREATE_EXCLUSIVE``), so of several nodes
racing to attach exactly one creates it; it is updated only while it is still
the version read (``assert_version``), so a node whose attachment was removed
by a fence cannot bring it back; and it is removed by detach or fence.
``clients`` are the Ceph client addresses that have the image open for this
attachment (the rbd-fuse process, or the kernel client): what a fence blocklists.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from typing import Any

from attrs import evolve, frozen

from agent.backends.interface import BackendError
from agent.backends.rbd import bindings
from agent.backends.rbd.naming import attachment_object
from agent.backends.rbd.session import error_number

_CHANGED = (errno.ENOENT, errno.ERANGE, errno.EOVERFLOW)
"""What a write asserting a version (or removing an object) fails with when the record
changed or is gone."""


@frozen
class Claim:
    """One attachment record (see the module docstring)."""

    instance_id: str
    epoch: int = 0
    clients: tuple[str, ...] = ()
    device: str = ""
    method: str = ""

    def to_bytes(self) -> bytes:
        """The stored form."""
        return json.dumps(
            {
                "instance_id": self.instance_id,
                "epoch": self.epoch,
                "clients": list(self.clients),
                "device": self.device,
                "method": self.method,
            }
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Claim:
        """A record from its stored form; :class:`BackendError` if unreadable."""
        try:
            raw = json.loads(data)
            return cls(
                instance_id=str(raw["instance_id"]),
                epoch=int(raw.get("epoch", 0)),
                clients=tuple(raw.get("clients", ())),
                device=str(raw.get("device", "")),
                method=str(raw.get("method", "")),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise BackendError(f"An attachment record is unreadable ({e}): {data!r}.") from e

    def with_clients(self, clients: tuple[str, ...], device: str, method: str) -> Claim:
        """This record naming the attachment's clients and device."""
        return evolve(self, clients=clients, device=device, method=method)


def read(ioctx: Any, image: str) -> tuple[Claim, int] | None:
    """The image's attachment record and its object version, or ``None``."""
    rados, _ = bindings.load()
    try:
        data = ioctx.read(attachment_object(image), 65536)
    except rados.ObjectNotFound:
        return None
    version = ioctx.get_last_version()
    if not data:
        return None
    return Claim.from_bytes(data), version


def take(ioctx: Any, image: str, claim: Claim) -> bool:
    """Create the record; ``False`` (and nothing changed) if one exists."""
    rados, _ = bindings.load()
    op = ioctx.create_write_op()
    try:
        op.new(rados.LIBRADOS_CREATE_EXCLUSIVE)
        op.write_full(claim.to_bytes())
        ioctx.operate_write_op(op, attachment_object(image))
    except rados.ObjectExists:
        return False
    finally:
        ioctx.release_write_op(op)
    return True


def replace(ioctx: Any, image: str, claim: Claim, version: int) -> bool:
    """Overwrite the record if it is still at ``version``; ``False`` if it changed or is gone."""
    return _write_unless_changed(ioctx, image, version, lambda op: op.write_full(claim.to_bytes()))


def remove(ioctx: Any, image: str, version: int | None = None) -> bool:
    """Remove the record (only at ``version`` if given); ``False`` if it was gone or changed."""
    return _write_unless_changed(ioctx, image, version, lambda op: op.remove())


def _write_unless_changed(
    ioctx: Any, image: str, version: int | None, write: Callable[[Any], None]
) -> bool:
    """Run ``write`` on the record as one operation (asserting ``version`` first, if given);
    ``False`` if the record changed or is gone."""
    rados, _ = bindings.load()
    op = ioctx.create_write_op()
    try:
        if version is not None:
            op.assert_version(version)
        write(op)
        ioctx.operate_write_op(op, attachment_object(image))
    except rados.Error as e:
        if error_number(e) in _CHANGED:
            return False
        raise
    finally:
        ioctx.release_write_op(op)
    return True


__all__ = ["Claim", "read", "remove", "replace", "take"]
