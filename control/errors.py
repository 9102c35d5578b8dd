"""
Errors that refuse a request, each with the HTTP status it maps to.

Every error carries a ``description`` meant for a person: it says what was
wrong and what to do about it.
"""

from __future__ import annotations


class ShoalError(Exception):
    """Base of every refusal Shoal explains to its caller."""

    code = 500

    def __init__(self, description: str, errors: list[str] | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.errors = errors or []


class InvalidRequest(ShoalError):
    """The request was malformed or broke a rule of the model (400)."""

    code = 400


class Forbidden(ShoalError):
    """The caller's certificate may not do this, e.g. report for another node (403)."""

    code = 403


class NotFound(ShoalError):
    """The named thing does not exist (404)."""

    code = 404


class NotAllowed(ShoalError):
    """The method is not allowed on this resource, e.g. moving a deleted dataset (405)."""

    code = 405


class Conflict(ShoalError):
    """The request conflicts with the current state: id in use, lease held (409)."""

    code = 409


class PreconditionFailed(ShoalError):
    """``X-If-Configuration-Matches`` did not match the current tag (412)."""

    code = 412


class PayloadTooLarge(ShoalError):
    """The request body is larger than the service accepts (413)."""

    code = 413


class UnsupportedMediaType(ShoalError):
    """The request body is not JSON (415)."""

    code = 415


class Unavailable(ShoalError):
    """A dependency, such as the database, is not reachable right now (503)."""

    code = 503
