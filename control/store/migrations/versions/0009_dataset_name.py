"""The name of each dataset in a column of its own, indexed.

A create checks that no live dataset has its name: read from the metadata
JSON, that was a scan of every dataset (tens of milliseconds per create at
100,000 datasets); the indexed column makes it one lookup.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_NAME_OF = {
    "sqlite": "json_extract(metadata, '$.name')",
    "postgresql": "metadata ->> 'name'",
}


def upgrade() -> None:
    """Add datasets.name, filled from each dataset's metadata, and its index."""
    # Not in a batch, as in 0008: a batch may copy the table on SQLite.
    op.add_column("datasets", sa.Column("name", sa.String, nullable=True))
    name_of = _NAME_OF.get(op.get_bind().dialect.name, _NAME_OF["postgresql"])
    op.execute(f"UPDATE datasets SET name = {name_of}")
    op.create_index("ix_datasets_name", "datasets", ["name"])


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_datasets_name", "datasets")
    with op.batch_alter_table("datasets") as datasets:
        datasets.drop_column("name")
