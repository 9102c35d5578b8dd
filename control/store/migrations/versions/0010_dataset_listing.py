"""Each dataset's item of the v1 listing, encoded, in a column of its own.

The first ``GET /v1/configuration/datasets`` after a restart built 100,000
``Dataset`` values from their rows and encoded them (seconds); with the encoded
item stored with each row (written by every write of the row, in its
transaction), that listing is the items joined, read straight from the
database. Existing rows are filled here.

Replicas of the previous release, running during a rolling upgrade, write rows
without this column: a trigger clears it (``NULL``: encode from the row) when an
update changes what the item shows but leaves the item as it was.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SHOWN = ("primary", "metadata", "deleted", "released", "maximum_size")
"""The columns an item shows (:func:`control.wire.dataset_to_json`)."""

_rows = sa.table(
    "datasets",
    sa.column("dataset_id", sa.String),
    sa.column("primary", sa.String),
    sa.column("maximum_size", sa.BigInteger),
    sa.column("metadata", sa.JSON),
    sa.column("deleted", sa.Boolean),
    sa.column("released", sa.Boolean),
    sa.column("listing", sa.Text),
)


def upgrade() -> None:
    """Add datasets.listing, fill it, and add the trigger that clears a stale one."""
    op.add_column("datasets", sa.Column("listing", sa.Text, nullable=True))
    _fill(op.get_bind())
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_trigger()
    else:
        _postgresql_trigger()


def _fill(connection: sa.Connection) -> None:
    from control.model import Dataset  # noqa: PLC0415 - the encoding is the application's
    from control.store.rows import listing_fragment  # noqa: PLC0415

    found = connection.execute(
        sa.select(_rows.c.dataset_id, _rows.c.primary, _rows.c.maximum_size, _rows.c.metadata,
                  _rows.c.deleted, _rows.c.released)
    ).all()
    filled = [
        {
            "b_id": dataset_id,
            "b_listing": listing_fragment(
                Dataset(dataset_id=UUID(dataset_id), primary=UUID(primary),
                        maximum_size=size, metadata=metadata or {}, deleted=bool(deleted),
                        released=bool(released))
            ),
        }
        for dataset_id, primary, size, metadata, deleted, released in found
    ]
    if filled:
        connection.execute(
            sa.update(_rows).where(_rows.c.dataset_id == sa.bindparam("b_id"))
            .values(listing=sa.bindparam("b_listing")),
            filled,
        )


def _sqlite_trigger() -> None:
    changed = " OR ".join(f'NEW."{c}" IS NOT OLD."{c}"' for c in SHOWN)
    op.execute(
        "CREATE TRIGGER datasets_listing_stale AFTER UPDATE ON datasets "
        f"WHEN NEW.listing IS OLD.listing AND NEW.listing IS NOT NULL AND ({changed}) "
        "BEGIN UPDATE datasets SET listing = NULL WHERE dataset_id = NEW.dataset_id; END"
    )


def _postgresql_trigger() -> None:
    changed = " OR ".join(
        f'NEW."{c}"::text IS DISTINCT FROM OLD."{c}"::text' for c in SHOWN
    )
    op.execute(
        "CREATE FUNCTION datasets_listing_stale() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN "
        f"IF NEW.listing IS NOT DISTINCT FROM OLD.listing AND ({changed}) THEN "
        "NEW.listing := NULL; END IF; RETURN NEW; END $$"
    )
    op.execute(
        "CREATE TRIGGER datasets_listing_stale BEFORE UPDATE ON datasets "
        "FOR EACH ROW EXECUTE FUNCTION datasets_listing_stale()"
    )


def downgrade() -> None:
    """Drop the trigger and the column."""
    op.execute("DROP TRIGGER IF EXISTS datasets_listing_stale" + (
        "" if op.get_bind().dialect.name == "sqlite" else " ON datasets"))
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP FUNCTION IF EXISTS datasets_listing_stale()")
    with op.batch_alter_table("datasets") as datasets:
        datasets.drop_column("listing")
