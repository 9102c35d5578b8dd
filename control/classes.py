"""
Storage classes: what a dataset needs, declared once and named (pure).

A :class:`StorageClass` sets a dataset's backend, filesystem, default size,
reclaim policy, binding mode, allowed topology, allowed access modes and
free-form backend parameters (Flocker's storage profiles, Kubernetes'
StorageClass). One class may be the default: a dataset created without a
class gets it. A dataset's class is fixed at create; of a class only the
*mutable* fields (``parameters``, ``default_size``, ``default``) change later
(as Kubernetes' VolumeAttributesClass), the rest are fixed, so a dataset's
placement rules never change under it.

The rules here decide every class write; both stores call them, so they
cannot disagree. JSON conversion is here too (the class is not on the
agents' wire).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from attrs import evolve, field, frozen
from pyrsistent import PMap, pmap

from control.errors import Conflict, InvalidRequest, NotFound
from control.failover_rules import check_failover_grace
from control.model import FILESYSTEMS, Event, check_maximum_size
from control.placement import Need
from control.topology import (
    AccessMode,
    BindingMode,
    ReclaimPolicy,
    TopologyTerm,
    check_access_mode,
    parse_enum,
    terms_from_json,
    terms_to_json,
)

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")
MAX_PARAMETERS = 32


def check_class_name(name: object) -> str:
    """``name`` if it is a valid class name (a DNS label), else a 400."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidRequest(
            f"Storage class name {name!r} is not valid: 1 to 63 lower-case letters, digits, "
            "'-' or '.', starting and ending with a letter or digit (e.g. fast-zone-a)."
        )
    return name


def _modes(value: Iterable[AccessMode]) -> tuple[AccessMode, ...]:
    return tuple(value)


def _terms(value: Iterable[TopologyTerm]) -> tuple[TopologyTerm, ...]:
    return tuple(value)


def _params(value: Mapping[str, str] | None) -> PMap:
    return value if isinstance(value, PMap) else pmap(value or {})


@frozen
class StorageClass:
    """
    A named set of placement and volume policies.

    ``backend`` ``None`` means any backend a node reports. ``access_modes``
    are the modes a dataset of the class may ask for; the first is its
    default. ``failover`` and ``failover_grace`` are the failover options its
    datasets start with (``None``: the cluster's; see docs/failover.md); a
    dataset may still set its own. ``created`` is when it was made (the control
    service's clock).
    """

    name: str
    backend: str | None = None
    filesystem: str = FILESYSTEMS[0]
    default_size: int | None = None
    reclaim_policy: ReclaimPolicy = ReclaimPolicy.DELETE
    binding_mode: BindingMode = BindingMode.IMMEDIATE
    allowed_topologies: tuple[TopologyTerm, ...] = field(default=(), converter=_terms)
    access_modes: tuple[AccessMode, ...] = field(default=(AccessMode.RWO,), converter=_modes)
    parameters: PMap = field(factory=pmap, converter=_params)
    failover: bool | None = None
    failover_grace: float | None = field(default=None, converter=check_failover_grace)
    default: bool = False
    created: float = 0.0

    def __attrs_post_init__(self) -> None:
        check_class_name(self.name)
        if self.filesystem not in FILESYSTEMS:
            raise InvalidRequest(
                f"filesystem {self.filesystem!r} is not one of: {', '.join(FILESYSTEMS)}."
            )
        check_maximum_size(self.default_size, "default_size")
        if self.failover is not None and not isinstance(self.failover, bool):
            raise InvalidRequest("failover must be true, false, or null for the cluster's default.")
        if not self.access_modes:
            raise InvalidRequest("A storage class allows at least one access mode.")
        for mode in self.access_modes:
            check_access_mode(mode)
        if len(set(self.access_modes)) != len(self.access_modes):
            raise InvalidRequest("access_modes lists a mode twice.")
        if len(self.parameters) > MAX_PARAMETERS:
            raise InvalidRequest(f"A class has at most {MAX_PARAMETERS} parameters.")
        for key, value in self.parameters.items():
            if not isinstance(key, str) or not isinstance(value, str) or not key:
                raise InvalidRequest("Class parameters are non-empty string keys to strings.")

    def same_policy(self, other: StorageClass) -> bool:
        """Whether ``other`` sets the same policies (ignoring when it was made)."""
        return evolve(self, created=0.0) == evolve(other, created=0.0)

    def need(self, size: int | None, mode: AccessMode | None = None) -> Need:
        """What a dataset of this class, of ``size`` and access ``mode``, needs of a node."""
        return Need(
            self.backend,
            size if size is not None else self.default_size,
            self.allowed_topologies,
            mode or self.access_modes[0],
        )

    def access_mode(self, asked: AccessMode | None) -> AccessMode:
        """The access mode a dataset asking ``asked`` gets, or a 400 naming the allowed ones."""
        if asked is None:
            return self.access_modes[0]
        check_access_mode(asked)
        if asked not in self.access_modes:
            allowed = ", ".join(m.value for m in self.access_modes)
            raise Conflict(
                f"Storage class {self.name} does not allow access mode {asked.value}: it "
                f"allows {allowed}. Choose one of those, or another class."
            )
        return asked


