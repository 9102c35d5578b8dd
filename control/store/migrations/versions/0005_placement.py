"""Placement: storage classes, datasets' class and access mode.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add datasets.storage_class/access_mode and the storage_classes table."""
    with op.batch_alter_table("datasets") as datasets:
        datasets.add_column(sa.Column("storage_class", sa.String(63), nullable=True))
        datasets.add_column(
            sa.Column(
                "access_mode", sa.String(24), nullable=False, server_default="ReadWriteOnce"
            )
        )
    # Not in the batch: on SQLite a batch may copy the table, and dropping the old
    # datasets table would cascade to the leases that refer to it.
    op.add_column(
        "datasets",
        sa.Column(
            "released",
            sa.Boolean(create_constraint=False),
            nullable=False,
            server_default=sa.false(),
        ),
    )
    op.add_column("datasets", sa.Column("released_from", sa.String(36), nullable=True))
    op.create_index("ix_datasets_storage_class", "datasets", ["storage_class"])
    op.create_table(
        "storage_classes",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("backend", sa.String(64), nullable=True),
        sa.Column("filesystem", sa.String(16), nullable=False),
        sa.Column("default_size", sa.BigInteger, nullable=True),
        sa.Column("reclaim_policy", sa.String(16), nullable=False),
        sa.Column("binding_mode", sa.String(32), nullable=False),
        sa.Column("allowed_topologies", sa.JSON, nullable=False),
        sa.Column("access_modes", sa.JSON, nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("is_default", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_storage_classes"),
    )


def downgrade() -> None:
    """Drop the storage_classes table and the new dataset columns."""
    op.drop_table("storage_classes")
    op.drop_index("ix_datasets_storage_class", table_name="datasets")
    with op.batch_alter_table("datasets") as datasets:
        datasets.drop_column("released_from")
        datasets.drop_column("released")
        datasets.drop_column("access_mode")
        datasets.drop_column("storage_class")
