"""``GET /v1/shoal/datasets``: every dataset in Shoal's fuller form, as the dashboard reads it."""

from __future__ import annotations

from tests.control.api.harness import DATASET_1, DATASET_2, NODE_A, GiB, Harness

LISTING = "/v1/shoal/datasets"


def test_lists_every_dataset_with_class_and_epoch() -> None:
    """Each dataset is listed, by id, with its epoch, filesystem, class and access mode."""
    h = Harness()
    h.register()
    for dataset_id, name in ((DATASET_2, "b"), (DATASET_1, "a")):
        answer = h.create(dataset_id=str(dataset_id), maximum_size=GiB, metadata={"name": name})
        assert answer.code == 201, answer.body
    answer = h.call("GET", LISTING)
    assert answer.code == 200
    assert [d["dataset_id"] for d in answer.body] == [str(DATASET_1), str(DATASET_2)]
    first = answer.body[0]
    assert first["primary"] == str(NODE_A)
    assert first["metadata"] == {"name": "a"}
    assert (first["epoch"], first["filesystem"], first["storage_class"]) == (0, "ext4", None)
    assert first["access_mode"] == "ReadWriteOnce"


def test_deleted_dataset_is_listed_deleted_and_tag_follows_writes() -> None:
    """A deleted dataset stays listed with ``deleted: true``, and the tag grows with writes."""
    h = Harness()
    h.register()
    assert h.create(dataset_id=str(DATASET_1), maximum_size=GiB).code == 201
    before = h.call("GET", LISTING).headers.getRawHeaders("x-configuration-tag")[0]
    assert h.call("DELETE", f"/v1/configuration/datasets/{DATASET_1}").code == 200
    answer = h.call("GET", LISTING)
    assert [d["deleted"] for d in answer.body] == [True]
    assert answer.headers.getRawHeaders("x-configuration-tag")[0] != before
