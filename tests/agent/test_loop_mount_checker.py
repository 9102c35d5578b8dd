"""The functional tests' double-mount check catches what it must, and only that."""

from __future__ import annotations

from agent.fs.interface import Mount
from tests.agent.functional.cluster import double_mounts


def test_flags_a_dataset_mounted_under_two_roots():
    """The same dataset id under both agents' mount roots is a violation."""
    mounts = [Mount("/dev/loop0", "/c/node1/mounts/d1"), Mount("/dev/loop1", "/c/node2/mounts/d1")]
    assert double_mounts(mounts, ["/c/node1/mounts", "/c/node2/mounts"]) == [
        "d1 mounted under ['/c/node1/mounts', '/c/node2/mounts']"
    ]


def test_distinct_datasets_and_other_mounts_are_fine():
    """Different datasets on each node, and mounts outside the roots, are no violation."""
    mounts = [
        Mount("/dev/loop0", "/c/node1/mounts/d1"),
        Mount("/dev/loop1", "/c/node2/mounts/d2"),
        Mount("/dev/sda1", "/"),
        Mount("/dev/loop2", "/c/node1/mounts-other/d2"),
    ]
    assert double_mounts(mounts, ["/c/node1/mounts", "/c/node2/mounts"]) == []
