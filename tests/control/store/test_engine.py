"""SQLite files of the store are private to the service's user."""

from __future__ import annotations

import os
import stat

from control.store.migrate import upgrade
from control.store.sql import SQLStore
from tests.control.store.conformance import add_node


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_database_and_its_journal_are_private(tmp_path) -> None:
    """control.db and its -wal and -shm files are created 0600 under the usual umask."""
    path = str(tmp_path / "control.db")
    url = f"sqlite:///{path}"
    previous = os.umask(0o022)
    try:
        upgrade(url)
        store = SQLStore(url)
        try:
            add_node(store)
            files = [p for p in (path, f"{path}-wal", f"{path}-shm") if os.path.exists(p)]
            assert len(files) == 3
            assert {name: _mode(name) for name in files} == {name: 0o600 for name in files}
        finally:
            store.close()
    finally:
        os.umask(previous)


def test_existing_database_mode_is_kept(tmp_path) -> None:
    """A database file the operator made exists already: its mode is not changed."""
    path = str(tmp_path / "control.db")
    with open(path, "wb"):
        pass
    os.chmod(path, 0o640)
    upgrade(f"sqlite:///{path}")
    assert _mode(path) == 0o640
