"""The CSI protocol definition: the generated modules are fresh, and the wire matches the spec."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.processes import ROOT

PROTO = os.path.join("plugin", "csi", "proto", "csi.proto")
GENERATED = ("csi_pb2.py", "csi_pb2.pyi", "csi_pb2_grpc.py")


def generate(proto_root: str, out: str, proto: str) -> None:
    """Run grpcio-tools as ``make proto`` does."""
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", proto_root, f"--python_out={out}",
         f"--pyi_out={out}", f"--grpc_python_out={out}", proto],
        check=True, cwd=proto_root, capture_output=True,
    )


def test_generated_modules_are_fresh(tmp_path: Any) -> None:
    """The checked-in modules are exactly what ``make proto`` makes of csi.proto now."""
    pytest.importorskip("grpc_tools")
    os.makedirs(tmp_path / "plugin" / "csi" / "proto")
    shutil.copy(os.path.join(ROOT, PROTO), tmp_path / PROTO)
    generate(str(tmp_path), str(tmp_path), PROTO)
    for name in GENERATED:
        made = (tmp_path / "plugin" / "csi" / "proto" / name).read_text()
        with open(os.path.join(ROOT, "plugin", "csi", "proto", name)) as f:
            assert f.read() == made, f"{name} is stale: run `make proto` and commit the result"


SPEC_VERSIONS = ("v1.12.0", "v1.13.0")
"""The spec versions ours is the union of (``.ci/run`` puts both in the Go module cache)."""


def spec_protos() -> dict[str, str]:
    """The CSI spec's csi.proto of each of :data:`SPEC_VERSIONS` found in the Go module cache."""
    cache = os.environ.get("GOMODCACHE")
    if not cache and shutil.which("go"):
        cache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True,
                               text=True).stdout.strip()
    cache = cache or os.path.join(os.path.expanduser("~/go"), "pkg", "mod")
    found = {}
    for version in SPEC_VERSIONS:
        path = os.path.join(cache, "github.com", "container-storage-interface",
                            f"spec@{version}", "csi.proto")
        if os.path.exists(path):
            found[version] = path
    return found


def shape(files: Any, package: str) -> Iterator[tuple[object, ...]]:
    """Every service method, message field and enum value of ``package``, as wire facts."""
    def messages(prefix: str, descriptors: Any) -> Iterator[tuple[object, ...]]:
        for message in descriptors:
            name = f"{prefix}.{message.name}"
            for field in message.field:
                oneof = message.oneof_decl[field.oneof_index].name if field.HasField(
                    "oneof_index") else None
                yield ("field", name, field.name, field.number, field.type, field.label,
                       field.type_name, oneof)
            yield from enums(name, message.enum_type)
            yield from messages(name, message.nested_type)

    def enums(prefix: str, descriptors: Any) -> Iterator[tuple[object, ...]]:
        for enum in descriptors:
            for value in enum.value:
                yield ("enum", f"{prefix}.{enum.name}", value.name, value.number)

    for file in files.file:
        if file.package != package:
            continue
        for service in file.service:
            for method in service.method:
                yield ("rpc", service.name, method.name, method.input_type, method.output_type,
                       method.server_streaming)
        yield from messages(f".{package}", file.message_type)
        yield from enums(f".{package}", file.enum_type)


def descriptor_set(proto_root: str, proto: str, out: str) -> Any:
    """The parsed FileDescriptorSet protoc makes of ``proto``."""
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", proto_root, "-I", include,
         f"--descriptor_set_out={out}", proto],
        check=True, cwd=proto_root, capture_output=True,
    )
    files = descriptor_pb2.FileDescriptorSet()
    with open(out, "rb") as f:
        files.ParseFromString(f.read())
    return files


def test_wire_compatible_with_the_spec(tmp_path: Any) -> None:
    """Every RPC, field and enum value of each spec version is ours, and we add none of our own."""
    pytest.importorskip("grpc_tools")
    specs = spec_protos()
    if len(specs) < len(SPEC_VERSIONS):
        missing = sorted(set(SPEC_VERSIONS) - set(specs))
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI puts the spec's csi.proto {missing} in the Go module cache")
        pytest.skip(f"the CSI spec's csi.proto {missing} is not in the Go module cache "
                    "(`go mod download github.com/container-storage-interface/spec@VERSION`)")
    ours = set(shape(descriptor_set(ROOT, PROTO, str(tmp_path / "ours.pb")), "csi.v1"))
    union: set[tuple[object, ...]] = set()
    for version, path in specs.items():
        out = str(tmp_path / f"{version}.pb")
        theirs = set(shape(descriptor_set(os.path.dirname(path), "csi.proto", out), "csi.v1"))
        assert (version, sorted(map(str, theirs - ours))) == (version, [])
        union |= theirs
    assert sorted(map(str, ours - union)) == []


def test_service_paths_are_the_spec_names() -> None:
    """The generated stubs call the spec's method paths (what a CO sends on the wire)."""
    from plugin.csi.proto import csi_pb2

    services = csi_pb2.DESCRIPTOR.services_by_name
    assert services["Identity"].full_name == "csi.v1.Identity"
    assert services["Node"].methods_by_name["NodeStageVolume"].full_name == (
        "csi.v1.Node.NodeStageVolume"
    )
    assert "CreateVolume" in services["Controller"].methods_by_name
