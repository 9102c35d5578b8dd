"""Snapshots: the snapshots table, datasets' source and filesystem, reported snapshots.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add datasets.source_kind/source_id/filesystem, node_states.snapshots, the snapshots table."""
    with op.batch_alter_table("datasets") as datasets:
        datasets.add_column(sa.Column("source_kind", sa.String(16), nullable=True))
        datasets.add_column(sa.Column("source_id", sa.String(36), nullable=True))
        datasets.add_column(
            sa.Column("filesystem", sa.String(16), nullable=False, server_default="ext4")
        )
    op.create_index("ix_datasets_source_id", "datasets", ["source_id"])
    with op.batch_alter_table("node_states") as node_states:
        node_states.add_column(sa.Column("snapshots", sa.JSON, nullable=True))
    op.create_table(
        "snapshots",
        sa.Column("snapshot_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("dataset_id", sa.String(36), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("node", sa.String(36), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("ready", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("deleted", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("deleted_generation", sa.BigInteger, nullable=True),
        sa.Column("filesystem", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("snapshot_id", name="pk_snapshots"),
    )
    op.create_index("ix_snapshots_name", "snapshots", ["name"])
    op.create_index("ix_snapshots_dataset_id", "snapshots", ["dataset_id"])


def downgrade() -> None:
    """Drop the snapshots table and the new columns."""
    op.drop_table("snapshots")
    with op.batch_alter_table("node_states") as node_states:
        node_states.drop_column("snapshots")
    op.drop_index("ix_datasets_source_id", table_name="datasets")
    with op.batch_alter_table("datasets") as datasets:
        datasets.drop_column("filesystem")
        datasets.drop_column("source_id")
        datasets.drop_column("source_kind")
