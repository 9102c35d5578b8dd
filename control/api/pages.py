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

import base64
import binascii
from uuid import UUID

from control.errors import InvalidRequest

DEFAULT_PAGE = 500
"""The page size when only ``continue`` is given."""
PREFIX = b"after:"


def continue_token(after: UUID | None) -> str | None:
    """The token asking for the page after the dataset ``after`` (``None``: no more pages)."""
    if after is None:
        return None
    return base64.urlsafe_b64encode(PREFIX + str(after).encode()).decode().rstrip("=")


def after_of(token: str | None) -> UUID | None:
    """The dataset id a ``continue`` token names the page after; :class:`InvalidRequest` for a
    token this API did not give."""
    if token is None:
        return None
    try:
        decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        if not decoded.startswith(PREFIX):
            raise ValueError(token)
        return UUID(decoded[len(PREFIX):].decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest(
            f"The continue token {token[:60]!r} is not one this API gave: pass the `continue` "
            "of the previous page as it was answered, or start again without it."
        ) from None


def page_body(items: bytes, after: UUID | None) -> bytes:
    """A page's JSON: its encoded items (a JSON array) and its continue token."""
    token = continue_token(after)
    return b'{"items":' + items + b',"continue":' + (
        b"null" if token is None else b'"' + token.encode() + b'"'
    ) + b"}"
