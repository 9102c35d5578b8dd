"""
A listing kept encoded in sorted blocks: :class:`Blocks`.

Listings of 100,000 datasets are 18 MB of JSON. Encoding them whole after every
write costs seconds; :class:`Blocks` keeps the ids sorted (by their string form,
which is the order of :attr:`UUID.int`) in blocks of a few hundred, each with
its encoded items cached. A change marks one block to encode again, so a
listing after a write re-encodes a few hundred items and joins the blocks, and
a page (``after`` an id, at most ``limit``) is found by bisection.

Not thread-safe: its owner holds a lock around every call.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator
from operator import attrgetter
from uuid import UUID

SIZE = 128
"""Ids per block (a block is split when it reaches twice as many)."""

Encode = Callable[[list[UUID]], bytes]
"""Encodes the items of some ids, in order, as the inside of a JSON array (no brackets)."""

_INT = attrgetter("int")


class Blocks:
    """Ids in sorted blocks, each with its encoded items cached (``None``: encode again)."""

    def __init__(self, ids: Iterable[UUID] = (), size: int = SIZE) -> None:
        ordered = sorted(set(ids), key=_INT)
        self._size = size
        self._blocks = [ordered[i:i + size] for i in range(0, len(ordered), size)]
        self._encoded: list[bytes | None] = [None] * len(self._blocks)
        self._count = len(ordered)

    def __len__(self) -> int:
        return self._count

    def _find(self, key: int) -> int:
        """The index of the block ``key`` belongs in."""
        firsts = [b[0].int for b in self._blocks]  # few hundred blocks: cheap next to encoding
        return max(0, bisect_right(firsts, key) - 1)

    def add(self, dataset_id: UUID) -> None:
        """Add ``dataset_id``, or mark its item to be encoded again if present."""
        if not self._blocks:
            self._blocks, self._encoded = [[dataset_id]], [None]
            self._count = 1
            return
        index = self._find(dataset_id.int)
        block = self._blocks[index]
        at = bisect_left(block, dataset_id.int, key=_INT)
        self._encoded[index] = None
        if at < len(block) and block[at] == dataset_id:
            return
        insort(block, dataset_id, key=_INT)
        self._count += 1
        if len(block) >= 2 * self._size:
            self._blocks[index:index + 1] = [block[:self._size], block[self._size:]]
            self._encoded[index:index + 1] = [None, None]

    def discard(self, dataset_id: UUID) -> None:
        """Remove ``dataset_id`` if present."""
        if not self._blocks:
            return
        index = self._find(dataset_id.int)
        block = self._blocks[index]
        at = bisect_left(block, dataset_id.int, key=_INT)
        if at == len(block) or block[at] != dataset_id:
            return
        del block[at]
        self._count -= 1
        if block:
            self._encoded[index] = None
        else:
            del self._blocks[index], self._encoded[index]

    def body(self, encode: Encode) -> bytes:
        """The whole JSON array, encoding only the blocks that changed."""
        return b"".join(self.parts(encode))

    def parts(self, encode: Encode) -> tuple[bytes, ...]:
        """The whole JSON array in parts (sent one after another: the blocks' cached bytes,
        not a joined copy of them), encoding only the blocks that changed."""
        parts = [b"["]
        for chunk in self._chunks(encode):
            parts += (chunk, b",")
        parts[-1:] = [b"]"] if len(parts) > 1 else [b"[", b"]"]
        return tuple(parts)

    def _chunks(self, encode: Encode) -> Iterator[bytes]:
        for index, block in enumerate(self._blocks):
            encoded = self._encoded[index]
            if encoded is None:
                encoded = self._encoded[index] = encode(block)
            yield encoded

    def page(self, after: UUID | None, limit: int, encode: Encode) -> tuple[bytes, UUID | None]:
        """The encoded items of at most ``limit`` ids following ``after`` (from the first if
        ``None``), without brackets, and the last id listed if more follow.

        Whole blocks that fit are answered from their cache, so a page may hold fewer than
        ``limit`` items (as Kubernetes' pages may): it stops before a block that does not fit.
        """
        index, at = 0, 0
        if after is not None and self._blocks:
            index = self._find(after.int)
            at = bisect_right(self._blocks[index], after.int, key=_INT)
        chunks: list[bytes] = []
        count, last = 0, None
        while index < len(self._blocks) and count < limit:
            block = self._blocks[index]
            if at == 0 and count + len(block) <= limit:
                encoded = self._encoded[index]
                if encoded is None:
                    encoded = self._encoded[index] = encode(block)
                taken = block
            elif count == 0 or at > 0:
                taken = block[at:at + limit - count]
                encoded = encode(taken) if taken else b""
            else:
                break
            if taken:
                chunks.append(encoded)
                count, last = count + len(taken), taken[-1]
            at = at + len(taken) if at + len(taken) < len(block) else 0
            index += 0 if at else 1
        more = last is not None and self._follows(last)
        return b",".join(chunks), last if more else None

    def _follows(self, dataset_id: UUID) -> bool:
        """Whether any id follows ``dataset_id``."""
        index = self._find(dataset_id.int)
        return index + 1 < len(self._blocks) or self._blocks[index][-1].int > dataset_id.int
