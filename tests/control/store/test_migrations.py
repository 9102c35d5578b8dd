"""The Alembic migrations create exactly the tables the store uses, and keep data."""

from __future__ import annotations

import json
from uuid import UUID

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from control.errors import Conflict, Unavailable
from control.model import AccessMode, Dataset, Lease
from control.store.engine import make_engine
from control.store.factory import open_store
from control.store.migrate import SchemaMismatch, head_revision, upgrade
from control.store.sql import SQLStore
from control.store.tables import metadata
from control.wire import dataset_to_json

NODE = "9a4d2f4e-43a4-4bd9-9d5b-4a1f1d1d7e01"
DATASET = "2f1e1f80-6f1b-4c59-8d43-0d7a4b0c9a11"


def test_migrated_schema_matches_tables(sql_url: str) -> None:
    """Autogenerate finds no difference between the migrated schema and the table metadata."""
    upgrade(sql_url)
    engine = make_engine(sql_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_upgrade_keeps_data_of_first_revision(sql_url: str) -> None:
    """A database made at revision 0001 and holding data reads back the same at head."""
    upgrade(sql_url, "0001")
    engine = make_engine(sql_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO nodes (uuid, host, era, labels, last_seen) "
                "VALUES (:n, 'h', 'boot', '{\"zone\": \"a\"}', 5.0)"
            ), {"n": NODE})
            connection.execute(text(
                'INSERT INTO datasets (dataset_id, "primary", maximum_size, metadata, deleted, '
                "deleted_generation) VALUES (:d, :n, 67108864, '{\"name\": \"db\"}', false, null)"
            ), {"d": DATASET, "n": NODE})
            connection.execute(text(
                "INSERT INTO leases (dataset_id, node_uuid, expires) VALUES (:d, :n, null)"
            ), {"d": DATASET, "n": NODE})
            connection.execute(text("UPDATE cluster SET generation = 2, state_version = 1"))
    finally:
        engine.dispose()
    store = open_store(sql_url, upgrade=True)
    try:
        configuration = store.configuration(0)
        assert configuration.generation == 2 and store.versions().state == 1
        assert configuration.datasets[UUID(DATASET)] == Dataset(
            dataset_id=UUID(DATASET), primary=UUID(NODE), maximum_size=67108864,
            metadata={"name": "db"},
        )
        assert configuration.leases[UUID(DATASET)] == Lease(UUID(DATASET), UUID(NODE), None)
        assert store.node_by_era("boot") is not None
    finally:
        store.close()


def test_upgrade_is_idempotent(sql_url: str) -> None:
    """Upgrading a database already at head changes nothing and keeps it usable."""
    upgrade(sql_url)
    upgrade(sql_url)
    store = SQLStore(sql_url)
    assert store.versions().configuration == 0
    store.close()


def test_refuses_database_without_schema(sql_url: str) -> None:
    """SQLStore refuses an empty database and says how to upgrade it."""
    with pytest.raises(SchemaMismatch) as raised:
        SQLStore(sql_url)
    assert head_revision() in raised.value.description
    assert "upgrade" in raised.value.description
    assert raised.value.code == 503


