"""``shoal control replicas``: which control URLs answer and which one leads."""

from __future__ import annotations

import json

from .harness import CLI


def test_the_one_process_answers_and_leads() -> None:
    """A single service (memory, SQLite) is its own leader: exit 0, JSON per URL."""
    cli = CLI()
    result = cli("--json", "control", "replicas", "--url", "http://shoal.test:4523")
    assert result.code == 0, result.err
    [found] = json.loads(result.out)
    assert found == {"url": "http://shoal.test:4523", "answers": True, "leader": True,
                     "shoal": found["shoal"], "error": None}
    assert [s.url for s in cli.settings][-1:] == ["http://shoal.test:4523"]


def test_every_url_is_asked_on_its_own() -> None:
    """Each replica gets a client of its own; the table names each URL and its role."""
    cli = CLI(env={"SHOAL_URL": "http://a:1,http://b:2"})
    result = cli("control", "replicas")
    assert [s.url for s in cli.settings][-2:] == ["http://a:1", "http://b:2"]
    assert "http://a:1" in result.out and "leader" in result.out
    assert result.code == 1  # the in-memory cluster answers both as leader: not exactly one
