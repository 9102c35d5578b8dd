"""
Encode one node's configuration fast: each dataset's JSON is kept between answers.

An agent fetches its node's configuration every time the watch wakes it, and
at 100,000 datasets over 1,000 nodes encoding its hundred (or thousands of)
datasets afresh was most of the answer's cost. :class:`NodeFragments` keeps the
encoded JSON of each dataset value it encoded, reused for as long as the
dataset is unchanged (a write stores a new value), so an answer costs joining
the node's fragments.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from control.api.errors import encode
from control.model import Dataset, Lease
from control.wire import node_dataset_to_json

LIMIT = 250_000
"""Forget every fragment once this many are kept (purged datasets leave theirs behind)."""


class NodeFragments:
    """The encoded JSON of datasets, by id, for as long as each is unchanged (reactor thread)."""

    def __init__(
        self, to_json: Callable[[Dataset], Any] = node_dataset_to_json, limit: int = LIMIT
    ) -> None:
        self._to_json = to_json
        self._limit = limit
        self._fragments: dict[UUID, tuple[Dataset, bytes]] = {}
        self._lists: dict[Hashable, tuple[Sequence[Dataset], list[bytes]]] = {}

    def __len__(self) -> int:
        return len(self._fragments)

    def array_of(self, key: Hashable, datasets: Sequence[Dataset]) -> bytes:
        """The JSON array of ``datasets`` (in the order given) for the asker ``key``: when the
        store hands ``key`` the same list object again (its datasets unchanged:
        :mod:`control.store.node_views`), the fragments found for it last are joined again
        without looking each one up."""
        kept = self._lists.get(key)
        if kept is None or kept[0] is not datasets:
            if len(self._lists) > self._limit // 10:
                self._lists = {}
            kept = (datasets, self._parts(datasets))
            self._lists[key] = kept
        return b"[" + b",".join(kept[1]) + b"]"

    def array(self, datasets: Iterable[Dataset]) -> bytes:
        """The JSON array of ``datasets``, in the order given."""
        return b"[" + b",".join(self._parts(datasets)) + b"]"

    def _parts(self, datasets: Iterable[Dataset]) -> list[bytes]:
        if len(self._fragments) > self._limit:
            self._fragments = {}
        kept = self._fragments
        parts = []
        for dataset in datasets:
            cached = kept.get(dataset.dataset_id)
            if cached is None or not (cached[0] is dataset or cached[0] == dataset):
                cached = (dataset, encode(self._to_json(dataset)))
                kept[dataset.dataset_id] = cached
            parts.append(cached[1])
        return parts


def with_array(name: str, array: bytes, rest: Mapping[str, Any]) -> bytes:
    """The JSON object of ``rest`` plus ``name`` holding the encoded ``array``."""
    tail = encode(dict(rest))
    joiner = b"," if len(tail) > 2 else b""
    return b"{" + encode(name) + b":" + array + joiner + tail[1:]


def live_leases_of(leases: Mapping[UUID, Lease], ids: Iterable[UUID], now: float) -> list[Lease]:
    """The leases of ``ids`` that have not expired at ``now``, by dataset id (a pass over
    whichever of the two is smaller)."""
    if not leases:
        return []
    ids = ids if isinstance(ids, set | frozenset) else set(ids)
    if len(leases) < len(ids):
        found = [v for k, v in leases.items() if k in ids]
    else:
        found = [v for k in ids if (v := leases.get(k)) is not None]
    return sorted((x for x in found if not x.expired(now)), key=lambda x: x.dataset_id)
