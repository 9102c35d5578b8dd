"""
Paginated listings of the ``/v1/shoal/`` routes, Kubernetes style: ``limit`` and ``continue``.

``GET /v1/shoal/datasets?limit=N`` answers ``{"items": [...], "continue": TOKEN}``: at
most ``N`` datasets by id, and an opaque token that asks for the next page
(``continue=TOKEN``), or ``null`` after the last page. Each page is of the
configuration current when it is asked (its ``X-Configuration-Tag``); a dataset
created or purged between pages may be missed or appear, as with Kubernetes'
pages without a resource version, so a client writing conditionally should use
the tag of its first page. The v1 listings stay whole for Flocker's clients.
"""

from __future__ import annotations

import re
from uuid import UUID

from control.errors import InvalidRequest

DEFAULT_PAGE = 500
"""The page size when only ``continue`` is given."""
TOKEN_PATTERN = "^[0-9a-f]{32}$"
"""What a token looks like: the id of the last dataset of its page, as 32 hex digits (so every
token the pattern admits names a place in the listing, whether or not that dataset still exists)."""


def continue_token(after: UUID | None) -> str | None:
    """The token asking for the page after the dataset ``after`` (``None``: no more pages)."""
    return None if after is None else after.hex


def after_of(token: str | None) -> UUID | None:
    """The dataset id a ``continue`` token names the page after; :class:`InvalidRequest` for a
    token this API did not give."""
    if token is None:
        return None
    if re.fullmatch(TOKEN_PATTERN, token) is None:
        raise InvalidRequest(
            f"The continue token {token[:60]!r} is not one this API gave: pass the `continue` "
            "of the previous page as it was answered, or start again without it."
        )
    return UUID(hex=token)


def page_body(items: bytes, after: UUID | None) -> bytes:
    """A page's JSON: its encoded items (a JSON array) and its continue token."""
    token = continue_token(after)
    return b'{"items":' + items + b',"continue":' + (
        b"null" if token is None else b'"' + token.encode() + b'"'
    ) + b"}"
