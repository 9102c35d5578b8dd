"""Failover: dataset epochs and failover options, node fences and draining marks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add datasets.epoch, failover, failover_grace and nodes.fence, draining."""
    with op.batch_alter_table("datasets") as datasets:
        datasets.add_column(
            sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0")
        )
        datasets.add_column(
            sa.Column("failover", sa.Boolean(create_constraint=False), nullable=True)
        )
        datasets.add_column(sa.Column("failover_grace", sa.Float, nullable=True))
    with op.batch_alter_table("nodes") as nodes:
        nodes.add_column(sa.Column("fence", sa.JSON, nullable=True))
        nodes.add_column(
            sa.Column(
                "draining",
                sa.Boolean(create_constraint=False),
                nullable=False,
                server_default=sa.false(),
            )
        )


def downgrade() -> None:
    """Drop the failover columns."""
    with op.batch_alter_table("nodes") as nodes:
        nodes.drop_column("draining")
        nodes.drop_column("fence")
    with op.batch_alter_table("datasets") as datasets:
        datasets.drop_column("failover_grace")
        datasets.drop_column("failover")
        datasets.drop_column("epoch")
