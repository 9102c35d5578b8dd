"""The plugin's Unix socket: stale sockets are replaced, live ones and files refused."""

from __future__ import annotations

import os
import socket
import stat

import pytest
import pytest_twisted

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


@pytest.mark.parametrize("grouped", [False, True])
@pytest_twisted.ensureDeferred
async def test_socket_is_root_only_or_its_group(workdir: str, grouped: bool) -> None:
    """The served socket is 0600 (its owner only), or 0660 owned by --socket-group."""
    import grp

    from twisted.internet import reactor

    from control.client.testing import MemoryControl
    from plugin.serve import PluginOptions, start_plugin

    group = grp.getgrgid(os.getgid()).gr_name if grouped else None
    path = os.path.join(workdir, "plugin.sock")
    options = PluginOptions(
        socket=path,
        agent_state_dir=os.path.join(workdir, "agent"),
        state_dir=os.path.join(workdir, "plugin"),
        socket_group=group,
    )
    port = await start_plugin(reactor, MemoryControl().client, options)
    try:
        status = os.stat(path)
        assert stat.S_IMODE(status.st_mode) == (0o660 if grouped else 0o600)
        assert status.st_gid == os.getgid()
    finally:
        await port.stopListening()
