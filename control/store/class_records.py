"""
The SQL statements and rows of storage classes (the ``storage_classes`` table).

Like :mod:`control.store.queries`, every function takes an open connection in
a transaction the caller owns; none commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from control.classes import StorageClass, class_from_json, class_to_json
from control.store.tables import datasets, storage_classes


def class_row(cls: StorageClass) -> dict[str, Any]:
    """The ``storage_classes`` row of ``cls``."""
    body = class_to_json(cls)
    body["is_default"] = body.pop("default")
    return body


def class_from_row(row: Mapping[Any, Any]) -> StorageClass:
    """The class stored in ``row``."""
    body = dict(row)
    body["default"] = bool(body.pop("is_default"))
    return class_from_json(body)


ALL_CLASSES = select(storage_classes).order_by(storage_classes.c.name)
"""Every class's row, by name (:func:`classes_from_rows` reads them)."""
_COLUMNS = tuple(column.key for column in ALL_CLASSES.selected_columns)


def all_classes(connection: Connection) -> list[StorageClass]:
    """Every class, by name."""
    return classes_from_rows(connection.execute(ALL_CLASSES))


def classes_from_rows(found: Iterable[Sequence[Any]]) -> list[StorageClass]:
    """The classes of the rows :data:`ALL_CLASSES` read (values by position)."""
    return [class_from_row(dict(zip(_COLUMNS, row, strict=True))) for row in found]


def get_class(connection: Connection, name: str) -> StorageClass | None:
    """One class, or ``None``."""
    query = select(storage_classes).where(storage_classes.c.name == name)
    row = connection.execute(query).mappings().first()
    return None if row is None else class_from_row(row)


def put_class(connection: Connection, cls: StorageClass, exists: bool) -> None:
    """Insert or update ``cls``."""
    row = class_row(cls)
    if exists:
        connection.execute(
            update(storage_classes).where(storage_classes.c.name == cls.name).values(row)
        )
    else:
        connection.execute(insert(storage_classes).values(row))


def delete_class(connection: Connection, name: str) -> None:
    """Remove the class ``name``."""
    connection.execute(delete(storage_classes).where(storage_classes.c.name == name))


def users_of(connection: Connection, name: str) -> int:
    """How many live datasets name the class ``name``."""
    query = (
        select(func.count())
        .select_from(datasets)
        .where(datasets.c.storage_class == name)
        .where(datasets.c.deleted == False)  # noqa: E712
    )
    return int(connection.execute(query).scalar_one())
