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
