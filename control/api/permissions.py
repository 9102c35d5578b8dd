"""
Who may call which route: one table, and the pure decision over it.

:data:`RULES` maps every route (method and OpenAPI path) to the roles allowed
(:mod:`control.roles`), and, for the routes a node uses, the path parameter
that must be the node's own uuid. :func:`decide` answers ``None`` (allowed)
or the description of a 403. Without TLS there is no principal and
everything is allowed: a plain-HTTP service trusts its (loopback) network.
"""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from attrs import frozen

from control.roles import Principal, Role

_ANYONE = frozenset(Role)
_READ = frozenset({Role.VIEWER, Role.OPERATOR, Role.ADMIN, Role.CONTROL})
_OPERATE = frozenset({Role.OPERATOR, Role.ADMIN, Role.CONTROL})
_ADMIN = frozenset({Role.ADMIN, Role.CONTROL})
_NODE = frozenset({Role.CONTROL})


@frozen
class Rule:
    """The roles allowed a route; a node also when ``own_node`` (a path parameter) is its uuid."""

    roles: frozenset[Role]
    own_node: str | None = None
    any_node: bool = False

    def allows(self, principal: Principal, params: Mapping[str, str]) -> bool:
        """Whether ``principal`` may call the route with these path parameters."""
        if principal.role in self.roles:
            return True
        if principal.role is not Role.NODE or principal.node is None:
            return False
        if self.any_node:
            return True
        return self.own_node is not None and _is(params.get(self.own_node), principal.node)


def _is(text: str | None, node: UUID) -> bool:
    """Whether the path parameter ``text`` names ``node`` (in any spelling a UUID takes)."""
    try:
        return text is not None and UUID(text) == node
    except ValueError:
        return False


def _reads(own_node: str | None = None) -> Rule:
    return Rule(_READ, own_node)


READ, OPERATE, ADMIN = Rule(_READ), Rule(_OPERATE), Rule(_ADMIN)
NODE_SELF = Rule(_NODE, "node_uuid")
"""Only the node itself (and the control service): registering and reporting."""

RULES: Mapping[tuple[str, str], Rule] = {
    ("get", "/v1/version"): Rule(_ANYONE),
    ("get", "/v1/shoal/whoami"): Rule(_ANYONE),
    ("get", "/v1/openapi.json"): Rule(_ANYONE),
    ("get", "/v1/configuration/datasets"): READ,
    ("post", "/v1/configuration/datasets"): OPERATE,
    ("post", "/v1/configuration/datasets/{dataset_id}"): OPERATE,
    ("delete", "/v1/configuration/datasets/{dataset_id}"): OPERATE,
    ("get", "/v1/configuration/containers"): READ,
    ("get", "/v1/state/containers"): READ,
    ("get", "/v1/state/datasets"): READ,
    ("get", "/v1/state/nodes"): READ,
    ("get", "/v1/state/nodes/by_era/{era}"): READ,
    ("get", "/v1/configuration/leases"): READ,
    ("post", "/v1/configuration/leases"): OPERATE,
    ("delete", "/v1/configuration/leases/{dataset_id}"): OPERATE,
    ("get", "/v1/shoal/nodes"): READ,
    ("put", "/v1/shoal/nodes/{node_uuid}"): NODE_SELF,
    ("put", "/v1/shoal/state/{node_uuid}"): NODE_SELF,
    ("post", "/v1/shoal/nodes/{node_uuid}/fence"): ADMIN,
    ("delete", "/v1/shoal/nodes/{node_uuid}/fence"): ADMIN,
    ("post", "/v1/shoal/nodes/{node_uuid}/drain"): ADMIN,
    ("delete", "/v1/shoal/nodes/{node_uuid}/drain"): ADMIN,
    ("get", "/v1/shoal/datasets/{dataset_id}/failover"): READ,
    ("put", "/v1/shoal/datasets/{dataset_id}/failover"): OPERATE,
    ("get", "/v1/shoal/nodes/{node_uuid}/configuration"): _reads("node_uuid"),
    ("get", "/v1/shoal/conditions"): READ,
    ("get", "/v1/shoal/events"): READ,
    ("get", "/v1/shoal/orphans"): READ,
    ("delete", "/v1/shoal/orphans/{blockdevice_id}"): ADMIN,
    ("get", "/v1/shoal/datasets"): READ,
    ("get", "/v1/shoal/snapshots"): READ,
    ("post", "/v1/shoal/snapshots"): OPERATE,
    ("get", "/v1/shoal/snapshots/{snapshot_id}"): READ,
    ("delete", "/v1/shoal/snapshots/{snapshot_id}"): OPERATE,
    ("post", "/v1/shoal/datasets"): OPERATE,
    ("post", "/v1/shoal/datasets/{dataset_id}/resize"): OPERATE,
    ("get", "/v1/shoal/released"): READ,
    ("post", "/v1/shoal/datasets/{dataset_id}/adopt"): OPERATE,
    ("post", "/v1/shoal/datasets/{dataset_id}/readers"): OPERATE,
    ("delete", "/v1/shoal/datasets/{dataset_id}/readers/{node_uuid}"): OPERATE,
    ("get", "/v1/shoal/classes"): READ,
    ("post", "/v1/shoal/classes"): ADMIN,
    ("get", "/v1/shoal/classes/{name}"): READ,
    ("patch", "/v1/shoal/classes/{name}"): ADMIN,
    ("delete", "/v1/shoal/classes/{name}"): ADMIN,
    ("get", "/v1/shoal/watch"): Rule(_READ, any_node=True),
    ("get", "/v1/shoal/revocations"): ADMIN,
    ("post", "/v1/shoal/revocations"): ADMIN,
}
"""Every route's rule, by (method, OpenAPI path); a test checks it covers every route."""

_ORDER = (Role.VIEWER, Role.OPERATOR, Role.ADMIN, Role.CONTROL)


def needed(rule: Rule) -> str:
    """Who a rule allows, for people: ``the role operator or admin``, ``a node certificate
    for node {node_uuid} itself``."""
    users = [r.value for r in _ORDER if r in rule.roles and r is not Role.CONTROL]
    parts = [f"the role {' or '.join(users)}"] if users else []
    if rule.own_node is not None:
        parts.append(f"a node certificate for node {{{rule.own_node}}} itself")
    if rule.any_node:
        parts.append("a node certificate")
    return " or ".join(parts) if parts else "the control service's own certificate"


def _reissue(role: Role | None) -> str:
    if role is None:
        return (
            " It carries no Shoal role (issued before roles, or by hand): issue a new one with "
            "`shoal ca issue user NAME --role admin|operator|viewer` or "
            "`shoal ca issue node NAME --uuid UUID`."
        )
    return ""


def decide(
    principal: Principal | None, method: str, path: str, params: Mapping[str, str]
) -> str | None:
    """``None`` if ``principal`` may call ``method path`` (an OpenAPI path), else why not.

    ``principal`` is ``None`` over plain HTTP: allowed. A route without a rule
    is refused (it should not exist: a test checks the table is complete).
    """
    if principal is None:
        return None
    rule = RULES.get((method.lower(), path))
    if rule is None:
        return f"No role may call {method.upper()} {path}."
    if rule.allows(principal, params):
        return None
    holder = principal.role.value if principal.role is not None else "no role"
    described = needed(rule).replace(f"{{{rule.own_node}}}", params.get(rule.own_node or "", "?"))
    speaks = "" if principal.node is None else f" for node {principal.node}"
    return (
        f"{method.upper()} {path} needs {described}; the certificate "
        f"{principal.subject!r} has the role {holder}{speaks}.{_reissue(principal.role)}"
    )
