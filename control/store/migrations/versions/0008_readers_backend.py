"""ReadOnlyMany readers and the backend of each dataset's volume.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add datasets.readers (a JSON list of node uuids) and datasets.backend."""
    # Not in a batch: on SQLite a batch may copy the table, and dropping the old
    # datasets table would cascade to the leases that refer to it.
    op.add_column("datasets", sa.Column("readers", sa.JSON, nullable=True))
    op.add_column("datasets", sa.Column("backend", sa.String(63), nullable=True))


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("datasets") as datasets:
        datasets.drop_column("backend")
        datasets.drop_column("readers")
