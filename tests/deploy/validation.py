"""
Validate Kubernetes manifests against the API's schemas, offline.

Built-in kinds are checked by ``kubernetes-validate``, which ships the JSON Schemas of every
Kubernetes release's API (strict: unknown fields are refused). Custom resources have no schema
there: the kinds in :data:`CRD_SCHEMAS` are checked against our schema files in ``schemas/``
(see its README), whose ``metadata`` refers to the same shipped ObjectMeta definition. Any other
kind is refused: a manifest nobody can check is an error, not a pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

SCHEMAS = Path(__file__).parent / "schemas"
CRD_SCHEMAS = {
    ("snapshot.storage.k8s.io/v1", "VolumeSnapshotClass"): "volumesnapshotclass-snapshot-v1.json",
    ("snapshot.storage.k8s.io/v1", "VolumeSnapshot"): "volumesnapshot-snapshot-v1.json",
}
"""Custom resources we ship or document, by (apiVersion, kind): their schema file."""


class ManifestError(Exception):
    """A manifest the schemas refuse; the message says where and why."""


def documents(path: Path) -> Iterator[dict[str, Any]]:
    """The non-empty YAML documents of one file."""
    with path.open() as f:
        for document in yaml.safe_load_all(f):
            if document is not None:
                yield document


def validate(document: Mapping[str, Any], version: str) -> None:
    """Check one manifest against Kubernetes ``version``'s schemas; raise :class:`ManifestError`."""
    key = (document.get("apiVersion"), document.get("kind"))
    if key in CRD_SCHEMAS:
        _validate_crd(document, CRD_SCHEMAS[key], version)
        return
    try:
        kubernetes_validate.validate(dict(document), version, strict=True)
    except kubernetes_validate.ValidationError as e:
        raise ManifestError(f"{_where(e.path)}: {e.message}") from None
    except kubernetes_validate.SchemaNotFoundError:
        raise ManifestError(
            f"no schema for {key[1]} {key[0]} in Kubernetes {version}: not a Kubernetes "
            "kind, and not a custom resource with a schema in tests/deploy/schemas"
        ) from None


def _validate_crd(document: Mapping[str, Any], schema_file: str, version: str) -> None:
    schema = json.loads((SCHEMAS / schema_file).read_text())
    registry = Resource.from_contents(schema) @ _definitions(version)
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(document)))
    if error is not None:
        raise ManifestError(f"{_where(error.path)}: {error.message}")


@cache
def _definitions(version: str) -> Registry:
    """The shipped definitions (ObjectMeta and the rest) of Kubernetes ``version``, strict."""
    path = files("kubernetes_validate").joinpath(
        f"kubernetes-json-schema/v{version}-local-strict/_definitions.json"
    )
    return Registry().with_resource(
        "https://kubernetes.io/api/_definitions.json",
        Resource.from_contents(json.loads(path.read_text())),
    )


def _where(path: Any) -> str:
    return ".".join(str(part) for part in path) or "(the object)"
