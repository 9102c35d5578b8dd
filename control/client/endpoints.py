"""
Several control URLs for one cluster: parsing them, and which one to try next.

A cluster with several control replicas (docs/operations.md, "High
availability") is reached through any of them. Clients take the URLs as a
repeated ``--url`` or a comma-separated ``SHOAL_URL``, try them in order
starting from the last one that answered, and move on when one cannot be
reached or answers with a server error (5xx). Pure functions only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from control.errors import InvalidRequest


def parse_urls(given: str | Iterable[str]) -> tuple[str, ...]:
    """The control URLs in ``given``: one string, comma-separated, or several such strings.

    Blanks are dropped and trailing slashes removed; raises :class:`InvalidRequest`
    when nothing is left or a URL is not ``http://`` or ``https://``.
    """
    words = [given] if isinstance(given, str) else list(given)
    urls = tuple(
        part.strip().rstrip("/") for word in words for part in word.split(",") if part.strip()
    )
    if not urls:
        raise InvalidRequest("No control service URL given: pass --url URL or set SHOAL_URL.")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise InvalidRequest(
                f"{url!r} is not a control service URL: give http://HOST:PORT or "
                "https://HOST:PORT (several separated by commas, or --url repeated)."
            )
    return urls


def attempt_order(urls: Sequence[str], current: int) -> list[int]:
    """The indexes of ``urls`` to try, starting with ``current`` and wrapping around."""
    return [(current + offset) % len(urls) for offset in range(len(urls))]


def worth_another(code: int | None) -> bool:
    """Whether an attempt that ended with HTTP ``code`` (``None``: no answer) should move on.

    No answer and server errors (5xx) move on: another replica may answer.
    Anything else is the cluster's answer, the same from every replica.
    """
    return code is None or code >= 500
