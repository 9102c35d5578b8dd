"""The first schema: cluster counters, datasets, leases, nodes and node reports.

Revision ID: 0001
Revises:
Create Date: 2024-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tables and the single cluster row."""
    cluster = op.create_table(
        "cluster",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("state_version", sa.BigInteger, nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_cluster_single_row")),
        sa.PrimaryKeyConstraint("id", name="pk_cluster"),
    )
    op.bulk_insert(cluster, [{"id": 1, "generation": 0, "state_version": 0}])
    op.create_table(
        "datasets",
        sa.Column("dataset_id", sa.String(36), nullable=False),
        sa.Column("primary", sa.String(36), nullable=False),
        sa.Column("maximum_size", sa.BigInteger, nullable=True),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("deleted", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("deleted_generation", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("dataset_id", name="pk_datasets"),
    )
    op.create_index("ix_datasets_primary", "datasets", ["primary"])
    op.create_index("ix_datasets_deleted", "datasets", ["deleted"])
    op.create_table(
        "leases",
        sa.Column("dataset_id", sa.String(36), nullable=False),
        sa.Column("node_uuid", sa.String(36), nullable=False),
        sa.Column("expires", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("dataset_id", name="pk_leases"),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.dataset_id"],
            name="fk_leases_dataset_id",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "nodes",
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("era", sa.String(255), nullable=True),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("uuid", name="pk_nodes"),
    )
    op.create_index("ix_nodes_era", "nodes", ["era"])
    op.create_table(
        "node_states",
        sa.Column("node_uuid", sa.String(36), nullable=False),
        sa.Column("era", sa.String(255), nullable=True),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("reported_at", sa.Float, nullable=True),
        sa.Column("datasets", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("node_uuid", name="pk_node_states"),
        sa.ForeignKeyConstraint(
            ["node_uuid"], ["nodes.uuid"], name="fk_node_states_node_uuid", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    """Drop everything."""
    for table in ("node_states", "nodes", "leases", "datasets", "cluster"):
        op.drop_table(table)
