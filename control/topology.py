"""
Topology: node labels, label terms and the policies a storage class sets (pure values).

A node's labels are what its agent registers (``--label k=v``) plus the
well-known defaults of :func:`node_labels`: ``kubernetes.io/hostname`` is the
node's name unless the agent set it. ``topology.kubernetes.io/zone`` and
``topology.kubernetes.io/region`` are the zone and region, as in Kubernetes.

An allowed topology is a tuple of :class:`TopologyTerm`: a node must match
*one* term, and matches a term when it matches *all* of the term's
:class:`Requirement` (a label key and the values it may take), as Kubernetes'
``allowedTopologies`` reads. No term at all means anywhere.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

from attrs import field, frozen

from control.errors import InvalidRequest
from control.model import AccessMode, Node

HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
REGION = "topology.kubernetes.io/region"

_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


class BindingMode(enum.Enum):
    """When a dataset of a class gets its node."""

    IMMEDIATE = "Immediate"
    """At create: the control service places it at once."""
    WAIT = "WaitForFirstConsumer"
    """On first use: bound to the node of its first consumer, if allowed."""


class ReclaimPolicy(enum.Enum):
    """What becomes of the backend volume when its dataset is deleted."""

    DELETE = "Delete"
    """The volume is destroyed with the dataset."""
    RETAIN = "Retain"
    """The volume is kept, listed as released, and can be adopted again."""


E = TypeVar("E", bound=enum.Enum)


def parse_enum(kind: type[E], value: object, what: str) -> E:
    """``value`` as a member of ``kind`` (by value, or by name such as ``RWO``), or a 400."""
    for member in kind:
        if value in (member.value, member.name):
            return member
    allowed = ", ".join(member.value for member in kind)
    raise InvalidRequest(f"{what} {value!r} is not one of: {allowed}.")


RWX_REFUSAL = (
    "Access mode ReadWriteMany is not supported: a block device with ext4 or xfs "
    "cannot have writers on several nodes without corrupting it. Use ReadWriteOnce "
    "(one node), ReadWriteOncePod (one container) or ReadOnlyMany (read-only on many "
    "nodes)."
)


def check_access_mode(mode: AccessMode) -> None:
    """Refuse an access mode Shoal cannot honour (RWX), saying why."""
    if mode is AccessMode.RWX:
        raise InvalidRequest(RWX_REFUSAL)


def check_label(key: object, value: object) -> None:
    """Refuse a label key or value Kubernetes would not accept."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise InvalidRequest(
            f"Label key {key!r} is not valid: use an optional DNS prefix and '/', then up to "
            "63 letters, digits, '-', '_' or '.', such as topology.kubernetes.io/zone."
        )
    if not isinstance(value, str) or not _VALUE.match(value):
        raise InvalidRequest(
            f"Label value {value!r} of {key} is not valid: up to 63 letters, digits, '-', "
            "'_' or '.', starting and ending with a letter or digit."
        )


class NodeLabels(Mapping[str, str]):
    """A node's labels plus its default ``kubernetes.io/hostname``, without copying them
    (placement reads the labels of every node for every decision)."""

    __slots__ = ("_labels", "_hostname")

    def __init__(self, labels: Mapping[str, str], hostname: str) -> None:
        self._labels = labels
        self._hostname = hostname

    def __getitem__(self, key: str) -> str:
        if key == HOSTNAME and HOSTNAME not in self._labels:
            return self._hostname
        return self._labels[key]

    def get(self, key: str, default: object = None) -> Any:
        """The label's value, or ``default``."""
        if key == HOSTNAME and HOSTNAME not in self._labels:
            return self._hostname
        return self._labels.get(key, default)

    def __iter__(self) -> Iterator[str]:
        yield from self._labels
        if HOSTNAME not in self._labels:
            yield HOSTNAME

    def __len__(self) -> int:
        return len(self._labels) + (HOSTNAME not in self._labels)

    def __repr__(self) -> str:
        return f"NodeLabels({dict(self)!r})"


def node_labels(node: Node) -> Mapping[str, str]:
    """``node``'s labels with the defaults: ``kubernetes.io/hostname`` is its name."""
    return NodeLabels(node.labels, str(node.labels.get("name") or node.host))


def _values(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(value)))


