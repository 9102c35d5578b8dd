"""Finding the processes that hold a mount point busy, from /proc."""

from __future__ import annotations

import subprocess
import sys

from agent.fs.holders import describe_holders, holders

OPEN_AND_WAIT = "import sys; f = open(sys.argv[1]); print('open', flush=True); sys.stdin.read()"


def test_a_process_whose_working_directory_is_under_the_path_holds_it(tmp_path):
    """A child sitting in a directory under the path is found, with its command name."""
    inside = tmp_path / "mnt" / "sub"
    inside.mkdir(parents=True)
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        cwd=inside,
        stdin=subprocess.PIPE,
    )
    try:
        found = holders(str(tmp_path / "mnt"))
        assert child.pid in [h.pid for h in found]
        assert f"pid {child.pid} (" in describe_holders(str(tmp_path / "mnt"))
    finally:
        child.communicate(b"")


def test_a_process_with_a_file_open_under_the_path_holds_it(tmp_path):
    """An open file descriptor counts, and a sibling directory does not."""
    (tmp_path / "mnt").mkdir()
    (tmp_path / "mnt2").mkdir()
    target = tmp_path / "mnt" / "f"
    target.write_text("x")
    child = subprocess.Popen(
        [sys.executable, "-c", OPEN_AND_WAIT, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"open\n"
        assert child.pid in [h.pid for h in holders(str(tmp_path / "mnt"))]
        assert child.pid not in [h.pid for h in holders(str(tmp_path / "mnt2"))]
    finally:
        child.communicate(b"")


def test_nothing_holds_an_unused_path(tmp_path):
    """No holder: an empty description."""
    assert describe_holders(str(tmp_path)) == ""
