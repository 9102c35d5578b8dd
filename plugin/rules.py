"""
The plugin's decisions, as pure functions of what it observed.

The handlers in :mod:`plugin.volumes` read the configuration, the leases and
the reported state from the control service, call one function here, and
carry out the value it returns. Nothing here does I/O or reads a clock, so
every rule is tested with plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from attrs import frozen

from control.client.interface import NodeCondition, StateDataset
from control.errors import Conflict, InvalidRequest, NotFound
from control.model import (
    FILESYSTEMS,
    AccessMode,
    Dataset,
    DatasetSnapshot,
    DataSource,
    Lease,
    SourceKind,
    check_maximum_size,
)
from control.progress import Stage, progress_towards
from control.units import format_size, parse_size
from plugin.names import NAME_METADATA_KEY, check_name, is_valid_name

KNOWN_OPTIONS: Mapping[str, str] = {
    "size": "the volume's maximum size, e.g. 64M, 10G or 1Gi (binary units)",
    "from-snapshot": "restore a snapshot: its name (`shoal snapshot list`); it must be ready",
    "clone-of": "clone another volume as it is now: its name",
    "fs": f"the filesystem of a new volume: {' or '.join(FILESYSTEMS)} (default "
    f"{FILESYSTEMS[0]}; a restore or clone keeps its source's)",
    "class": "a storage class (`shoal class list`): it places the volume, at once or, for a "
    "WaitForFirstConsumer class, on the node of its first mount",
    "access-mode": "RWO (default), RWOP or ROX: one its class allows",
}
"""The ``Opts`` that ``VolumeDriver.Create`` understands, with what each means."""


# -- finding volumes -------------------------------------------------------------


def named_datasets(datasets: Iterable[Dataset]) -> dict[str, Dataset]:
    """The live datasets that carry a valid volume name, by name.

    The control service keeps a ``name`` unique among live datasets. A name
    that several live datasets still share (written before that rule) is left
    out, so no node silently picks one of them: :func:`find_volume` refuses it.
    """
    found: dict[str, Dataset] = {}
    for name, candidates in _by_name(datasets).items():
        if len(candidates) == 1:
            found[name] = candidates[0]
    return found


def _by_name(datasets: Iterable[Dataset]) -> dict[str, list[Dataset]]:
    found: dict[str, list[Dataset]] = {}
    for dataset in sorted(datasets, key=lambda d: str(d.dataset_id)):
        name = dataset.metadata.get(NAME_METADATA_KEY)
        if not dataset.deleted and isinstance(name, str) and is_valid_name(name):
            found.setdefault(name, []).append(dataset)
    return found


def find_volume(datasets: Iterable[Dataset], name: str) -> Dataset | None:
    """The one live dataset named ``name``, or ``None``; refuses a name several carry."""
    candidates = _by_name(datasets).get(name, [])
    if len(candidates) > 1:
        ids = ", ".join(str(d.dataset_id) for d in candidates)
        raise Conflict(
            f"Volume {name!r} is ambiguous: datasets {ids} all carry that name. Delete all "
            "but one (`shoal dataset delete ID`) or rename them, then retry."
        )
    return candidates[0] if candidates else None


def lease_for(leases: Iterable[Lease], dataset_id: UUID) -> Lease | None:
    """The lease on ``dataset_id`` among ``leases``, if any."""
    return next((lease for lease in leases if lease.dataset_id == dataset_id), None)


def state_for(states: Iterable[StateDataset], dataset_id: UUID) -> StateDataset | None:
    """What the cluster reports about ``dataset_id``, if anything."""
    return next((state for state in states if state.dataset_id == dataset_id), None)


def no_such_volume(name: str) -> str:
    """The message for an unknown name (Podman recognises "no such volume")."""
    return f"no such volume: {name!r} is not a Shoal volume (create it first)."


# -- Create ------------------------------------------------------------------------


@frozen
class CreateOptions:
    """What a ``VolumeDriver.Create`` asks for; ``explicit`` when ``size`` was given.

    ``from_snapshot`` (a snapshot name) or ``clone_of`` (a volume name) make a
    restore or a clone; ``filesystem`` is ``fs`` (``None``: the default, or
    the source's).
    """

    size: int | None
    explicit: bool = False
    from_snapshot: str | None = None
    clone_of: str | None = None
    filesystem: str | None = None
    storage_class: str | None = None
    access_mode: str | None = None

    @property
    def placed_by_class(self) -> bool:
        """Whether the control service chooses the node (a class or access mode is named)."""
        return self.storage_class is not None or self.access_mode is not None


def _text_option(opts: Mapping[str, object], key: str) -> str | None:
    value = opts.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"The {key} option must be a non-empty string.")
    return value


def _source_options(opts: Mapping[str, object]) -> dict[str, Any]:
    found: dict[str, Any] = {
        "from_snapshot": _text_option(opts, "from-snapshot"),
        "clone_of": _text_option(opts, "clone-of"),
        "filesystem": _text_option(opts, "fs"),
        "storage_class": _text_option(opts, "class"),
        "access_mode": _text_option(opts, "access-mode"),
    }
    if found["from_snapshot"] is not None and found["clone_of"] is not None:
        raise InvalidRequest("Give from-snapshot or clone-of, not both: a volume has one source.")
    if found["filesystem"] is not None and found["filesystem"] not in FILESYSTEMS:
        raise InvalidRequest(
            f"The fs option {found['filesystem'][:40]!r} is not one of: {', '.join(FILESYSTEMS)}."
        )
    return found


def parse_create_options(opts: object, default_size: int | None) -> CreateOptions:
    """Read Docker's ``Opts``; refuse unknown options, listing the known ones.

    A restore or clone without ``size`` takes its source's size, not ``default_size``.
    """
    if opts is None:
        opts = {}
    if not isinstance(opts, Mapping):
        raise InvalidRequest("Opts must be an object of option names to string values.")
    unknown = sorted(str(key) for key in opts if key not in KNOWN_OPTIONS)
    if unknown:
        known = "; ".join(f"{key}: {meaning}" for key, meaning in KNOWN_OPTIONS.items())
        raise InvalidRequest(
            f"Unknown volume option(s) {', '.join(map(repr, unknown))}. Known options: {known}."
        )
    source = _source_options(opts)
    copied = source["from_snapshot"] is not None or source["clone_of"] is not None
    if "size" not in opts:
        classed = source["storage_class"] is not None  # the class's default size applies
        return CreateOptions(size=None if copied or classed else default_size, **source)
    text = opts["size"]
    if not isinstance(text, str):
        raise InvalidRequest("The size option must be a string such as 10G.")
    size = parse_size(text)
    check_maximum_size(size, "The size option")
    return CreateOptions(size=size, explicit=True, **source)


def find_snapshot(snapshots: Iterable[DatasetSnapshot], name: str) -> DatasetSnapshot:
    """The live snapshot called ``name``, or refuse (404) saying how to list them."""
    for snapshot in snapshots:
        if snapshot.name == name and not snapshot.deleted:
            return snapshot
    raise NotFound(
        f"No snapshot is named {name!r}: `shoal snapshot list` shows them "
        "(`shoal snapshot create VOLUME --name NAME` makes one)."
    )


def source_of(
    options: CreateOptions, datasets: Iterable[Dataset], snapshots: Iterable[DatasetSnapshot]
) -> DataSource | None:
    """The source a Create's options name, or ``None`` for a new empty volume."""
    if options.from_snapshot is not None:
        found = find_snapshot(snapshots, options.from_snapshot)
        return DataSource(SourceKind.SNAPSHOT, found.snapshot_id)
    if options.clone_of is not None:
        volume = find_volume(datasets, options.clone_of)
        if volume is None:
            raise NotFound(no_such_volume(options.clone_of))
        return DataSource(SourceKind.DATASET, volume.dataset_id)
    return None


def check_existing(name: str, existing: Dataset, options: CreateOptions) -> None:
    """Accept a Create of an existing volume unless it asks for another size."""
    if options.explicit and options.size != existing.maximum_size:
        raise Conflict(
            f"Volume {name!r} already exists with size {format_size(existing.maximum_size)}, "
            f"not {format_size(options.size)}. Use another name, or remove it first."
        )


def create_metadata(name: str) -> dict[str, str]:
    """The metadata of a new dataset for volume ``name``."""
    return {NAME_METADATA_KEY: check_name(name)}


# -- Mount -------------------------------------------------------------------------


@frozen
class Refused:
    """The request cannot be done now; ``message`` says why and what to do."""

    message: str


@frozen
class Claim:
    """Mount here: take the lease first if ``acquire``, then move here if ``move``, then wait;
    ``read``: instead of both, become a reader of a ReadOnlyMany dataset bound elsewhere."""

    acquire: bool
    move: bool
    read: bool = False


def node_label(node: UUID, names: Mapping[UUID, str]) -> str:
    """A node as people know it: its name and uuid when the name is known."""
    name = names.get(node)
    return f"{name} ({node})" if name else str(node)


def _release_hint(lease: Lease) -> str:
    return (
        "If no container uses it any more (its node is gone), release the lease: "
        f"`shoal lease release {lease.dataset_id}`."
    )


def decide_mount(
    name: str,
    dataset: Dataset,
    lease: Lease | None,
    node: UUID,
    names: Mapping[UUID, str],
    mode: AccessMode = AccessMode.RWO,
) -> Refused | Claim:
    """What a Mount on ``node`` does, given the dataset, its current lease and access mode.

    A ReadOnlyMany dataset bound to another node is read here beside it (no lease,
    no move: its primary keeps it, and every node mounts it read-only)."""
    if mode is AccessMode.ROX and dataset.bound and dataset.primary != node:
        return Claim(acquire=False, move=False, read=True)
    if lease is not None and lease.node_uuid != node:
        return Refused(
            f"Volume {name!r} is in use on node {node_label(lease.node_uuid, names)}: it holds "
            "the volume's lease while containers there use it. Stop those containers, then retry. "
            f"{_release_hint(lease)}"
        )
    return Claim(acquire=lease is None, move=dataset.primary != node)


def single_consumer(
    name: str, mode: AccessMode, users: Iterable[str], mount_id: str
) -> Refused | None:
    """Refuse a second consumer of a ReadWriteOncePod volume on this node (any other mode:
    ``None``; the same Mount ID again is not a second consumer)."""
    others = sorted(set(users) - {mount_id})
    if mode is not AccessMode.RWOP or not others:
        return None
    return Refused(
        f"Volume {name!r} is ReadWriteOncePod: one container at a time, and container "
        f"{others[0][:12]} on this node uses it. Stop that container first, or use a class "
        "that allows ReadWriteOnce."
    )


def with_own_states(
    states: Sequence[StateDataset], here: Sequence[StateDataset], node: UUID
) -> list[StateDataset]:
    """The cluster's view of each dataset, except where this node itself has it attached or
    mounted (``here``: as it alone reports): a ReadOnlyMany dataset its primary mounts
    elsewhere is mounted here too."""
    own = {s.dataset_id: s for s in here if s.primary == node}
    return [own.get(s.dataset_id, s) for s in states]


@frozen
class Mounted:
    """The volume is mounted on this node at ``path``."""

    path: str


@frozen
class Waiting:
    """The volume is not mounted here yet; ``reason`` says what it waits for."""

    reason: str


def mount_progress(
    state: StateDataset | None, node: UUID, names: Mapping[UUID, str]
) -> Mounted | Waiting:
    """How far the volume is from being mounted on ``node``, from the reported state."""
    progress = progress_towards(state, node)
    if progress.stage is Stage.MOUNTED and progress.path is not None:
        return Mounted(progress.path)
    if progress.stage is Stage.ELSEWHERE and progress.holder is not None:
        return Waiting(f"still attached to node {node_label(progress.holder, names)}")
    return Waiting(_WAITING[progress.stage])


_WAITING = {
    Stage.UNREPORTED: "not yet reported by any agent (is the agent on this node running?)",
    Stage.DETACHED: "present in the storage backend but not yet attached to this node",
    Stage.ATTACHED: "attached to this node but not yet mounted",
}


def mount_timeout_message(name: str, dataset_id: UUID, seconds: float, waiting: Waiting) -> str:
    """The message of a Mount that gave up waiting."""
    return (
        f"Timed out after {seconds:g} s waiting for volume {name!r} (dataset {dataset_id}) to be "
        f"mounted on this node: it is {waiting.reason}."
    )


def mount_blocked_message(name: str, blocked: NodeCondition, names: Mapping[UUID, str]) -> str:
    """The message of a Mount given up because an agent reports a permanent error."""
    return (
        f"Volume {name!r} cannot be mounted: node {node_label(blocked.node_uuid, names)} reports "
        f"{blocked.condition.message}. This will not succeed without a change: remove the "
        "volume and create it again with options that can succeed (a smaller size, say)."
    )


# -- Remove ------------------------------------------------------------------------


@frozen
class Delete:
    """Delete the dataset; first release this node's stale lease if ``release``."""

    release: bool


def decide_remove(
    name: str,
    lease: Lease | None,
    local_users: int,
    node: UUID,
    names: Mapping[UUID, str],
) -> Refused | Delete:
    """Whether a Remove may delete the volume, given who uses it."""
    if local_users:
        return Refused(
            f"Volume {name!r} is in use by {local_users} container mount(s) on this node; "
            "stop and remove those containers first."
        )
    if lease is not None and lease.node_uuid != node:
        return Refused(
            f"Volume {name!r} is in use on node {node_label(lease.node_uuid, names)}, which "
            f"holds its lease; stop the containers using it there first. {_release_hint(lease)}"
        )
    return Delete(release=lease is not None)


# -- Get, List, Path ---------------------------------------------------------------


def local_mountpoint(state: StateDataset | None, node: UUID) -> str:
    """The volume's mount path if it is mounted on ``node``, else ``""``."""
    if state is not None and state.primary == node and state.path is not None:
        return state.path
    return ""


def volume_status(
    dataset: Dataset, state: StateDataset | None, lease: Lease | None
) -> dict[str, object]:
    """The ``Status`` shown by ``docker volume inspect``: where the volume really is."""
    return {
        "dataset_id": str(dataset.dataset_id),
        "primary": str(dataset.primary),
        "size": format_size(dataset.maximum_size),
        "attached_to": str(state.primary) if state and state.primary else None,
        "mounted_at": state.path if state else None,
        "leased_by": str(lease.node_uuid) if lease else None,
    }


def volume_json(
    name: str,
    dataset: Dataset,
    state: StateDataset | None,
    lease: Lease | None,
    node: UUID,
) -> dict[str, object]:
    """One volume as ``VolumeDriver.Get`` answers it."""
    return {
        "Name": name,
        "Mountpoint": local_mountpoint(state, node),
        "Status": volume_status(dataset, state, lease),
    }


def list_json(
    datasets: Iterable[Dataset], states: Iterable[StateDataset], node: UUID
) -> list[dict[str, str]]:
    """Every named live volume as ``VolumeDriver.List`` answers it, sorted by name."""
    by_id = {state.dataset_id: state for state in states}
    return [
        {"Name": name, "Mountpoint": local_mountpoint(by_id.get(dataset.dataset_id), node)}
        for name, dataset in sorted(named_datasets(datasets).items())
    ]
