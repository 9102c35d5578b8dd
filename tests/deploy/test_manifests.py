"""
The Kubernetes manifests in deploy/kubernetes: valid against the API's schemas, and consistent.

Every document of every manifest (the kustomization's resources and the examples) is checked
against the schemas of the oldest Kubernetes release we support and of the newest one
``kubernetes-validate`` ships, offline; deliberately broken manifests in ``broken/`` prove the
validator refuses what it should. The rest checks what no schema can: the names that tie the
objects together, the sidecar images, and the ``shoal`` command lines the containers run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from control.cli.options import UsageError
from control.cli.program import build_parser, chosen_group, lazy_modules
from tests.deploy.validation import ManifestError, documents, validate

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
BROKEN = Path(__file__).parent / "broken"
DRIVER = "csi.shoal.io"
OLDEST_SUPPORTED = "1.31.0"
VERSIONS = (OLDEST_SUPPORTED, kubernetes_validate.latest_version())
SHOAL_LABEL_KEYS = {
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
}
"""The topology labels Shoal's agents register (control/topology.py, docs/placement.md)."""
CLASS_PARAMETERS = {"class", "fs"}
"""The CreateVolume parameters the driver reads (plugin/csi/rules.py: PARAMETERS)."""
SIDECAR_PREFIX = "csi.storage.k8s.io/"
"""Parameters for the sidecars (fstype, secrets), which the driver accepts and ignores."""
PENDING_GROUPS = {"csi"}
"""``shoal`` command groups the manifests run that this build may not have yet."""
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet"}


def manifest_files() -> list[Path]:
    """Every manifest: the kustomization's directory and the examples."""
    return sorted(path for path in DEPLOY.rglob("*.yaml") if path.name != "kustomization.yaml")


def all_documents() -> list[tuple[Path, dict[str, Any]]]:
    """(file, document) for every document of every manifest."""
    return [(path, document) for path in manifest_files() for document in documents(path)]


def document_id(item: tuple[Path, dict[str, Any]]) -> str:
    """A readable test id: file, kind and name."""
    path, document = item
    name = document.get("metadata", {}).get("name", "?")
    return f"{path.relative_to(DEPLOY)}:{document.get('kind')}/{name}"


DOCUMENTS = all_documents()
DEPLOYED = [(p, d) for p, d in DOCUMENTS if p.parent == DEPLOY]


def of_kind(kind: str) -> list[dict[str, Any]]:
    """The deployed documents of one kind."""
    return [d for _, d in DEPLOYED if d["kind"] == kind]


def key(document: dict[str, Any]) -> tuple[str, str]:
    """A namespaced object's (namespace, name)."""
    return document["metadata"]["namespace"], document["metadata"]["name"]


