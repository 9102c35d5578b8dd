"""
The SQL schema of the durable store, as SQLAlchemy Core tables.

Alembic migrations in :mod:`control.store.migrations` create exactly this
schema; a test fails when the two differ. UUIDs are stored as their 36
character string form so that SQLite and PostgreSQL rows read the same.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)

UUID_LENGTH = 36

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

CLUSTER_ROW = 1
"""The ``id`` of the only row of :data:`cluster`."""

cluster = Table(
    "cluster",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("generation", BigInteger, nullable=False),
    Column("state_version", BigInteger, nullable=False),
    CheckConstraint(f"id = {CLUSTER_ROW}", name="single_row"),
)
"""One row: the configuration generation and the state version."""

datasets = Table(
    "datasets",
    metadata,
    Column("dataset_id", String(UUID_LENGTH), primary_key=True),
    Column("primary", String(UUID_LENGTH), nullable=False),
    Column("maximum_size", BigInteger, nullable=True),
    Column("metadata", JSON, nullable=False),
    Column("deleted", Boolean(create_constraint=False), nullable=False),
    Column("deleted_generation", BigInteger, nullable=True),
    Column("epoch", BigInteger, nullable=False, server_default="0"),
    Column("failover", Boolean(create_constraint=False), nullable=True),
    Column("failover_grace", Float, nullable=True),
    Column("source_kind", String(16), nullable=True),
    Column("source_id", String(UUID_LENGTH), nullable=True),
    Column("filesystem", String(16), nullable=False, server_default="ext4"),
    Column("storage_class", String(63), nullable=True),
    Column("access_mode", String(24), nullable=False, server_default="ReadWriteOnce"),
    Column("released", Boolean(create_constraint=False), nullable=False, server_default=false()),
    Column("released_from", String(UUID_LENGTH), nullable=True),
    Column("readers", JSON, nullable=True),
    Column("backend", String(63), nullable=True),
    Column("name", String, nullable=True),
    Column("listing", Text, nullable=True),
    Index("ix_datasets_primary", "primary"),
    Index("ix_datasets_deleted", "deleted"),
    Index("ix_datasets_source_id", "source_id"),
    Index("ix_datasets_storage_class", "storage_class"),
    Index("ix_datasets_name", "name"),
)
"""The desired datasets, deleted ones included until they are purged.

``listing`` is the dataset's item of ``GET /v1/configuration/datasets``, encoded, written with
every write of the row (:func:`control.store.rows.listing_fragment`); ``NULL`` when a writer that
does not know the column changed what it shows (a trigger clears it: migration 0010)."""

leases = Table(
    "leases",
    metadata,
    Column(
        "dataset_id",
        String(UUID_LENGTH),
        ForeignKey("datasets.dataset_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("node_uuid", String(UUID_LENGTH), nullable=False),
    Column("expires", Float, nullable=True),
)
"""At most one lease per dataset; expired leases stay until replaced or purged."""

nodes = Table(
    "nodes",
    metadata,
    Column("uuid", String(UUID_LENGTH), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("era", String(255), nullable=True),
    Column("labels", JSON, nullable=False),
    Column("last_seen", Float, nullable=True),
    Column("mount_root", String(4096), nullable=True),
    Column("identity", String(255), nullable=True),
    Column("fence", JSON, nullable=True),
    Column("draining", Boolean(create_constraint=False), nullable=False, server_default=false()),
    Index("ix_nodes_era", "era"),
)
"""Registered nodes."""

node_states = Table(
    "node_states",
    metadata,
    Column(
        "node_uuid",
        String(UUID_LENGTH),
        ForeignKey("nodes.uuid", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("era", String(255), nullable=True),
    Column("generation", BigInteger, nullable=False),
    Column("reported_at", Float, nullable=True),
    Column("datasets", JSON, nullable=True),
    Column("conditions", JSON, nullable=True),
    Column("capacity", JSON, nullable=True),
    Column("orphans", JSON, nullable=True),
    Column("snapshots", JSON, nullable=True),
)
"""The latest report of each node, but its datasets' states (:data:`node_datasets`).

``datasets`` is ``NULL``: it held them as one JSON document before migration 0011, which
moved them into rows (a trigger refuses a write of it, by a replica of the previous
release)."""

node_datasets = Table(
    "node_datasets",
    metadata,
    Column(
        "node_uuid",
        String(UUID_LENGTH),
        ForeignKey("node_states.node_uuid", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("dataset_id", String(UUID_LENGTH), primary_key=True),
    Column("status", String(32), nullable=False),
    Column("maximum_size", BigInteger, nullable=True),
    Column("device", String(4096), nullable=True),
    Column("path", String(4096), nullable=True),
    Index("ix_node_datasets_dataset_id", "dataset_id"),
)
"""Each dataset's state in its node's latest report, a row each: a report that changed one of
a node's 2,000 datasets writes one row, not the node's whole document (issue 16)."""

EVENT_ID = BigInteger().with_variant(Integer(), "sqlite")
"""Event ids: 64 bits, but SQLite only auto-increments an ``INTEGER`` key."""

events = Table(
    "events",
    metadata,
    Column("event_id", EVENT_ID, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("message", String(4096), nullable=False),
    Column("dataset_id", String(UUID_LENGTH), nullable=True),
    Column("node_uuid", String(UUID_LENGTH), nullable=True),
    Column("actor", String(255), nullable=True),
    Column("details", JSON, nullable=False),
    Index("ix_events_dataset_id", "dataset_id"),
    Index("ix_events_node_uuid", "node_uuid"),
    Index("ix_events_at", "at"),
)
"""The event history: bounded per dataset and in age by pruning."""

snapshots = Table(
    "snapshots",
    metadata,
    Column("snapshot_id", String(UUID_LENGTH), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("dataset_id", String(UUID_LENGTH), nullable=False),
    Column("created", Float, nullable=False),
    Column("node", String(UUID_LENGTH), nullable=False),
    Column("size", BigInteger, nullable=True),
    Column("ready", Boolean(create_constraint=False), nullable=False),
    Column("deleted", Boolean(create_constraint=False), nullable=False),
    Column("deleted_generation", BigInteger, nullable=True),
    Column("filesystem", String(16), nullable=False),
    Index("ix_snapshots_name", "name"),
    Index("ix_snapshots_dataset_id", "dataset_id"),
)
"""Snapshot records, deleted ones included until they are purged (they outlive their dataset,
so ``dataset_id`` is no foreign key)."""

storage_classes = Table(
    "storage_classes",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("backend", String(64), nullable=True),
    Column("filesystem", String(16), nullable=False),
    Column("default_size", BigInteger, nullable=True),
    Column("reclaim_policy", String(16), nullable=False),
    Column("binding_mode", String(32), nullable=False),
    Column("allowed_topologies", JSON, nullable=False),
    Column("access_modes", JSON, nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("failover", Boolean(create_constraint=False), nullable=True),
    Column("failover_grace", Float, nullable=True),
    Column("is_default", Boolean(create_constraint=False), nullable=False),
    Column("created", Float, nullable=False),
)
"""Storage classes by name (:mod:`control.classes`)."""

revocations = Table(
    "revocations",
    metadata,
    Column("serial", String(40), primary_key=True),
    Column("subject", String(255), nullable=False),
    Column("at", Float, nullable=False),
    Column("actor", String(255), nullable=True),
    Column("reason", String(1024), nullable=True),
)
"""Revoked client certificates by serial (lower-case hex; :mod:`control.revocations`)."""
