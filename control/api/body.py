"""
Reading requests: JSON bodies checked against a schema, path ids, query parameters.

Every function here either returns clean values or raises a
:class:`~control.errors.ShoalError` whose description says what was wrong,
so that handlers stay thin and bad input never reaches the store.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

import fastjsonschema
from jsonschema import Draft202012Validator, validators
from twisted.web.server import Request

from control.api.schemas import NO_NUL, TAG, UUID_PATTERN, Schema
from control.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from control.wire import parse_uuid

MAX_BODY = 1024 * 1024
"""The largest request body accepted, in bytes (1 MiB)."""

MAX_ERRORS = 20
MAX_MESSAGE = 300


def _header(request: Request, name: bytes) -> str | None:
    value = request.getHeader(name)
    return None if value is None else value.decode("latin-1")


def _check_content_type(request: Request) -> None:
    declared = _header(request, b"content-type")
    if declared is None:
        return
    media = declared.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(
            f"The request body is declared as {media[:60]!r}; send JSON with "
            "Content-Type: application/json."
        )


def _check_length(request: Request) -> None:
    declared = _header(request, b"content-length")
    if declared is None:
        return
    try:
        length = int(declared)
    except ValueError:
        raise InvalidRequest("Content-Length is not a number.") from None
    if length > MAX_BODY:
        raise PayloadTooLarge(
            f"The request body is {length} bytes; at most {MAX_BODY} are accepted."
        )


def read_body(request: Request) -> bytes:
    """The raw body, refusing one over :data:`MAX_BODY` (declared or actual)."""
    _check_length(request)
    content = request.content
    if content is None:
        return b""
    content.seek(0)
    raw: bytes = content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise PayloadTooLarge(f"The request body is over {MAX_BODY} bytes; it is not accepted.")
    return raw


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constants)
"""What ``json.loads(text, parse_constant=...)`` builds on every call, built once."""


def parse_json(raw: bytes) -> Any:
    """Decode a JSON document, refusing bad UTF-8, NaN/Infinity and absurd nesting."""
    if not raw.strip():
        raise InvalidRequest("The request body is empty; a JSON object is required.")
    try:
        value = _DECODER.decode(raw.decode("utf-8"))
        # Only an escape can make a lone surrogate (UTF-8 cannot hold one). A one-byte search
        # first: it is a memchr, where the two-byte one took ~1 ms of a 430 KB report (issue 16).
        if b"\\" in raw and b"\\u" in raw:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest("The request body holds an unpaired UTF-16 surrogate.") from None
    except UnicodeDecodeError:
        raise InvalidRequest("The request body is not valid UTF-8.") from None
    except (ValueError, RecursionError) as e:
        problem = str(e)[:MAX_MESSAGE]
        raise InvalidRequest(f"The request body is not valid JSON: {problem}") from None
    return value


def _is_integer(_checker: Any, instance: object) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)
"""Draft 2020-12, except that an integer is written without a fraction:
``67108864.0`` is not an integer here, as in Flocker (the API's one
deviation from plain JSON Schema, stated in the OpenAPI document)."""

_EXPLAINED = frozenset(
    {"minimum", "maximum", "multipleOf", "exclusiveMinimum", "type", "pattern", "enum"}
)


def _message(error: Any) -> str:
    if error.validator == "pattern" and error.validator_value == UUID_PATTERN:
        return f"{error.json_path}: {str(error.instance)[:60]!r} is not a valid UUID."
    if error.validator == "pattern" and error.validator_value == NO_NUL:
        return f"{error.json_path}: NUL characters are not allowed."
    message = f"{error.json_path}: {error.message}"
    rule = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator in _EXPLAINED and rule:
        message = f"{message}. The rule: {rule}"
    return message[:MAX_MESSAGE]


_VALIDATORS: dict[int, tuple[Mapping[str, Any], Draft202012Validator]] = {}


def _validator(schema: Mapping[str, Any]) -> Draft202012Validator:
    """The validator of ``schema``, built once per schema object (schemas are constants)."""
    cached = _VALIDATORS.get(id(schema))
    if cached is None or cached[0] is not schema:
        cached = (schema, StrictValidator(schema))
        _VALIDATORS[id(schema)] = cached
    return cached[1]


_ACCEPTORS: dict[int, tuple[Mapping[str, Any], Callable[[Any], Any] | None]] = {}


def _acceptor(schema: Mapping[str, Any]) -> Callable[[Any], Any] | None:
    """A compiled check (fastjsonschema) of ``schema``, built once, or ``None`` if it has none.

    Some fifteen times faster than the full validator, it only ever accepts: it
    does not know the strict integers of :data:`StrictValidator` (it takes
    ``1.0`` as an integer), so it is asked only about documents without a
    fraction (:func:`_has_float`), and everything it refuses goes to the full
    validator, which explains the refusal."""
    cached = _ACCEPTORS.get(id(schema))
    if cached is None or cached[0] is not schema:
        try:
            compiled = fastjsonschema.compile(dict(schema), use_formats=False)
        except fastjsonschema.JsonSchemaDefinitionException:
            compiled = None
        cached = (schema, compiled)
        _ACCEPTORS[id(schema)] = cached
    return cached[1]


def _has_float(obj: Any) -> bool:
    """Whether a decoded JSON document holds a number with a fraction or an exponent."""
    if isinstance(obj, float):
        return True
    if isinstance(obj, dict):
        return any(_has_float(value) for value in obj.values())
    if isinstance(obj, list):
        return any(_has_float(value) for value in obj)
    return False


def _accepted(obj: Any, schema: Mapping[str, Any]) -> bool:
    """Whether the compiled check accepts ``obj`` (``False``: ask the full validator)."""
    acceptor = _acceptor(schema)
    if acceptor is None or not isinstance(obj, dict):
        return False
    try:
        if _has_float(obj):
            return False
        acceptor(obj)
    except (fastjsonschema.JsonSchemaException, RecursionError):
        return False
    return True


def validate(obj: Any, schema: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` if it matches ``schema``; else :class:`InvalidRequest` listing every problem."""
    if _accepted(obj, schema):
        return obj  # type: ignore[no-any-return]
    validator = _validator(schema)
    try:
        found = sorted(validator.iter_errors(obj), key=lambda e: e.json_path)
    except RecursionError:
        raise InvalidRequest("The request body is nested too deeply.") from None
    if found:
        messages = [_message(e) for e in found[:MAX_ERRORS]]
        raise InvalidRequest(f"The request body is not valid: {messages[0]}", messages)
    if not isinstance(obj, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return obj


def read_json(request: Request, schema: Mapping[str, Any]) -> dict[str, Any]:
    """The request's JSON object body, checked against ``schema``."""
    _check_content_type(request)
    return validate(parse_json(read_body(request)), schema)


def read_raw(request: Request) -> bytes:
    """The request's body, unparsed, once its content type and length are checked."""
    _check_content_type(request)
    return read_body(request)


_CANONICAL_UUID = re.compile(UUID_PATTERN.removeprefix("^").removesuffix("$"))


def path_uuid(value: str, what: str) -> UUID:
    """A UUID in its canonical 8-4-4-4-12 form, as the JSON bodies require it,
    or :class:`InvalidRequest` naming the bad id (``{...}``, ``urn:uuid:`` and
    bare hex forms, which Python's ``UUID`` accepts, are refused)."""
    if _CANONICAL_UUID.fullmatch(value) is None:
        raise InvalidRequest(f"{what} {value[:80]!r} is not a valid UUID.")
    return parse_uuid(value, what)


def if_tag(request: Request) -> str | None:
    """The ``X-If-Configuration-Matches`` header, if the write is conditional.

    One given once and shaped as a tag (:data:`~control.api.schemas.TAG`) is
    used; an empty, repeated or malformed one is a malformed request (400), not
    a tag that fails to match (412): an empty one is more likely a script's
    unset variable than a wish to write unconditionally."""
    values = request.requestHeaders.getRawHeaders(b"x-if-configuration-matches")
    if values is None:
        return None
    if len(values) != 1:
        raise InvalidRequest("X-If-Configuration-Matches must be given once.")
    value = values[0].decode("latin-1")
    if not _validator(TAG).is_valid(value):
        raise InvalidRequest(
            f"X-If-Configuration-Matches {value[:70]!r} is not a tag: send the tag from "
            "X-Configuration-Tag, or leave the header out for an unconditional write."
        )
    return value


REQUIRE_LIVE_HEADER = "X-Shoal-Require-Live"
"""Opt-in: refuse a create or move onto a node that is not live (Flocker clients never send it)."""


def require_live(request: Request) -> bool:
    """Whether the request opts in to :data:`REQUIRE_LIVE_HEADER` (``true`` or ``false``)."""
    value = _header(request, REQUIRE_LIVE_HEADER.lower().encode())
    if value is None or value.strip().lower() == "false":
        return False
    if value.strip().lower() == "true":
        return True
    raise InvalidRequest(f"{REQUIRE_LIVE_HEADER} must be true or false, not {value[:40]!r}.")


def query(request: Request, allowed: frozenset[str]) -> dict[str, str]:
    """The query parameters, each given at most once and all of them known."""
    result: dict[str, str] = {}
    for raw_name, values in (request.args or {}).items():
        name = raw_name.decode("utf-8", "replace")
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise InvalidRequest(f"Unknown query parameter {name[:40]!r}; known: {known}.")
        if len(values) != 1:
            raise InvalidRequest(f"Query parameter {name!r} must be given once.")
        result[name] = values[0].decode("utf-8", "replace")
    return result


def query_seconds(params: Mapping[str, str], name: str, default: float, maximum: float) -> float:
    """A number of seconds between 0 and ``maximum``, or ``default`` when absent."""
    value = params.get(name)
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= maximum:
        raise InvalidRequest(
            f"Query parameter {name!r} must be a number of seconds from 0 to {maximum:g}."
        )
    return seconds


_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def _parameter_value(text: str, schema: Schema) -> Any:
    if schema.get("type") not in ("integer", "number"):
        return text
    if len(text) > 40 or _JSON_NUMBER.fullmatch(text) is None:
        return None
    return json.loads(text)


def _parameter_valid(value: Any, schema: Schema) -> bool:
    """Whether a decoded query parameter is valid against ``schema``: the compiled check
    first (every watch, most of what 1,000 idle nodes send, has three or four), the full
    validator for what it refuses and for a fraction where an integer is due (which the
    compiled check would take)."""
    acceptor = _acceptor(schema)
    if acceptor is not None and not (isinstance(value, float) and schema.get("type") == "integer"):
        try:
            acceptor(value)
            return True
        except (fastjsonschema.JsonSchemaException, RecursionError):
            pass
    return bool(_validator(schema).is_valid(value))


def query_parameters(request: Request, schemas: Mapping[str, Schema]) -> dict[str, Any]:
    """The query parameters, each given at most once, known, and valid against its
    documented schema (numbers are decoded as JSON numbers first); else
    :class:`InvalidRequest` quoting the parameter's description."""
    result: dict[str, Any] = {}
    for name, text in query(request, frozenset(schemas)).items():
        schema = schemas[name]
        value = _parameter_value(text, schema)
        if value is None or not _parameter_valid(value, schema):
            rule = schema.get("description", "see the OpenAPI document")
            raise InvalidRequest(
                f"Query parameter {name!r} = {text[:60]!r} is not valid: {rule}"
            )
        result[name] = value
    return result


def uuid_list(value: str) -> frozenset[UUID]:
    """The UUIDs of a comma-separated list already checked against ``UUID_LIST_PATTERN``."""
    return frozenset(UUID(item) for item in value.split(",") if item)
