"""
One librados connection to the Ceph cluster, opened on first use and reopened after a fence.

A connection is a Ceph *client instance* (``client.NAME`` at ``ADDR/NONCE``).
When this node is fenced, the fencing node may blocklist the client instances
that had the volume open; a blocklisted connection fails every call with
``ESHUTDOWN``. :meth:`CephSession.run` then drops the connection and retries
once on a new one (a new nonce, which is not blocklisted).
"""

from __future__ import annotations

import errno
import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from attrs import define, field, frozen

from agent.backends.interface import BackendError
from agent.backends.rbd import bindings

T = TypeVar("T")
U = TypeVar("U")
PARALLEL = 8
"""Images looked at once by :meth:`CephSession.map`."""
CONNECT_TIMEOUT = 20
"""Seconds to wait for the monitors at connect."""
BLOCKLIST_EXPIRY = 3600
"""Seconds a fenced client instance stays blocklisted (Ceph's default)."""


@frozen
class CephSettings:
    """How to reach the cluster: ``ceph.conf``, the cephx client (``NAME``, without
    ``client.``) and its keyring, and the pool holding the volumes."""

    conf: str = "/etc/ceph/ceph.conf"
    client: str = "admin"
    keyring: str | None = None
    pool: str = "rbd"

    def cli_args(self) -> list[str]:
        """The options every Ceph command line tool (``rbd``, ``rbd-fuse``) takes to connect
        like this: for ``CEPH_ARGS`` (rbd-fuse has no ``--id`` option of its own)."""
        args = ["--id", self.client]
        if self.keyring:
            args += ["--keyring", self.keyring]
        return args


def _shut_down(error: BaseException) -> bool:
    """Whether ``error`` says the connection is blocklisted or shut down (``ESHUTDOWN``)."""
    return error_number(error) == errno.ESHUTDOWN or type(error).__name__ == "ConnectionShutdown"


def error_number(error: BaseException) -> int | None:
    """The (positive) errno a librados or librbd exception carries, if any."""
    number = getattr(error, "errno", None)
    return abs(number) if isinstance(number, int) else None


@define
class CephSession:
    """A lazily opened connection and I/O context on the settings' pool (thread-safe)."""

    settings: CephSettings
    _lock: threading.Lock = field(factory=threading.Lock)
    _rados: Any = None
    _ioctx: Any = None
    _workers: ThreadPoolExecutor | None = None

    def _open(self) -> tuple[Any, Any]:
        with self._lock:
            if self._ioctx is None:
                rados, _ = bindings.load()
                conf = {"rbd_default_clone_format": "2"}  # see agent.backends.rbd.snapshots
                if self.settings.keyring:
                    conf["keyring"] = self.settings.keyring
                cluster = rados.Rados(
                    conffile=self.settings.conf, rados_id=self.settings.client, conf=conf
                )
                try:
                    cluster.connect(timeout=CONNECT_TIMEOUT)
                    ioctx = cluster.open_ioctx(self.settings.pool)
                except Exception as e:
                    cluster.shutdown()
                    raise BackendError(
                        f"Cannot reach Ceph pool {self.settings.pool!r} as "
                        f"client.{self.settings.client} (conf {self.settings.conf}): {e}. Check "
                        "the configuration file, the keyring and that the pool exists."
                    ) from e
                self._rados, self._ioctx = cluster, ioctx
            return self._rados, self._ioctx

    def run(self, action: Callable[[Any], T]) -> T:
        """``action(ioctx)``; on a blocklisted connection, once more on a new connection."""
        _, ioctx = self._open()
        try:
            return action(ioctx)
        except Exception as e:
            if not _shut_down(e):
                raise
            self.close()
            _, ioctx = self._open()
            return action(ioctx)

    def map(self, action: Callable[[Any, U], T], items: Iterable[U]) -> list[T]:
        """``[action(ioctx, item) for item in items]``, several at once (librbd releases the
        GIL while it waits for the cluster: opening images one by one costs a round trip
        each)."""
        listed = list(items)
        if len(listed) < 2:
            return self.run(lambda io: [action(io, item) for item in listed])
        with self._lock:
            if self._workers is None:
                self._workers = ThreadPoolExecutor(PARALLEL, thread_name_prefix="shoal-rbd")
            workers = self._workers
        return self.run(lambda io: list(workers.map(lambda item: action(io, item), listed)))

    def cluster(self) -> Any:
        """The ``rados.Rados`` handle (connected)."""
        return self._open()[0]

    def address(self) -> str:
        """This connection's client address (``IP:PORT/NONCE``)."""
        return str(self.cluster().get_addrs())

    def mon_command(self, command: dict[str, Any]) -> Any:
        """Run a monitor command; its JSON output decoded. Raises :class:`BackendError`."""
        ret, out, status = self.cluster().mon_command(json.dumps(command), b"")
        if ret != 0:
            raise BackendError(f"Ceph refused {command['prefix']!r}: {status or ret}.")
        return json.loads(out) if out else None

    def blocklist(self, address: str) -> None:
        """Blocklist one client instance (``ceph osd blocklist add ADDR``)."""
        try:
            self.cluster().blocklist_add(address, BLOCKLIST_EXPIRY)
        except Exception as e:
            raise BackendError(
                f"Cannot blocklist {address}: {e}. The client needs the monitor capability "
                "'allow command \"osd blocklist\"' (see docs/backends.md)."
            ) from e

    def close(self) -> None:
        """Close the connection (the next call opens a new one); idempotent."""
        with self._lock:
            ioctx, cluster, self._ioctx, self._rados = self._ioctx, self._rados, None, None
            workers, self._workers = self._workers, None
        if workers is not None:
            workers.shutdown(wait=True)
        if ioctx is not None:
            ioctx.close()
        if cluster is not None:
            cluster.shutdown()


__all__ = ["CephSession", "CephSettings", "error_number"]