@frozen
class Requirement:
    """A label ``key`` that must have one of ``values``."""

    key: str
    values: tuple[str, ...] = field(converter=_values)

    def __attrs_post_init__(self) -> None:
        if not self.values:
            raise InvalidRequest(f"The requirement on {self.key!r} lists no values.")
        for value in self.values:
            check_label(self.key, value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement."""
        return labels.get(self.key) in self.values

    def describe(self) -> str:
        """As a person reads it: ``zone=a`` or ``zone in (a, b)``."""
        if len(self.values) == 1:
            return f"{self.key}={self.values[0]}"
        return f"{self.key} in ({', '.join(self.values)})"


def _requirements(value: Iterable[Requirement]) -> tuple[Requirement, ...]:
    return tuple(sorted(value, key=lambda r: r.key))


@frozen
class TopologyTerm:
    """A conjunction of requirements: a node matches when it meets all of them."""

    requirements: tuple[Requirement, ...] = field(converter=_requirements)

    def __attrs_post_init__(self) -> None:
        if not self.requirements:
            raise InvalidRequest("A topology term needs at least one label requirement.")
        keys = [r.key for r in self.requirements]
        if len(set(keys)) != len(keys):
            raise InvalidRequest("A topology term names a label key twice; list its values once.")

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` meet every requirement of the term."""
        return all(r.matches(labels) for r in self.requirements)

    def unmet(self, labels: Mapping[str, str]) -> tuple[Requirement, ...]:
        """The requirements ``labels`` fail."""
        return tuple(r for r in self.requirements if not r.matches(labels))

    def describe(self) -> str:
        """As a person reads it: requirements joined by ``,``."""
        return ", ".join(r.describe() for r in self.requirements)


def describe_topology(terms: tuple[TopologyTerm, ...]) -> str:
    """The allowed topology as a person reads it: terms joined by ``or``, in brackets."""
    if not terms:
        return "anywhere"
    return " or ".join(f"[{t.describe()}]" for t in terms)


def allowed(terms: tuple[TopologyTerm, ...], labels: Mapping[str, str]) -> bool:
    """Whether a node with ``labels`` is inside the topology ``terms`` (none: anywhere)."""
    if not terms:
        return True
    for term in terms:  # plain loops: this runs for every node of every placement
        for requirement in term.requirements:
            if labels.get(requirement.key) not in requirement.values:
                break
        else:
            return True
    return False


def topology_refusal(terms: tuple[TopologyTerm, ...], labels: Mapping[str, str]) -> str | None:
    """Which term a node with ``labels`` fails, as a person reads it, or ``None`` if allowed."""
    if allowed(terms, labels):
        return None
    failed = []
    for term in terms:
        unmet = term.unmet(labels)
        have = ", ".join(f"{r.key}={labels.get(r.key, '<unset>')}" for r in unmet)
        failed.append(f"[{term.describe()}] (it has {have})")
    return "it matches no allowed topology term: " + " or ".join(failed)


def terms_from_json(value: object) -> tuple[TopologyTerm, ...]:
    """Topology terms from their JSON form: ``[{"key": ["v1", "v2"], ...}, ...]``."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidRequest("allowed_topologies must be a list of {label: [values]} objects.")
    terms = []
    for item in value:
        if not isinstance(item, dict) or not item:
            raise InvalidRequest(
                "Each allowed topology term is a non-empty object of label keys to value lists."
            )
        requirements = []
        for key, values in item.items():
            if isinstance(values, str):
                values = [values]
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise InvalidRequest(f"The values of {key!r} must be a list of strings.")
            check_label(key, values[0] if values else "")
            requirements.append(Requirement(key, tuple(values)))
        terms.append(TopologyTerm(tuple(requirements)))
    return tuple(terms)


def terms_to_json(terms: tuple[TopologyTerm, ...]) -> list[dict[str, list[str]]]:
    """The JSON form of ``terms`` (see :func:`terms_from_json`)."""
    return [{r.key: list(r.values) for r in t.requirements} for t in terms]


def parse_term(text: str) -> TopologyTerm:
    """A term from the CLI's form: ``k=v1|v2,k2=v3`` (``|`` separates a key's values)."""
    requirements = []
    for part in text.split(","):
        key, sep, values = part.strip().partition("=")
        if not sep or not key:
            raise InvalidRequest(
                f"A topology term is KEY=VALUE[|VALUE...][,KEY=VALUE...], not {text!r}."
            )
        requirements.append(Requirement(key, tuple(values.split("|"))))
    return TopologyTerm(tuple(requirements))