def pod_specs(items: list[tuple[Path, dict[str, Any]]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(owner name, pod spec) of every workload and pod."""
    for _, document in items:
        if document["kind"] in WORKLOADS:
            yield document["metadata"]["name"], document["spec"]["template"]["spec"]
        elif document["kind"] == "Pod":
            yield document["metadata"]["name"], document["spec"]


def containers(items: list[tuple[Path, dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Every container of every pod spec."""
    for _, spec in pod_specs(items):
        yield from spec.get("initContainers", [])
        yield from spec["containers"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("item", DOCUMENTS, ids=[document_id(i) for i in DOCUMENTS])
def test_manifest_is_valid(item: tuple[Path, dict[str, Any]], version: str) -> None:
    """Each manifest document passes the Kubernetes API schemas (strict) of each version."""
    validate(item[1], version)


BROKEN_FILES = sorted(BROKEN.glob("*.yaml"))


@pytest.mark.parametrize("path", BROKEN_FILES, ids=[p.stem for p in BROKEN_FILES])
def test_broken_manifest_is_refused(path: Path) -> None:
    """Each deliberately broken manifest is refused, for the reason its first line names."""
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    (document,) = documents(path)
    with pytest.raises(ManifestError) as refused:
        validate(document, VERSIONS[-1])
    assert expected in str(refused.value)


def test_kustomization_lists_every_manifest() -> None:
    """The kustomization's resources are exactly the manifest files beside it."""
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    beside = {p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(beside)
    images = {image["name"] for image in kustomization["images"]}
    used = {c["image"] for c in containers(DEPLOYED) if ":" not in c["image"]}
    assert used == images == {"shoal"}


def test_driver_name_is_the_same_everywhere() -> None:
    """The CSIDriver, the classes and the node plugin's paths all name csi.shoal.io."""
    assert [d["metadata"]["name"] for d in of_kind("CSIDriver")] == [DRIVER]
    assert {d["provisioner"] for d in of_kind("StorageClass")} == {DRIVER}
    assert {d["driver"] for d in of_kind("VolumeSnapshotClass")} == {DRIVER}
    (node,) = [spec for name, spec in pod_specs(DEPLOYED) if name == "shoal-node"]
    plugin_dir = next(v for v in node["volumes"] if v["name"] == "plugin-dir")
    assert plugin_dir["hostPath"]["path"] == f"/var/lib/kubelet/plugins/{DRIVER}"
    registrar = next(c for c in node["containers"] if c["name"] == "node-driver-registrar")
    assert f"--kubelet-registration-path={plugin_dir['hostPath']['path']}/csi.sock" in (
        registrar["args"]
    )


def argument(container: dict[str, Any], flag: str) -> str | None:
    """The value of ``--flag=VALUE`` in a container's args, its $(VAR)s from its env values."""
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    for arg in container.get("args", []):
        if arg.startswith(f"{flag}="):
            value: str = arg.split("=", 1)[1]
            return re.sub(r"\$\(([A-Z_]+)\)", lambda m: env.get(m[1], m[0]), value)
    return None


def socket_volume(container: dict[str, Any], path: str) -> str:
    """The name of the volume a container sees the socket ``path`` in."""
    mounts = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    assert len(mounts) == 1, f"{container['name']} does not see {path} in one volume"
    return str(mounts[0]["name"])


@pytest.mark.parametrize("owner", ["shoal-csi-controller", "shoal-node"])
def test_sidecars_reach_the_driver_socket(owner: str) -> None:
    """Every sidecar's --csi-address is the driver's endpoint, in the same pod volume."""
    (spec,) = [spec for name, spec in pod_specs(DEPLOYED) if name == owner]
    driver = next(c for c in spec["containers"] if c["name"] == "shoal-csi")
    endpoint = argument(driver, "--endpoint")
    assert endpoint is not None and endpoint.startswith("unix://")
    socket = endpoint.removeprefix("unix://")
    sidecars = [c for c in spec["containers"] if c["image"] != "shoal"]
    assert sidecars
    for sidecar in sidecars:
        assert argument(sidecar, "--csi-address") == socket, sidecar["name"]
        assert socket_volume(sidecar, socket) == socket_volume(driver, socket), sidecar["name"]


def test_topology_keys_are_labels_shoal_registers() -> None:
    """Every allowedTopologies key of a class is a topology label Shoal's agents register."""
    keys = {
        expression["key"]
        for document in of_kind("StorageClass")
        for term in document.get("allowedTopologies", [])
        for expression in term["matchLabelExpressions"]
    }
    assert keys and keys <= SHOAL_LABEL_KEYS


def test_class_parameters_are_ones_the_driver_reads() -> None:
    """Every StorageClass names a Shoal class, and only parameters the driver knows."""
    for document in of_kind("StorageClass"):
        parameters = set(document["parameters"])
        assert "class" in parameters
        unknown = {p for p in parameters - CLASS_PARAMETERS if not p.startswith(SIDECAR_PREFIX)}
        assert not unknown, f"{document['metadata']['name']}: {unknown}"
    try:
        from plugin.csi.rules import PARAMETERS  # the driver, once merged
    except ModuleNotFoundError as e:
        if e.name not in ("plugin.csi", "plugin.csi.rules"):
            raise
        return
    assert set(PARAMETERS) == CLASS_PARAMETERS


def test_sidecar_images_are_pinned_upstream_releases() -> None:
    """Every image but Shoal's is a registry.k8s.io/sig-storage release, pinned to vX.Y.Z."""
    pattern = re.compile(r"registry\.k8s\.io/sig-storage/[a-z-]+:v\d+\.\d+\.\d+")
    sidecars = [c["image"] for c in containers(DEPLOYED) if c["image"] != "shoal"]
    assert len(sidecars) == 7
    assert [image for image in sidecars if not pattern.fullmatch(image)] == []


def test_volume_mounts_name_pod_volumes() -> None:
    """Every volumeMount and volumeDevice names a volume of its pod (or a claim template)."""
    claims = {
        template["metadata"]["name"]
        for document in of_kind("StatefulSet")
        for template in document["spec"].get("volumeClaimTemplates", [])
    }
    for owner, spec in pod_specs(DOCUMENTS):
        volumes = {v["name"] for v in spec.get("volumes", [])} | claims
        for container in spec["containers"]:
            used = container.get("volumeMounts", []) + container.get("volumeDevices", [])
            missing = {m["name"] for m in used} - volumes
            assert not missing, f"{owner}/{container['name']} uses undefined {missing}"


def test_accounts_and_roles_are_defined() -> None:
    """Pods run as defined ServiceAccounts; every binding names a defined subject and role."""
    accounts = {key(d) for d in of_kind("ServiceAccount")}
    for document in (d for _, d in DEPLOYED if d["kind"] in WORKLOADS):
        namespace = document["metadata"]["namespace"]
        name = document["spec"]["template"]["spec"]["serviceAccountName"]
        assert (namespace, name) in accounts
    cluster_roles = {d["metadata"]["name"] for d in of_kind("ClusterRole")}
    roles = {key(d) for d in of_kind("Role")}
    bindings = of_kind("ClusterRoleBinding") + of_kind("RoleBinding")
    assert bindings
    for binding in bindings:
        for subject in binding["subjects"]:
            assert (subject["namespace"], subject["name"]) in accounts
        ref = binding["roleRef"]
        if ref["kind"] == "ClusterRole":
            assert ref["name"] in cluster_roles
        else:
            assert (binding["metadata"]["namespace"], ref["name"]) in roles


def shoal_command_lines() -> list[tuple[str, list[str]]]:
    """(container, argv) of every container running ``shoal``, with $(VAR)s filled in."""
    lines = []
    for container in containers(DOCUMENTS):
        if container.get("command") == ["shoal"]:
            argv = [re.sub(r"\$\([A-Z_]+\)", "x", arg) for arg in container["args"]]
            lines.append((container["name"], argv))
    return lines


SHOAL_LINES = shoal_command_lines()
SHOAL_LINE_IDS = [f"{name}:{' '.join(argv[:2])}" for name, argv in SHOAL_LINES]


@pytest.mark.parametrize("line", SHOAL_LINES, ids=SHOAL_LINE_IDS)
def test_shoal_command_line_parses(line: tuple[str, list[str]]) -> None:
    """Each container's ``shoal`` command line is one the real parser accepts."""
    _, argv = line
    if chosen_group(argv) is None:
        assert argv[0] in PENDING_GROUPS, f"shoal has no command group {argv[0]!r}"
        return
    try:
        args = build_parser(lazy_modules(argv)).parse_args(argv)
    except UsageError as e:
        pytest.fail(f"shoal {' '.join(argv)}: {e}")
    assert args.handler is not None
