"""The plugin's Unix socket: stale sockets are replaced, live ones and files refused."""

from __future__ import annotations

import os
import socket

import pytest

from control.errors import InvalidRequest
from plugin.serve import prepare_socket

pytestmark = pytest.mark.functional


def test_stale_socket_is_replaced(workdir: str) -> None:
    """A socket nobody listens on any more is removed."""
    path = os.path.join(workdir, "p.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.close()
    prepare_socket(path)
    assert not os.path.exists(path)


def test_live_socket_is_refused(workdir: str) -> None:
    """A socket another process serves is left alone."""
    path = os.path.join(workdir, "p.sock")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen(1)
        with pytest.raises(InvalidRequest, match="already serving"):
            prepare_socket(path)
    assert os.path.exists(path)


def test_regular_file_is_refused(workdir: str) -> None:
    """A path holding something other than a socket is refused."""
    path = os.path.join(workdir, "p.sock")
    open(path, "w").close()
    with pytest.raises(InvalidRequest, match="not a socket"):
        prepare_socket(path)
