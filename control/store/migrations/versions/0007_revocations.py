"""Revoked client certificates (the denylist of ``shoal ca revoke``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the revocations table."""
    op.create_table(
        "revocations",
        sa.Column("serial", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(255), nullable=True),
        sa.Column("reason", sa.String(1024), nullable=True),
        sa.PrimaryKeyConstraint("serial", name="pk_revocations"),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_table("revocations")
