"""
``ReadOnlyMany`` readers: the nodes besides the primary that mount a dataset read-only (pure).

A reader is added when a consumer asks for the dataset on a node that is not
its primary (the Docker plugin's Mount, ``shoal dataset attach NAME --node N``)
and removed when that node's last consumer lets go (``shoal dataset detach``).
The rules here decide on the dataset record and the node's reported backends;
both stores call :func:`add_reader` and :func:`remove_reader` inside the write.
"""

from __future__ import annotations

from uuid import UUID

from attrs import evolve

from control.errors import Conflict, NotFound
from control.model import AccessMode, Capacity, Dataset

NOT_READ_ONLY_MANY = (
    "Dataset {name} is {mode}: only a ReadOnlyMany dataset is mounted on several nodes at once. "
    "Move it (`shoal dataset move`), or make a ReadOnlyMany copy of it "
    "(`shoal dataset create --clone-of {name} --class CLASS --access-mode ROX`)."
)


def _label(dataset: Dataset) -> str:
    return dataset.name or str(dataset.dataset_id)


def _require_live(existing: Dataset | None, dataset_id: UUID) -> Dataset:
    if existing is None:
        raise NotFound(f"Dataset {dataset_id} does not exist.")
    if existing.deleted or existing.released:
        what = "deleted" if existing.deleted else "released"
        raise Conflict(f"Dataset {_label(existing)} is {what}; no node can read it.")
    return existing


def add_reader(existing: Dataset | None, dataset_id: UUID, node: UUID, known: bool) -> Dataset:
    """The dataset with ``node`` among its readers (unchanged if it is one, or its primary).

    Refuses (409) a dataset that is not ``ReadOnlyMany``, deleted, released or
    unbound (bind it first: its primary creates the volume), and (404) a node
    that has not registered.
    """
    current = _require_live(existing, dataset_id)
    if current.access_mode is not AccessMode.ROX:
        raise Conflict(
            NOT_READ_ONLY_MANY.format(name=_label(current), mode=current.access_mode.value)
        )
    if not known:
        raise NotFound(f"Node {node} has not registered; start its agent first.")
    if not current.bound:
        raise Conflict(
            f"Dataset {_label(current)} is not bound to a node yet; bind it first "
            f"(`shoal dataset attach {_label(current)} --node N`): its primary makes the volume."
        )
    if node == current.primary or node in current.readers:
        return current
    return evolve(current, readers=current.readers | {node})


def remove_reader(existing: Dataset | None, dataset_id: UUID, node: UUID) -> Dataset:
    """The dataset without ``node`` among its readers (unchanged if it is not one)."""
    if existing is None:
        raise NotFound(f"Dataset {dataset_id} does not exist.")
    if node not in existing.readers:
        return existing
    return evolve(existing, readers=existing.readers - {node})


def reader_refusal(
    dataset: Dataset, node_name: str, primary: Capacity | None, theirs: Capacity | None
) -> str | None:
    """Why the node ``node_name`` (reporting ``theirs`` for the dataset's backend) cannot read
    the dataset, whose primary reports ``primary``; ``None`` when it can."""
    backend = dataset.backend or (primary.backend if primary is not None else None)
    if primary is not None and not primary.shared:
        return (
            f"Node {node_name} cannot read dataset {_label(dataset)}: its volume is on the "
            f"node-local backend {primary.backend} of its primary, which no other node reaches."
        )
    if theirs is None:
        return (
            f"Node {node_name} cannot read dataset {_label(dataset)}: it does not report the "
            f"backend {backend or 'of the dataset'}. Choose a node that has it."
        )
    if not theirs.read_only_many:
        return (
            f"Node {node_name} cannot read dataset {_label(dataset)}: its {theirs.backend} "
            "backend cannot attach a volume read-only on several nodes at once (ReadOnlyMany). "
            "Use a class on a backend that can (loopback)."
        )
    return None
