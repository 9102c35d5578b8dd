"""
Backend names: ``--backend NAME`` resolves here, without touching the loop.

``BACKENDS`` maps each built-in name to a factory that takes keyword options
(``pool``, ``cluster_id``, ``instance_id``, ``overcommit``, ...). Third-party backends
register a factory in the ``shoal.backends`` entry-point group. The built-in factories
import their backend when called, so listing the names loads no backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any
from uuid import UUID

from agent.backends.interface import BackendError, BlockDeviceAPI

if TYPE_CHECKING:
    from agent.backends.fake import FakeStorage

ENTRY_POINT_GROUP = "shoal.backends"

BackendFactory = Callable[..., BlockDeviceAPI]


class UnknownBackend(BackendError):
    """No backend is registered under that name."""


def _loopback(
    *, pool: str, cluster_id: UUID, instance_id: str, overcommit: float | None = None, **_: Any
) -> BlockDeviceAPI:
    from agent.backends.loopback import LoopbackBlockDeviceAPI

    return LoopbackBlockDeviceAPI(
        pool=pool, cluster_id=cluster_id, instance_id=instance_id, overcommit=overcommit
    )


def _local(
    *, cluster_id: UUID, instance_id: str, pool: str | None = None,
    overcommit: float | None = None, **_: Any
) -> BlockDeviceAPI:
    from agent.backends.local import LocalBlockDeviceAPI

    if pool is None:
        raise BackendError("--backend local needs --pool DIR: a directory on this node's disk.")
    return LocalBlockDeviceAPI(
        pool=pool, cluster_id=cluster_id, instance_id=instance_id, overcommit=overcommit
    )


def _fake(
    *, cluster_id: UUID, instance_id: str, storage: FakeStorage | None = None, **_: Any
) -> BlockDeviceAPI:
    from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage

    return FakeBlockDeviceAPI(storage or FakeStorage(), cluster_id, instance_id)


def _rbd(
    *,
    cluster_id: UUID,
    instance_id: str,
    ceph_conf: str | None = None,
    ceph_client: str | None = None,
    ceph_keyring: str | None = None,
    ceph_pool: str | None = None,
    rbd_run_dir: str | None = None,
    rbd_attach: str | None = None,
    overcommit: float | None = None,
    **_: Any,
) -> BlockDeviceAPI:
    from agent.backends.rbd.backend import DEFAULT_RUN_DIR, RbdBlockDeviceAPI
    from agent.backends.rbd.session import CephSettings

    defaults = CephSettings()
    settings = CephSettings(
        conf=ceph_conf or defaults.conf,
        client=ceph_client or defaults.client,
        keyring=ceph_keyring,
        pool=ceph_pool or defaults.pool,
    )
    api = RbdBlockDeviceAPI(
        cluster_id=cluster_id,
        instance_id=instance_id,
        settings=settings,
        run_dir=rbd_run_dir or DEFAULT_RUN_DIR,
        overcommit=overcommit if overcommit is not None else 1.0,
        attach_method=rbd_attach or "auto",
    )
    api.sweep_temporaries()
    return api


BACKENDS: Mapping[str, BackendFactory] = {
    "loopback": _loopback,
    "local": _local,
    "fake": _fake,
    "rbd": _rbd,
}


def _plugins() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def backend_names() -> list[str]:
    """Every backend name: the built-in ones and those of installed plugins."""
    return sorted(set(BACKENDS) | set(_plugins()))


def make_backend(name: str, **options: Any) -> BlockDeviceAPI:
    """A backend built by the factory registered as ``name``, given ``options``.

    Built-in names win over plugins. Raises :class:`UnknownBackend` naming the
    known backends.
    """
    factory = BACKENDS.get(name)
    if factory is None:
        plugin = _plugins().get(name)
        if plugin is None:
            raise UnknownBackend(
                f"Unknown backend {name!r}; known backends: {', '.join(backend_names())}."
            )
        factory = plugin.load()
    return factory(**options)
