"""
Rendering answers: JSON bodies, and every refusal as ``{"description": ...}``.

A :class:`~control.errors.ShoalError` becomes its status code with its
description (and ``errors`` for schema failures); Werkzeug's routing errors
become JSON 404/405; anything unexpected is logged and answered as a JSON
500 that does not reveal the traceback.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from control.errors import ShoalError

CONTENT_TYPE = b"application/json"

log = Logger()


def json_headers(request: Request, code: int = 200, tag: str | None = None) -> None:
    """Set the status, the JSON content type and, if given, the configuration tag."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", CONTENT_TYPE)
    if tag is not None:
        request.setHeader(b"x-configuration-tag", tag.encode("ascii"))


def encode(body: Any) -> bytes:
    """Compact JSON, as every answer of the API is encoded."""
    return json.dumps(body, allow_nan=False, separators=(",", ":")).encode("utf-8")


def json_response(request: Request, body: Any, code: int = 200, tag: str | None = None) -> bytes:
    """Set the status and headers, and return ``body`` encoded as JSON."""
    json_headers(request, code, tag)
    return encode(body)


def error_body(description: str, errors: list[str] | None = None) -> dict[str, Any]:
    """The JSON of a refusal."""
    body: dict[str, Any] = {"description": description}
    if errors:
        body["errors"] = list(errors)
    return body


def refuse(request: Request, failure: Failure) -> bytes:
    """Answer a :class:`ShoalError` with its status and description."""
    error = failure.value
    assert isinstance(error, ShoalError)
    return json_response(request, error_body(error.description, error.errors), error.code)


def routing_error(request: Request, failure: Failure) -> bytes:
    """Answer Werkzeug's routing errors (404, 405, ...) as JSON."""
    error = failure.value
    assert isinstance(error, HTTPException)
    code = error.code or 500
    method = request.method.decode("ascii", "replace")
    path = request.path.decode("utf-8", "replace")[:200]
    if isinstance(error, MethodNotAllowed):
        allowed = sorted(set(error.valid_methods or []) - {"HEAD", "OPTIONS"})
        request.setHeader(b"allow", ", ".join(allowed).encode("ascii"))
        description = f"{method} is not allowed on {path}; allowed: {', '.join(allowed)}."
    elif code == 404:
        description = f"There is no {path}; GET /v1/openapi.json lists the API."
    else:
        description = f"{method} {path} was refused: {error.description or error.name}"
    return json_response(request, error_body(description), code)


def unexpected(request: Request, failure: Failure) -> bytes:
    """Log an unexpected failure and answer a JSON 500 without the traceback."""
    log.failure(
        "Unexpected error answering {method} {path}",
        failure,
        method=request.method,
        path=request.path,
    )
    return json_response(
        request,
        error_body("Internal error: the control service could not answer; see its log."),
        500,
    )
