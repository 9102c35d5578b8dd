"""
How Shoal names things in a Ceph pool (pure: no I/O).

- A volume is the image ``shoal-<cluster id>-<dataset id>``; its blockdevice id
  is the dataset id. An operator reading ``rbd ls`` sees which cluster and
  dataset own each image, and the image metadata says it again
  (``shoal.cluster_id``, ``shoal.dataset_id``; ``rbd image-meta list``).
- A destroyed volume that still has snapshots is renamed
  ``shoal-<cluster id>-<dataset id>.retired-<n>`` and lives on for them.
- A copy being made (clone, restore) is ``shoal-<cluster id>-<dataset id>.tmp-<instance>``
  until it is renamed into place whole.
- A snapshot is the RBD snapshot ``shoal-snap-<snapshot id>`` of its source's image.
- The attachment of a volume is the RADOS object ``shoal.attachment.<image>``
  (see :mod:`agent.backends.rbd.claims`).
"""

from __future__ import annotations

import re
from uuid import UUID

PREFIX = "shoal-"
SNAP_PREFIX = "shoal-snap-"
CLONE_SNAP_PREFIX = "shoal-clone-"
RETIRED = ".retired-"
TEMPORARY = ".tmp-"
ATTACHMENT_PREFIX = "shoal.attachment."
SNAPSHOT_ID_PREFIX = "shoal.snapshot."
META_CLUSTER = "shoal.cluster_id"
META_DATASET = "shoal.dataset_id"
META_EPOCH = "shoal.epoch"

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_VOLUME = re.compile(rf"^shoal-(?P<cluster>{_UUID})-(?P<dataset>{_UUID})$")
_RETIRED = re.compile(rf"^shoal-(?P<cluster>{_UUID})-(?P<dataset>{_UUID})\.retired-\w+$")


def dataset_of(blockdevice_id: str) -> UUID | None:
    """The dataset id a blockdevice id names, or ``None`` if it is not a canonical one."""
    try:
        dataset_id = UUID(blockdevice_id)
    except ValueError:
        return None
    return dataset_id if str(dataset_id) == blockdevice_id else None


def volume_image(cluster_id: UUID, dataset_id: UUID) -> str:
    """The image name of a dataset's volume."""
    return f"{PREFIX}{cluster_id}-{dataset_id}"


def temporary_image(cluster_id: UUID, dataset_id: UUID, instance_id: str) -> str:
    """The name a copy of the dataset's volume has while it is being made by ``instance_id``."""
    return f"{volume_image(cluster_id, dataset_id)}{TEMPORARY}{safe(instance_id)}"


def temporary_prefix(cluster_id: UUID) -> str:
    """What every temporary image of the cluster's starts with (see :func:`is_temporary_of`)."""
    return f"{PREFIX}{cluster_id}-"


def is_temporary_of(name: str, cluster_id: UUID, instance_id: str) -> bool:
    """Whether ``name`` is a copy ``instance_id`` was making in the cluster."""
    return name.startswith(temporary_prefix(cluster_id)) and name.endswith(
        TEMPORARY + safe(instance_id)
    )


def retired_image(cluster_id: UUID, dataset_id: UUID, tag: str) -> str:
    """The name a destroyed volume with snapshots lives on under."""
    return f"{volume_image(cluster_id, dataset_id)}{RETIRED}{safe(tag)}"


def parse_volume(name: str, cluster_id: UUID) -> UUID | None:
    """The dataset id of a live volume image of ``cluster_id``, else ``None``."""
    match = _VOLUME.match(name)
    if match is None or match["cluster"] != str(cluster_id):
        return None
    return UUID(match["dataset"])


def parse_snapshot_holder(name: str, cluster_id: UUID) -> UUID | None:
    """The dataset id of an image of ``cluster_id`` that may hold snapshots (live or retired)."""
    match = _VOLUME.match(name) or _RETIRED.match(name)
    if match is None or match["cluster"] != str(cluster_id):
        return None
    return UUID(match["dataset"])


def snapshot_name(snapshot_id: str) -> str:
    """The RBD snapshot name of a Shoal snapshot."""
    return SNAP_PREFIX + snapshot_id


def snapshot_id_of(snap_name: str) -> str | None:
    """The Shoal snapshot id of an RBD snapshot name, or ``None`` if it is not one of ours."""
    return snap_name[len(SNAP_PREFIX) :] if snap_name.startswith(SNAP_PREFIX) else None


def valid_snapshot_id(snapshot_id: str) -> bool:
    """Whether ``snapshot_id`` can name an RBD snapshot (no ``@``, ``/``, not empty)."""
    return bool(snapshot_id) and re.fullmatch(r"[\w.:-]+", snapshot_id) is not None


def attachment_object(image: str) -> str:
    """The RADOS object recording an image's attachment."""
    return ATTACHMENT_PREFIX + image


def snapshot_id_object(cluster_id: UUID, snapshot_id: str) -> str:
    """The RADOS object recording which volume a snapshot id was taken of."""
    return f"{SNAPSHOT_ID_PREFIX}{cluster_id}.{snapshot_id}"


def safe(text: str) -> str:
    """``text`` with every character RBD names or paths dislike replaced by ``_``."""
    return re.sub(r"[^\w.-]", "_", text)


__all__ = [
    "attachment_object",
    "dataset_of",
    "is_temporary_of",
    "parse_snapshot_holder",
    "parse_volume",
    "retired_image",
    "snapshot_id_object",
    "snapshot_id_of",
    "snapshot_name",
    "temporary_image",
    "volume_image",
]
