"""The gRPC side: each RPC reaches its service method, and refusals arrive as the CSI codes."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from control.errors import Conflict, NotFound
from plugin.csi.errors import CsiError
from plugin.csi.proto import csi_pb2 as csi
from plugin.csi.server import Bridge, start_server
from tests.plugin.csi.harness import Csi

pytestmark = pytest.mark.functional


class CallingReactor:
    """Stands for the reactor: runs what a gRPC thread hands it at once, on that thread."""

    def callFromThread(self, f: Callable[..., Any], *args: Any) -> None:
        f(*args)


class Refusing:
    """A controller whose RPCs answer or refuse as the request's name says."""

    async def CreateVolume(self, request: Any) -> Any:
        refusals = {
            "exists": CsiError(grpc.StatusCode.ALREADY_EXISTS, "volume 'exists' has another size"),
            "gone": NotFound("no such dataset"),
            "held": Conflict("node2 holds it"),
            "bug": RuntimeError("oops"),
        }
        if request.name in refusals:
            raise refusals[request.name]
        return csi.CreateVolumeResponse(volume=csi.Volume(volume_id="v-" + request.name))


@pytest.fixture
def served() -> Iterator[tuple[Csi, Bridge]]:
    """A server of :class:`Refusing` on a Unix socket, and a client of it."""
    directory = tempfile.mkdtemp(prefix="shoal-grpc-")
    endpoint = "unix://" + os.path.join(directory, "csi.sock")
    bridge = Bridge(CallingReactor())
    server = start_server(endpoint, {"controller": Refusing()}, bridge, workers=2)
    client = Csi(endpoint)
    yield client, bridge
    client.channel.close()
    server.stop(None)
    shutil.rmtree(directory, ignore_errors=True)


def status(client: Csi, name: str) -> tuple[grpc.StatusCode, str]:
    """The code and details CreateVolume ``name`` ends with."""
    try:
        client.controller.CreateVolume(csi.CreateVolumeRequest(name=name), timeout=10)
    except grpc.RpcError as e:
        return e.code(), e.details() or ""
    return grpc.StatusCode.OK, ""


def test_answers_and_refusals_cross_the_wire(served: tuple[Csi, Bridge]) -> None:
    """An answer arrives whole; each refusal with its CSI code and its sentence."""
    client, _ = served
    answer = client.controller.CreateVolume(csi.CreateVolumeRequest(name="a"), timeout=10)
    assert answer.volume.volume_id == "v-a"
    assert status(client, "exists") == (grpc.StatusCode.ALREADY_EXISTS,
                                        "volume 'exists' has another size")
    assert status(client, "gone") == (grpc.StatusCode.NOT_FOUND, "no such dataset")
    assert status(client, "held")[0] is grpc.StatusCode.FAILED_PRECONDITION
    code, details = status(client, "bug")
    assert code is grpc.StatusCode.INTERNAL and "oops" in details


def test_unserved_rpcs_and_a_stopping_driver(served: tuple[Csi, Bridge]) -> None:
    """An RPC no service defines is UNIMPLEMENTED; once stopping, every RPC is UNAVAILABLE."""
    client, bridge = served
    with pytest.raises(grpc.RpcError) as caught:
        client.controller.ControllerModifyVolume(csi.ControllerModifyVolumeRequest(), timeout=10)
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(grpc.RpcError) as caught:
        client.node.NodeGetInfo(csi.NodeGetInfoRequest(), timeout=10)
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    bridge.stop()
    assert status(client, "a")[0] is grpc.StatusCode.UNAVAILABLE


def test_socket_is_roots_alone_or_its_groups(tmp_path) -> None:
    """The driver's socket is made 0600, or 0660 owned by ``--socket-group``'s group."""
    import grp
    import stat

    bridge = Bridge(CallingReactor())
    group = grp.getgrgid(os.getgid())
    for name, mode, gid in ((None, 0o600, None), (group.gr_name, 0o660, group.gr_gid)):
        path = str(tmp_path / f"csi-{mode:o}.sock")
        server = start_server("unix://" + path, {"controller": Refusing()}, bridge, 1, name)
        try:
            found = os.stat(path)
            assert stat.S_IMODE(found.st_mode) == mode
            assert gid is None or found.st_gid == gid
        finally:
            server.stop(None)
