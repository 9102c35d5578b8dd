"""Sorted encoded blocks keep ids in string order through adds and removes, and page them."""

from __future__ import annotations

import json
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from control.api.blocks import Blocks

ids = st.builds(UUID, int=st.integers(min_value=0, max_value=2**128 - 1))


def encode(block: list[UUID]) -> bytes:
    """Each id as a JSON string."""
    return json.dumps([str(i) for i in block])[1:-1].encode()


@given(st.lists(ids, max_size=40), st.lists(st.tuples(st.booleans(), ids), max_size=60),
       st.integers(min_value=1, max_value=5))
def test_blocks_list_like_a_sorted_set(
    start: list[UUID], changes: list[tuple[bool, UUID]], size: int
) -> None:
    """After any adds and discards, the body lists the ids sorted by their string form, and
    the pages of any size list them all once."""
    blocks, expected = Blocks(start, size=size), set(start)
    blocks.body(encode)
    for adding, dataset_id in changes:
        if adding:
            blocks.add(dataset_id)
            expected.add(dataset_id)
        else:
            blocks.discard(dataset_id)
            expected.discard(dataset_id)
        assert json.loads(blocks.body(encode)) == sorted(str(i) for i in expected)
    assert len(blocks) == len(expected)
    for limit in (1, size, size + 1, 3 * size):
        paged: list[str] = []
        after = None
        while True:
            items, after = blocks.page(after, limit, encode)
            page = json.loads(b"[" + items + b"]")
            assert 1 <= len(page) <= limit or not expected
            paged += page
            if after is None:
                break
            assert str(after) == page[-1]
        assert paged == sorted(str(i) for i in expected)


def test_page_after_an_id_no_longer_listed() -> None:
    """A page after an id that was removed since starts at the next id still listed."""
    listed = [UUID(int=n) for n in (1, 3, 5, 7)]
    blocks = Blocks(listed, size=2)
    blocks.discard(UUID(int=3))
    assert blocks.page(UUID(int=3), 2, encode) == (encode([UUID(int=5), UUID(int=7)]), None)