MUTABLE = ("parameters", "default_size", "default")
"""The fields of a class that may change after it is made."""


# -- the write rules ------------------------------------------------------------


def create_class(existing: StorageClass | None, new: StorageClass) -> tuple[StorageClass, bool]:
    """The class to store and whether it is new: the same name and policies again is
    answered with the stored class (idempotent); other policies under that name are a 409."""
    if existing is None:
        return new, True
    if existing.same_policy(new):
        return existing, False
    raise Conflict(
        f"Storage class {new.name} already exists with other settings. Change its mutable "
        f"fields ({', '.join(MUTABLE)}) with `shoal class update {new.name}`, or pick "
        "another name."
    )


def _require(existing: StorageClass | None, name: str) -> StorageClass:
    if existing is None:
        raise NotFound(f"Storage class {name} does not exist (`shoal class list`).")
    return existing


def update_class(
    existing: StorageClass | None, name: str, changes: Mapping[str, Any]
) -> StorageClass:
    """``existing`` with ``changes`` to its mutable fields; any other field is a 400."""
    current = _require(existing, name)
    fixed = sorted(set(changes) - set(MUTABLE))
    if fixed:
        raise InvalidRequest(
            f"{', '.join(fixed)} of storage class {name} cannot change: datasets already "
            f"rely on it. Only {', '.join(MUTABLE)} can; make a new class for other settings."
        )
    return evolve(current, **changes)


def unset_other_defaults(
    stored: StorageClass, others: Iterable[StorageClass]
) -> list[StorageClass]:
    """The other classes to store with ``default`` off, when ``stored`` is the default now."""
    if not stored.default:
        return []
    return [evolve(c, default=False) for c in others if c.default and c.name != stored.name]


def delete_class(existing: StorageClass | None, name: str, users: int) -> StorageClass:
    """The class to delete; refused (409) while ``users`` live datasets name it."""
    current = _require(existing, name)
    if users:
        raise Conflict(
            f"Storage class {name} is used by {users} live dataset(s); delete or adopt them "
            "elsewhere first (a dataset's class never changes)."
        )
    return current


def default_of(classes: Iterable[StorageClass]) -> StorageClass | None:
    """The default class, if one is marked."""
    return next((c for c in classes if c.default), None)


# -- events -------------------------------------------------------------------

KINDS = ("class_created", "class_updated", "class_deleted")
"""The kinds of event this module makes (besides :data:`control.events.KINDS`)."""


def class_event(kind: str, cls: StorageClass, now: float, actor: str | None) -> Event:
    """``class_created``, ``class_updated`` or ``class_deleted`` for ``cls``."""
    verb = kind.removeprefix("class_")
    default = " (the default)" if cls.default and kind != "class_deleted" else ""
    return Event(
        kind,
        now,
        f"Storage class {cls.name} {verb}{default}.",
        actor=actor,
        details={"class": cls.name},
    )


# -- JSON ---------------------------------------------------------------------


def class_to_json(cls: StorageClass) -> dict[str, Any]:
    """The JSON form of a class."""
    return {
        "name": cls.name,
        "backend": cls.backend,
        "filesystem": cls.filesystem,
        "default_size": cls.default_size,
        "reclaim_policy": cls.reclaim_policy.value,
        "binding_mode": cls.binding_mode.value,
        "allowed_topologies": terms_to_json(cls.allowed_topologies),
        "access_modes": [m.value for m in cls.access_modes],
        "parameters": dict(cls.parameters),
        "failover": cls.failover,
        "failover_grace": cls.failover_grace,
        "default": cls.default,
        "created": cls.created,
    }


def _modes_from(value: object) -> tuple[AccessMode, ...]:
    if value is None:
        return (AccessMode.RWO,)
    if not isinstance(value, list):
        raise InvalidRequest("access_modes must be a list such as [\"ReadWriteOnce\"].")
    return tuple(parse_enum(AccessMode, v, "access mode") for v in value)


def class_from_json(obj: Mapping[str, Any], created: float = 0.0) -> StorageClass:
    """A class from its JSON form (absent fields take their defaults)."""
    return StorageClass(
        name=check_class_name(obj.get("name")),
        backend=obj.get("backend"),
        filesystem=obj.get("filesystem") or FILESYSTEMS[0],
        default_size=obj.get("default_size"),
        reclaim_policy=parse_enum(
            ReclaimPolicy, obj.get("reclaim_policy", "Delete"), "reclaim_policy"
        ),
        binding_mode=parse_enum(BindingMode, obj.get("binding_mode", "Immediate"), "binding_mode"),
        allowed_topologies=terms_from_json(obj.get("allowed_topologies")),
        access_modes=_modes_from(obj.get("access_modes")),
        parameters=obj.get("parameters") or {},
        failover=obj.get("failover"),
        failover_grace=obj.get("failover_grace"),
        default=bool(obj.get("default", False)),
        created=float(obj.get("created", created)),
    )


def changes_from_json(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The changes a PATCH body asks for, as :func:`update_class` takes them."""
    changes = dict(obj)
    if "parameters" in changes:
        changes["parameters"] = pmap(changes["parameters"] or {})
    if "default_size" in changes:
        check_maximum_size(changes["default_size"], "default_size")
    return changes
