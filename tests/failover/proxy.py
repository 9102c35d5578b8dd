"""
A loopback TCP proxy that can cut a node off the control service: a network partition.

``TcpProxy(upstream_port).start()`` listens on a free loopback port and
forwards each connection to the upstream port. :meth:`TcpProxy.cut` makes it
a black hole: bytes in either direction are read and dropped, and new
connections are accepted and never answered, as when packets are lost on the
way (the client sees no error, only silence, until its own timeouts).
:meth:`TcpProxy.heal` closes the connections held during the cut (their
clients reconnect) and forwards again. One thread runs a selector loop.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading

CHUNK = 65536


class TcpProxy(threading.Thread):
    """Forward loopback connections to ``upstream_port``, or drop everything while cut."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(daemon=True, name="tcp-proxy")
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.cut_off = False
        self.dropped = 0
        self._peers: dict[socket.socket, socket.socket | None] = {}
        self._selector = selectors.DefaultSelector()
        self._commands: list[str] = []
        self._lock = threading.Lock()
        self._wake_read, self._wake_write = socket.socketpair()
        self._done = threading.Event()

    @property
    def url(self) -> str:
        """The URL an agent uses to reach the control service through the proxy."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:  # type: ignore[override]
        """Start forwarding."""
        self._selector.register(self.listener, selectors.EVENT_READ)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        super().start()
        return self

    def _command(self, name: str) -> None:
        with self._lock:
            self._commands.append(name)
        self._wake_write.send(b"x")

    def cut(self) -> None:
        """Drop every byte from now on, in both directions, on old and new connections."""
        self.cut_off = True
        self._command("cut")

    def heal(self) -> None:
        """Close the connections held while cut and forward again."""
        self._command("heal")

    def close(self) -> None:
        """Stop the proxy and close every connection."""
        self._command("close")
        self._done.wait(5)

    def run(self) -> None:
        """The selector loop."""
        try:
            while True:
                for key, _ in self._selector.select(timeout=1.0):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self.listener:
                        self._accept()
                    elif sock is self._wake_read:
                        sock.recv(CHUNK)
                        if self._run_commands():
                            return
                    else:
                        self._pump(sock)
        finally:
            for sock in list(self._peers):
                self._close(sock)
            self._selector.close()
            self.listener.close()
            self._done.set()

    def _run_commands(self) -> bool:
        with self._lock:
            commands, self._commands = self._commands, []
        for command in commands:
            if command == "close":
                return True
            if command == "heal":
                for sock in list(self._peers):
                    self._close(sock)
                self.cut_off = False
        return False

    def _accept(self) -> None:
        with contextlib.suppress(BlockingIOError):
            client, _ = self.listener.accept()
            client.setblocking(False)
            upstream = None
            if not self.cut_off:
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.upstream_port), 5)
                except OSError:
                    client.close()
                    return
                upstream.setblocking(False)
                self._peers[upstream] = client
                self._selector.register(upstream, selectors.EVENT_READ)
            self._peers[client] = upstream
            self._selector.register(client, selectors.EVENT_READ)

    def _pump(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(CHUNK)
        except OSError:
            data = b""
        if not data:
            if self.cut_off:
                self._close_one(sock)  # a black hole passes no FIN on either
            else:
                self._close(sock)
            return
        peer = self._peers.get(sock)
        if self.cut_off or peer is None:
            self.dropped += len(data)
            return
        try:
            peer.setblocking(True)
            peer.sendall(data)
            peer.setblocking(False)
        except OSError:
            self._close(sock)

    def _close_one(self, sock: socket.socket) -> None:
        peer = self._peers.pop(sock, None)
        if peer is not None and peer in self._peers:
            self._peers[peer] = None
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        sock.close()

    def _close(self, sock: socket.socket) -> None:
        peer = self._peers.pop(sock, None)
        for one in (sock, peer):
            if one is None:
                continue
            self._peers.pop(one, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(one)
            one.close()
