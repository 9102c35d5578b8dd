"""
The revoked-certificate handlers (``/v1/shoal/revocations``), kept out of the route table.

Each takes the threaded store and the request; the routes in
:mod:`control.api.app` only delegate here. The rule is in
:mod:`control.revocations`, which both stores call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from twisted.web.server import Request

from control import revocations as rv
from control.api import schemas
from control.api.actor import actor_of
from control.api.body import read_json
from control.api.errors import json_response
from control.store.threaded import ThreadedStore


async def list_revocations(store: ThreadedStore, request: Request) -> bytes:
    """Every revoked certificate, oldest first."""
    found = await store.revocations()
    return json_response(request, [rv.revocation_to_json(r) for r in found])


async def revoke(
    store: ThreadedStore, request: Request, now: float, applied: Callable[[], Awaitable[None]]
) -> bytes:
    """Revoke a certificate (201), or answer its revocation again (200); then ``applied``
    (the service reloads its denylist, dropping the certificate's live connections)."""
    body = read_json(request, schemas.REVOKE)
    asked = rv.Revocation(
        rv.parse_serial(body["serial"]), body["subject"], now, actor_of(request), body.get("reason")
    )
    kept, created = await store.revoke_certificate(asked)
    await applied()
    return json_response(request, rv.revocation_to_json(kept), 201 if created else 200)
