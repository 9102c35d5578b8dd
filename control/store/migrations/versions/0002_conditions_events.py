"""Node mount roots and identities, report conditions, capacity and orphans, the event history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Add the new node and report columns and create the events table."""
    with op.batch_alter_table("nodes") as nodes:
        nodes.add_column(sa.Column("mount_root", sa.String(4096), nullable=True))
        nodes.add_column(sa.Column("identity", sa.String(255), nullable=True))
    with op.batch_alter_table("node_states") as node_states:
        node_states.add_column(sa.Column("conditions", sa.JSON, nullable=True))
        node_states.add_column(sa.Column("capacity", sa.JSON, nullable=True))
        node_states.add_column(sa.Column("orphans", sa.JSON, nullable=True))
    op.create_table(
        "events",
        sa.Column("event_id", EVENT_ID, nullable=False, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("message", sa.String(4096), nullable=False),
        sa.Column("dataset_id", sa.String(36), nullable=True),
        sa.Column("node_uuid", sa.String(36), nullable=True),
        sa.Column("actor", sa.String(255), nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_events"),
    )
    op.create_index("ix_events_dataset_id", "events", ["dataset_id"])
    op.create_index("ix_events_node_uuid", "events", ["node_uuid"])
    op.create_index("ix_events_at", "events", ["at"])


def downgrade() -> None:
    """Drop the events table and the new columns."""
    op.drop_table("events")
    with op.batch_alter_table("node_states") as node_states:
        node_states.drop_column("orphans")
        node_states.drop_column("capacity")
        node_states.drop_column("conditions")
    with op.batch_alter_table("nodes") as nodes:
        nodes.drop_column("identity")
        nodes.drop_column("mount_root")
