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


def test_pages_list_every_dataset_once_by_id() -> None:
    """``limit`` answers pages of at most that many datasets, by id, and following each
    ``continue`` token until it is null lists every dataset once, as the whole listing."""
    h = Harness()
    h.register()
    for _ in range(5):
        assert h.create(maximum_size=GiB).code == 201
    whole = h.call("GET", LISTING).body
    found, token, sizes = [], None, []
    while True:
        answer = h.call("GET", f"{LISTING}?limit=2" + (f"&continue={token}" if token else ""))
        assert answer.code == 200, answer.body
        assert answer.headers.getRawHeaders("x-configuration-tag")
        sizes.append(len(answer.body["items"]))
        found += answer.body["items"]
        token = answer.body["continue"]
        if token is None:
            break
    assert (found, sizes) == (whole, [2, 2, 1])


def test_page_after_a_write_reflects_it() -> None:
    """A page asked after a write lists the dataset as it is now (the listing is patched)."""
    h = Harness()
    h.register()
    assert h.create(dataset_id=str(DATASET_1), maximum_size=GiB).code == 201
    assert h.call("GET", f"{LISTING}?limit=10").body["items"][0]["deleted"] is False
    assert h.call("DELETE", f"/v1/configuration/datasets/{DATASET_1}").code == 200
    page = h.call("GET", f"{LISTING}?limit=10").body
    assert (page["items"][0]["deleted"], page["continue"]) == (True, None)


def test_bad_page_parameters_are_refused() -> None:
    """A limit out of range, or a continue token this API did not give, is a 400 saying why."""
    h = Harness()
    h.register()
    for query in ("limit=0", "limit=10001", "limit=x", "continue=bm90LW91cnM"):
        answer = h.call("GET", f"{LISTING}?{query}")
        assert answer.code == 400, query
        assert answer.body["description"]
