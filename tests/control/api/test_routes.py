"""Tests for control.api.routes: remembered matches answer as Werkzeug's matcher does."""

from __future__ import annotations

import pytest
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect, Rule

from control.api.app import ControlAPI
from control.api.routes import REMEMBERED, RouteMap

RULES = [
    Rule("/v1/things", endpoint="list", methods=["GET"]),
    Rule("/v1/things", endpoint="create", methods=["POST"]),
    Rule("/v1/things/<thing>", endpoint="show", methods=["GET"]),
    Rule("/v1/folder/", endpoint="folder", methods=["GET"]),
]


def both() -> tuple[Map, RouteMap]:
    """A plain map and a remembering one with the same rules."""
    return Map([r.empty() for r in RULES]), RouteMap([r.empty() for r in RULES])


def answer(url_map: Map, method: str, path: str) -> object:
    """What matching ``method path`` answers twice: the match, or the refusal's type and code."""
    adapter = url_map.bind("shoal", path_info=path, default_method=method)
    results = []
    for _ in range(2):
        try:
            rule, args = adapter.match(return_rule=True)
            results.append((rule.rule, rule.endpoint, dict(args)))
        except (NotFound, MethodNotAllowed, RequestRedirect) as refusal:
            results.append((type(refusal).__name__, refusal.code))
    assert results[0] == results[1]
    return results[0]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/things"),
        ("POST", "/v1/things"),
        ("HEAD", "/v1/things"),
        ("DELETE", "/v1/things"),
        ("GET", "/v1/things/a"),
        ("GET", "/v1/things/b"),
        ("POST", "/v1/things/a"),
        ("GET", "/v1/nothing"),
        ("GET", "/v1/folder"),
    ],
)
def test_same_answers(method: str, path: str) -> None:
    """A remembering map answers every method and path as Werkzeug's map does, twice."""
    plain, remembering = both()
    assert answer(remembering, method, path) == answer(plain, method, path)


def test_remembers_successes_only() -> None:
    """A successful match is remembered; a refused path is not (it is asked again)."""
    _, remembering = both()
    answer(remembering, "GET", "/v1/things/a")
    answer(remembering, "GET", "/v1/nothing")
    assert [key[:2] for key in remembering.matches] == [("GET", "/v1/things/a")]


def test_arguments_are_copies() -> None:
    """Changing the arguments of one match does not change the next one's."""
    _, remembering = both()
    adapter = remembering.bind("shoal")
    _, args = adapter.match("/v1/things/a", "GET")
    dict(args).clear()
    args["thing"] = "changed"  # type: ignore[index]
    assert adapter.match("/v1/things/a", "GET") == ("show", {"thing": "a"})


def test_new_rule_forgets() -> None:
    """Adding a rule forgets what was matched (the new rule may match it instead)."""
    remembering = RouteMap([Rule("/v1/<name>", endpoint="any", methods=["GET"])])
    adapter = remembering.bind("shoal")
    assert adapter.match("/v1/exact", "GET")[0] == "any"
    remembering.add(Rule("/v1/exact", endpoint="exact", methods=["GET"]))
    assert adapter.match("/v1/exact", "GET")[0] == "exact"


def test_bounded() -> None:
    """No more than REMEMBERED matches are kept."""
    _, remembering = both()
    adapter = remembering.bind("shoal")
    for index in range(REMEMBERED + 5):
        adapter.match(f"/v1/things/{index}", "GET")
    assert 0 < len(remembering.matches) <= REMEMBERED


def test_api_map_remembers() -> None:
    """The API's routes are matched through a remembering map."""
    assert isinstance(ControlAPI.app.url_map, RouteMap)
