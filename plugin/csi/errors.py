"""
The CSI driver's refusals: a gRPC status code and a sentence for people.

:class:`CsiError` carries the code a handler chose; :func:`status_of` turns
any other exception (a :class:`~control.errors.ShoalError` from the control
service, a wait that timed out) into the code the CSI spec's tables name.
"""

from __future__ import annotations

import grpc

from control.client.waiting import WaitBlocked, WaitTimedOut
from control.errors import (
    Conflict,
    InvalidRequest,
    NotAllowed,
    NotFound,
    PreconditionFailed,
    ShoalError,
    Unavailable,
)

Code = grpc.StatusCode


class CsiError(Exception):
    """A refusal with the status code a CO acts on, and what to do about it."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


STATUS_OF: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (WaitTimedOut, Code.DEADLINE_EXCEEDED),
    (WaitBlocked, Code.FAILED_PRECONDITION),
    (InvalidRequest, Code.INVALID_ARGUMENT),
    (NotFound, Code.NOT_FOUND),
    (NotAllowed, Code.NOT_FOUND),
    (Conflict, Code.FAILED_PRECONDITION),
    (PreconditionFailed, Code.ABORTED),
    (Unavailable, Code.UNAVAILABLE),
)
"""Shoal's refusals as CSI codes: a deleted dataset (405) is gone (NOT_FOUND), a write that
lost a race (412) is retried by the CO (ABORTED), a 409 is a precondition to fix first."""


def status_of(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a CO gets for ``error``."""
    if isinstance(error, CsiError):
        return error.code, error.message
    for kind, code in STATUS_OF:
        if isinstance(error, kind):
            return code, str(getattr(error, "description", None) or error)
    if isinstance(error, ShoalError):
        return Code.INTERNAL, error.description
    return Code.INTERNAL, f"Internal error ({type(error).__name__}: {error}); see the driver's log."
