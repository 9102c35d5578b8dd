"""
Route matching remembered: Werkzeug's answer for a method and path, found once.

Every request was matched against the API's 48 routes three times (by the metrics'
route label, by the guard's permission check over TLS, and by Klein itself), and
Werkzeug's matcher was about a fifth of the service's CPU under 1,000 heartbeating
nodes (issue 16). The paths an API serves repeat: each node sends the same few,
with its own id in them. :class:`RouteMap` is Werkzeug's ``Map`` whose adapters
remember each successful match (the rule and its arguments) by method and path, so
that the second and later requests of a path skip the matcher; anything the matcher
refuses (404, 405, a redirect) is asked of it again every time, so every refusal
keeps its exact status and words. :class:`RoutedKlein` is Klein on such a map.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from klein import Klein
from werkzeug.routing import Map, MapAdapter, Rule

REMEMBERED = 16_384
"""How many (method, path) matches a map keeps; all are forgotten when it is full."""

_Key = tuple[str, str, str | None, bool]


class RouteMap(Map):
    """A Werkzeug ``Map`` whose adapters remember successful matches (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.matches: dict[_Key, tuple[Rule, dict[str, Any]]] = {}
        super().__init__(*args, **kwargs)

    def add(self, rulefactory: Any) -> None:
        """Add a rule, forgetting every match remembered (a new rule may change them)."""
        super().add(rulefactory)
        self.matches.clear()

    def bind(self, *args: Any, **kwargs: Any) -> MapAdapter:
        """Werkzeug's adapter, remembering what it matches."""
        made = super().bind(*args, **kwargs)
        return RememberingAdapter(
            self, made.server_name, made.script_name, made.subdomain, made.url_scheme,
            made.path_info, made.default_method, made.query_args,
        )


class RememberingAdapter(MapAdapter):
    """A ``MapAdapter`` of a :class:`RouteMap`: a path matched before is not matched again."""

    map: RouteMap

    def match(  # type: ignore[override]
        self,
        path_info: str | None = None,
        method: str | None = None,
        return_rule: bool = False,
        query_args: Mapping[str, Any] | str | None = None,
        websocket: bool | None = None,
    ) -> tuple[Any, Mapping[str, Any]]:
        """As Werkzeug's ``match``; a successful match is remembered by method and path."""
        self.map.update()
        if self.map.host_matching:
            rule, args = super().match(path_info, method, True, query_args, websocket)
            return (rule if return_rule else rule.endpoint), args
        path = self.path_info if path_info is None else path_info
        verb = (method or self.default_method).upper()
        key = (verb, path, self.subdomain, self.websocket if websocket is None else websocket)
        found = self.map.matches.get(key)
        if found is None:
            rule, args = super().match(path_info, method, True, query_args, websocket)
            if len(self.map.matches) >= REMEMBERED:
                self.map.matches.clear()
            found = self.map.matches[key] = (rule, dict(args))
        rule, args = found
        return (rule if return_rule else rule.endpoint), dict(args)


class RoutedKlein(Klein):
    """Klein on a :class:`RouteMap` (declare routes on it exactly as on ``Klein``)."""

    def __init__(self) -> None:
        super().__init__()
        self._url_map = RouteMap()
