"""Unix sockets the plugins serve on: made ready, never stolen from a live server."""

from __future__ import annotations

import os
import socket
import stat

from control.errors import InvalidRequest


def prepare_socket(path: str) -> None:
    """Make the socket's directory; remove a stale socket, refuse a live one."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise InvalidRequest(f"{path} exists and is not a socket; choose another --socket.")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise InvalidRequest(f"Another process is already serving {path}; stop it first.")


def socket_access(group: str | None) -> tuple[int, int | None]:
    """The socket's mode and group id: 0600 (its owner, root, only), or 0660 for ``group``.

    Whoever can write to the socket can have any volume of the cluster mounted
    on this node, so nobody else may; refuses a group that does not exist.
    """
    if group is None:
        return 0o600, None
    import grp

    try:
        gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise InvalidRequest(
            f"No group {group[:64]!r} on this host for --socket-group: create it, or leave "
            "the option out so that only root can use the socket."
        ) from None
    return 0o660, gid
