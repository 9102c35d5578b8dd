"""Each node's reported dataset states in rows of their own: ``node_datasets``.

A node's report held its datasets' states as one JSON document in its
``node_states`` row: a report that changed one of 2,000 datasets rewrote the
whole 400 KB row (and, on PostgreSQL, its TOASTed value). With a row per
(node, dataset), it writes the rows of the datasets that changed (issue 16).
The states stored are moved into rows here, and ``node_states.datasets`` is
left ``NULL``.

Not additive for node reports: a replica of the previous release, still running
during a rolling upgrade, reads a report's datasets from the old column (it
fails on the ``NULL``: a loud error, not a wrong answer), and a trigger refuses
its writes of the old column, so that none is lost silently
(docs/operations.md, "Rolling upgrades").

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

REFUSAL = (
    "node_states.datasets is no longer written: node reports are stored in node_datasets "
    "since schema revision 0011; upgrade this Shoal replica to the version the others run"
)

_states = sa.table(
    "node_states",
    sa.column("node_uuid", sa.String),
    sa.column("datasets", sa.JSON),
)
_rows = sa.table(
    "node_datasets",
    sa.column("node_uuid", sa.String),
    sa.column("dataset_id", sa.String),
    sa.column("status", sa.String),
    sa.column("maximum_size", sa.BigInteger),
    sa.column("device", sa.String),
    sa.column("path", sa.String),
)


def upgrade() -> None:
    """Make node_states.datasets nullable, move its states into node_datasets, and refuse
    writes of it."""
    # Before node_datasets exists: a batch copies node_states on SQLite, and dropping the
    # old table would cascade to the rows that refer to it.
    with op.batch_alter_table("node_states") as node_states:
        node_states.alter_column("datasets", existing_type=sa.JSON, nullable=True)
    op.create_table(
        "node_datasets",
        sa.Column("node_uuid", sa.String(36), nullable=False),
        sa.Column("dataset_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("maximum_size", sa.BigInteger, nullable=True),
        sa.Column("device", sa.String(4096), nullable=True),
        sa.Column("path", sa.String(4096), nullable=True),
        sa.PrimaryKeyConstraint("node_uuid", "dataset_id", name="pk_node_datasets"),
        sa.ForeignKeyConstraint(
            ["node_uuid"], ["node_states.node_uuid"],
            name="fk_node_datasets_node_uuid", ondelete="CASCADE",
        ),
    )
    connection = op.get_bind()
    for node_uuid, datasets in connection.execute(sa.select(_states.c.node_uuid,
                                                            _states.c.datasets)).all():
        found = _decoded(datasets)
        if found:
            connection.execute(sa.insert(_rows), [
                {"node_uuid": node_uuid, "dataset_id": dataset_id,
                 "status": state["status"], "maximum_size": state.get("maximum_size"),
                 "device": state.get("device"), "path": state.get("path")}
                for dataset_id, state in found.items()
            ])
    op.execute("UPDATE node_states SET datasets = NULL")
    if connection.dialect.name == "sqlite":
        _sqlite_triggers()
    else:
        _postgresql_triggers()


def _decoded(datasets: Any) -> dict[str, Any]:
    if datasets is None:
        return {}
    return json.loads(datasets) if isinstance(datasets, str) else dict(datasets)


def _sqlite_triggers() -> None:
    refuse = f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
    op.execute(
        "CREATE TRIGGER node_states_datasets_written BEFORE UPDATE OF datasets ON node_states "
        + refuse
    )
    op.execute(
        "CREATE TRIGGER node_states_datasets_inserted BEFORE INSERT ON node_states "
        "WHEN NEW.datasets IS NOT NULL " + refuse
    )


def _postgresql_triggers() -> None:
    op.execute(
        "CREATE FUNCTION node_states_datasets_written() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{REFUSAL}'; END $$"
    )
    op.execute(
        "CREATE TRIGGER node_states_datasets_written BEFORE UPDATE OF datasets ON node_states "
        "FOR EACH ROW EXECUTE FUNCTION node_states_datasets_written()"
    )
    op.execute(
        "CREATE TRIGGER node_states_datasets_inserted BEFORE INSERT ON node_states "
        "FOR EACH ROW WHEN (NEW.datasets IS NOT NULL) "
        "EXECUTE FUNCTION node_states_datasets_written()"
    )


def downgrade() -> None:
    """Drop the triggers, put each node's states back into its document, drop node_datasets."""
    connection = op.get_bind()
    sqlite = connection.dialect.name == "sqlite"
    for name in ("node_states_datasets_written", "node_states_datasets_inserted"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + ("" if sqlite else " ON node_states"))
    if not sqlite:
        op.execute("DROP FUNCTION IF EXISTS node_states_datasets_written()")
    documents: dict[str, dict[str, Any]] = {
        node_uuid: {} for (node_uuid,) in connection.execute(sa.select(_states.c.node_uuid))
    }
    for node_uuid, dataset_id, status, size, device, path in connection.execute(
        sa.select(_rows.c.node_uuid, _rows.c.dataset_id, _rows.c.status,
                  _rows.c.maximum_size, _rows.c.device, _rows.c.path)
    ):
        documents[node_uuid][dataset_id] = {
            "status": status, "maximum_size": size, "device": device, "path": path,
        }
    op.drop_table("node_datasets")
    for node_uuid, document in documents.items():
        connection.execute(
            sa.update(_states).where(_states.c.node_uuid == node_uuid).values(datasets=document)
        )
    with op.batch_alter_table("node_states") as node_states:
        node_states.alter_column("datasets", existing_type=sa.JSON, nullable=False)
