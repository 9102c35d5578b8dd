"""Several control URLs: parsing, the order of attempts, and when to move on."""

from __future__ import annotations

import pytest

from control.client.endpoints import attempt_order, parse_urls, worth_another
from control.errors import InvalidRequest


def test_urls_come_comma_separated_or_repeated() -> None:
    """One string, commas, several strings, blanks and trailing slashes all parse alike."""
    assert parse_urls("http://a:1") == ("http://a:1",)
    assert parse_urls("http://a:1/, http://b:2,") == ("http://a:1", "http://b:2")
    assert parse_urls(["http://a:1,http://b:2", "https://c:3"]) == (
        "http://a:1", "http://b:2", "https://c:3",
    )


@pytest.mark.parametrize("given", ["", " , ", []])
def test_no_url_is_refused(given: str | list[str]) -> None:
    """Nothing to reach is a usage error that says what to give."""
    with pytest.raises(InvalidRequest, match="SHOAL_URL"):
        parse_urls(given)


def test_a_url_without_scheme_is_refused() -> None:
    """A host without http:// or https:// is named in the refusal."""
    with pytest.raises(InvalidRequest, match="'a:1' is not a control service URL"):
        parse_urls("http://b:2,a:1")


def test_attempts_start_from_the_last_one_that_answered() -> None:
    """The order wraps around from the current replica."""
    assert attempt_order(("a", "b", "c"), 1) == [1, 2, 0]
    assert attempt_order(("a",), 0) == [0]


@pytest.mark.parametrize(
    ("code", "move_on"), [(None, True), (500, True), (503, True), (404, False), (409, False),
                          (412, False), (200, False)],
)
def test_only_no_answer_and_server_errors_move_on(code: int | None, move_on: bool) -> None:
    """A refusal (4xx) is the cluster's answer; no answer or a 5xx is the replica's trouble."""
    assert worth_another(code) is move_on