def test_refuses_database_at_other_revision(sql_url: str) -> None:
    """SQLStore refuses a database whose recorded revision is not the head."""
    upgrade(sql_url)
    engine = make_engine(sql_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    with pytest.raises(SchemaMismatch, match="'9999'"):
        SQLStore(sql_url)


def test_unreachable_database_is_unavailable() -> None:
    """A database that cannot be reached raises Unavailable naming it without its password."""
    url = "postgresql+psycopg://shoal:s3cret@127.0.0.1:1/control?connect_timeout=2"
    with pytest.raises(Unavailable) as raised:
        open_store(url)
    assert "127.0.0.1:1/control" in raised.value.description
    assert "s3cret" not in raised.value.description


def test_unwritable_sqlite_is_unavailable(tmp_path) -> None:
    """A SQLite file in a missing directory raises Unavailable naming the file."""
    url = f"sqlite:///{tmp_path / 'missing' / 'control.db'}"
    with pytest.raises(Unavailable, match="control.db"):
        open_store(url, upgrade=True)


def test_upgrade_from_0004_gives_datasets_no_class_and_read_write_once(sql_url: str) -> None:
    """A dataset stored before placement (0004) reads back with no class and RWO."""
    upgrade(sql_url, "0004")
    engine = make_engine(sql_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(
                'INSERT INTO datasets (dataset_id, "primary", maximum_size, metadata, deleted, '
                "deleted_generation, epoch, filesystem) "
                "VALUES (:d, :n, null, '{}', false, null, 3, 'xfs')"
            ), {"d": DATASET, "n": NODE})
    finally:
        engine.dispose()
    store = open_store(sql_url, upgrade=True)
    try:
        dataset = store.dataset(UUID(DATASET))
        assert dataset == Dataset(UUID(DATASET), UUID(NODE), epoch=3, filesystem="xfs")
        assert dataset.storage_class is None and dataset.access_mode is AccessMode.RWO
        assert store.classes() == []
    finally:
        store.close()


def test_upgrade_to_0009_names_stored_datasets(sql_url: str) -> None:
    """A named dataset stored before 0009 still holds its name against a new create (409)."""
    upgrade(sql_url, "0008")
    engine = make_engine(sql_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(
                'INSERT INTO datasets (dataset_id, "primary", maximum_size, metadata, deleted, '
                "deleted_generation, epoch) VALUES (:d, :n, null, :m, false, null, 0)"
            ), {"d": DATASET, "n": NODE, "m": '{"name": "pg-data"}'})
            connection.execute(text(
                "INSERT INTO nodes (uuid, host, era, labels) VALUES (:n, 'h', null, '{}')"
            ), {"n": NODE})
    finally:
        engine.dispose()
    store = open_store(sql_url, upgrade=True)
    try:
        again = Dataset(UUID(int=7), UUID(NODE), metadata={"name": "pg-data"})
        with pytest.raises(Conflict):
            store.create_dataset(again, None)
        assert store.dataset(UUID(DATASET)).name == "pg-data"  # type: ignore[union-attr]
    finally:
        store.close()


def test_upgrade_to_0010_stores_each_listing_item(sql_url: str) -> None:
    """Datasets stored before 0010 get their v1 listing item: the stored listing is the one
    their values encode (sizes, metadata, deletions)."""
    upgrade(sql_url, "0009")
    engine = make_engine(sql_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO nodes (uuid, host, era, labels) VALUES (:n, 'h', null, '{}')"
            ), {"n": NODE})
            for dataset_id, size, metadata, deleted in (
                (DATASET, None, '{"name": "pg-data"}', False),
                (NODE.replace("9", "1"), 67108864, "{}", True),
            ):
                connection.execute(text(
                    'INSERT INTO datasets (dataset_id, "primary", maximum_size, metadata, '
                    "deleted, deleted_generation, epoch) VALUES (:d, :n, :s, :m, :x, null, 0)"
                ), {"d": dataset_id, "n": NODE, "s": size, "m": metadata, "x": deleted})
    finally:
        engine.dispose()
    store = open_store(sql_url, upgrade=True)
    try:
        items = sorted(store.configuration(0).datasets.values(), key=lambda d: str(d.dataset_id))
        expected = json.dumps([dataset_to_json(d) for d in items], separators=(",", ":"))
        assert store.dataset_listing() == (0, expected.encode())
        assert json.loads(expected)[0]["deleted"] is True
    finally:
        store.close()


def test_upgrade_to_0011_moves_each_report_into_rows(sql_url: str) -> None:
    """Reports stored before 0011 (datasets in one JSON document per node) read back the same
    from their rows, and the old column is left empty."""
    upgrade(sql_url, "0010")
    other = NODE.replace("9", "2")
    document = {
        DATASET: {"status": "mounted", "maximum_size": 67108864, "device": "/dev/b",
                  "path": "/m/x"},
        other: {"status": "attached", "maximum_size": None, "device": "/dev/c", "path": None},
    }
    engine = make_engine(sql_url)
    try:
        with engine.begin() as connection:
            for node, datasets in ((NODE, document), (other, {})):
                connection.execute(text(
                    "INSERT INTO nodes (uuid, host, era, labels) VALUES (:n, 'h', 'e', '{}')"
                ), {"n": node})
                connection.execute(text(
                    "INSERT INTO node_states (node_uuid, era, generation, reported_at, datasets, "
                    "conditions) VALUES (:n, 'e', 3, 7.0, :d, '[]')"
                ), {"n": node, "d": json.dumps(datasets)})
    finally:
        engine.dispose()
    store = open_store(sql_url, upgrade=True)
    try:
        reports = store.cluster_state().reports
        assert reports[UUID(other)].datasets == {}
        states = reports[UUID(NODE)].datasets
        assert {str(i): (s.status.value, s.maximum_size, s.device, s.path)
                for i, s in states.items()} == {
            i: (v["status"], v["maximum_size"], v["device"], v["path"])
            for i, v in document.items()
        }
        assert reports[UUID(NODE)].generation == 3
    finally:
        store.close()
    engine = make_engine(sql_url)
    try:
        with engine.connect() as connection:
            left = connection.execute(text("SELECT datasets FROM node_states")).scalars().all()
    finally:
        engine.dispose()
    assert left == [None, None]
