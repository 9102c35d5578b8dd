"""
The storage class handlers (``/v1/shoal/classes``), kept out of the route table.

Each takes the threaded store, the request and the clock's ``now``; the routes
in :mod:`control.api.app` only delegate here. The rules are in
:mod:`control.classes`, which both stores call.
"""

from __future__ import annotations

from twisted.web.server import Request

from control.api import schemas
from control.api.actor import actor_of
from control.api.body import read_json
from control.api.errors import json_response
from control.classes import (
    changes_from_json,
    check_class_name,
    class_from_json,
    class_to_json,
)
from control.errors import NotFound
from control.store.threaded import ThreadedStore


async def list_classes(store: ThreadedStore, request: Request) -> bytes:
    """Every class, by name."""
    found = await store.classes()
    return json_response(request, [class_to_json(c) for c in found])


async def create_class(store: ThreadedStore, request: Request, now: float) -> bytes:
    """Create a class (201), or answer the same one again (200)."""
    body = read_json(request, schemas.CREATE_CLASS)
    stored, created = await store.create_class(
        class_from_json({**body, "created": now}), now=now, actor=actor_of(request)
    )
    return json_response(request, class_to_json(stored), 201 if created else 200)


async def show_class(store: ThreadedStore, request: Request, name: str) -> bytes:
    """One class."""
    found = await store.storage_class(check_class_name(name))
    if found is None:
        raise NotFound(f"Storage class {name} does not exist (`shoal class list`).")
    return json_response(request, class_to_json(found))


async def update_class(store: ThreadedStore, request: Request, name: str, now: float) -> bytes:
    """Change a class's mutable fields."""
    changes = changes_from_json(read_json(request, schemas.UPDATE_CLASS))
    stored = await store.update_class(
        check_class_name(name), changes, now=now, actor=actor_of(request)
    )
    return json_response(request, class_to_json(stored))


async def delete_class(store: ThreadedStore, request: Request, name: str, now: float) -> bytes:
    """Delete a class no live dataset names."""
    doomed = await store.delete_class(check_class_name(name), now=now, actor=actor_of(request))
    return json_response(request, class_to_json(doomed))
