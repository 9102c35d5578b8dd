"""Connection settings of the dedicated PostgreSQL sessions (pure)."""

from __future__ import annotations

from control.store.pglocks import libpq_conninfo


def test_dedicated_sessions_get_short_timeouts_and_keep_the_url_options() -> None:
    """Keepalives, a statement timeout and the URL's own options (a search path) all apply."""
    info = libpq_conninfo(
        "postgresql+psycopg://shoal:pw@db.example:6543/shoal?options=-csearch_path%3Dx",
        1.5, "shoal-leader",
    )
    assert (info["host"], info["port"], info["dbname"], info["user"], info["password"]) == (
        "db.example", 6543, "shoal", "shoal", "pw",
    )
    assert info["options"] == "-csearch_path=x -c statement_timeout=1500"
    assert info["keepalives"] == 1 and info["tcp_user_timeout"] == 3000
    assert info["connect_timeout"] == 2 and info["application_name"] == "shoal-leader"


def test_the_listener_session_has_no_statement_timeout() -> None:
    """A listening connection waits for notifications as long as it likes."""
    info = libpq_conninfo("postgresql+psycopg://postgres@127.0.0.1/test", 2.0, "shoal-listener",
                          statements_too=False)
    assert info["options"] == "-c statement_timeout=0"
    assert "password" not in info
