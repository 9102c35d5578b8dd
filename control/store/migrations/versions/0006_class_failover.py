"""Storage classes carry the failover options their datasets start with.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add storage_classes.failover and storage_classes.failover_grace."""
    op.add_column(
        "storage_classes",
        sa.Column("failover", sa.Boolean(create_constraint=False), nullable=True),
    )
    op.add_column("storage_classes", sa.Column("failover_grace", sa.Float, nullable=True))


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("storage_classes") as classes:
        classes.drop_column("failover_grace")
        classes.drop_column("failover")
