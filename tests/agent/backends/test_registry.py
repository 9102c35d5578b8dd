"""Backend names resolve to factories, built-in or from entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from agent.backends import registry
from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage
from agent.backends.loopback import LoopbackBlockDeviceAPI
from agent.backends.registry import BACKENDS, UnknownBackend, backend_names, make_backend


def test_builtin_names() -> None:
    """The loopback, fake and rbd backends are built in."""
    assert {"loopback", "fake", "rbd"} <= set(BACKENDS)
    assert {"loopback", "fake", "rbd"} <= set(backend_names())


def test_make_loopback(tmp_path: Path) -> None:
    """``loopback`` builds a loopback backend from keyword options, ignoring extra ones."""
    cluster_id = uuid4()
    api = make_backend(
        "loopback", pool=str(tmp_path), cluster_id=cluster_id, instance_id="n1", unused=1
    )
    assert isinstance(api, LoopbackBlockDeviceAPI)
    assert (api.pool, api.cluster_id, api.compute_instance_id()) == (
        str(tmp_path),
        cluster_id,
        "n1",
    )


def test_make_fake_shares_storage() -> None:
    """``fake`` builds a fake backend on the given storage."""
    storage = FakeStorage()
    api = make_backend("fake", cluster_id=uuid4(), instance_id="n1", storage=storage)
    assert isinstance(api, FakeBlockDeviceAPI)
    assert api.storage is storage


def test_unknown_name() -> None:
    """An unknown name raises UnknownBackend listing the known ones."""
    with pytest.raises(UnknownBackend, match="loopback"):
        make_backend("nonesuch")


class _EntryPoint:
    name = "thirdparty"

    def load(self) -> Any:
        return lambda **options: ("built", options)


def test_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend registered in the ``shoal.backends`` group is found by name."""
    groups: list[str] = []

    def entry_points(group: str) -> list[_EntryPoint]:
        groups.append(group)
        return [_EntryPoint()]

    monkeypatch.setattr(registry, "entry_points", entry_points)
    assert "thirdparty" in backend_names()
    assert make_backend("thirdparty", x=1) == ("built", {"x": 1})
    assert set(groups) == {"shoal.backends"}
