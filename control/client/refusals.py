"""
Turn the service's refusals and connection failures into :mod:`control.errors` values.
"""

from __future__ import annotations

import json

from control.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotAllowed,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ShoalError,
    Unavailable,
    UnsupportedMediaType,
)

ERRORS: dict[int, type[ShoalError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        Forbidden,
        NotFound,
        NotAllowed,
        Conflict,
        PreconditionFailed,
        PayloadTooLarge,
        UnsupportedMediaType,
        Unavailable,
    )
}
"""The refusal raised for each HTTP status; other failures raise :class:`ShoalError`."""


def error_for(code: int, body: bytes, url: str) -> ShoalError:
    """The exception for a refusal: its class from ``code``, its text from the body."""
    cls = ERRORS.get(code, ShoalError)
    try:
        obj = json.loads(body)
        description = str(obj["description"])
        errors = [str(e) for e in obj.get("errors") or []]
    except (ValueError, TypeError, KeyError, AttributeError):
        text = body.decode("utf-8", "replace").strip()[:200]
        description = f"The control service at {url} answered {code}: {text or 'no details'}"
        errors = []
    return cls(description, errors)


def reason(error: BaseException) -> str:
    """A connection failure in words (treq wraps several reasons in one error)."""
    reasons = getattr(error, "reasons", None)
    if reasons:
        return "; ".join(str(r.value) or type(r.value).__name__ for r in reasons)
    return str(error) or type(error).__name__
