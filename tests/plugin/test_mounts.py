"""The mount table: a set of IDs per volume, and its atomic persistence."""

from __future__ import annotations

import json
import os
import stat
from uuid import UUID

import pytest

from plugin.mounts import MountFile, MountFileError, MountTable

DATASET = UUID(int=7)


def test_ids_are_counted_once_each() -> None:
    """A volume's users are a set: the same ID mounted twice counts once."""
    table = MountTable().mounted("v1", "a").mounted("v1", "b").mounted("v1", "a")
    assert table.count("v1") == 2
    assert table.count("other") == 0


def test_unmount_of_unknown_id_changes_nothing() -> None:
    """An Unmount of an ID or a name never mounted leaves the table as it was."""
    table = MountTable().mounted("v1", "a")
    assert table.unmounted("v1", "zzz") == table
    assert table.unmounted("v2", "a") == table


def test_last_unmount_makes_the_lease_releasable() -> None:
    """A held lease is due for release only once the last user is gone."""
    table = MountTable().leased("v1", DATASET).mounted("v1", "a").mounted("v1", "b")
    assert table.unmounted("v1", "a").to_release() == {}
    assert table.unmounted("v1", "a").unmounted("v1", "b").to_release() == {"v1": DATASET}
    assert table.unmounted("v1", "a").unmounted("v1", "b").released("v1") == MountTable()


def test_json_round_trip() -> None:
    """A table reads back equal from its JSON."""
    table = MountTable().leased("v1", DATASET).mounted("v1", "a").mounted("v2", "b")
    assert MountTable.from_json(json.loads(json.dumps(table.to_json()))) == table


def test_file_survives_a_new_instance(tmp_path: str) -> None:
    """What one MountFile saves, another on the same directory loads."""
    table = MountTable().leased("v1", DATASET).mounted("v1", "a")
    MountFile(str(tmp_path)).save(table)
    assert MountFile(str(tmp_path)).load() == table
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_file_is_private(tmp_path: str) -> None:
    """mounts.json is written 0600 whatever the umask, not 0644."""
    previous = os.umask(0o022)
    try:
        MountFile(str(tmp_path)).save(MountTable().leased("v1", DATASET))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(os.path.join(str(tmp_path), "mounts.json")).st_mode) == 0o600


def test_missing_file_is_an_empty_table(tmp_path: str) -> None:
    """Before the first save the table is empty."""
    assert MountFile(os.path.join(str(tmp_path), "new")).load() == MountTable()


@pytest.mark.parametrize("content", ["not json", '{"version": 99}', '{"version": 1}', "[]"])
def test_damaged_file_is_refused_clearly(tmp_path: str, content: str) -> None:
    """A damaged or unknown mount table is refused, naming the file."""
    mounts = MountFile(str(tmp_path))
    with open(mounts.path, "w") as f:
        f.write(content)
    with pytest.raises(MountFileError, match="mounts.json"):
        mounts.load()
