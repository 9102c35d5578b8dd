"""The dashboard's pure core (model.js), run in the real headless Chromium: status words as the
CLI says them, conditions in plain words, filter and search, moves in flight, node rows."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.agent.functional.conftest import skip_or_fail
from tests.control.ui.browser import missing, start_browser
from tests.processes import ControlProcess

pytestmark = pytest.mark.functional

NODE_1 = "aaaaaaaa-0000-4000-8000-000000000001"
NODE_2 = "bbbbbbbb-0000-4000-8000-000000000002"


@pytest.fixture(scope="module")
def model() -> Iterator[Any]:
    """A function running JavaScript with ``m`` bound to model.js, served by a real service."""
    reason = missing()
    if reason is not None:
        skip_or_fail(reason)
    with tempfile.TemporaryDirectory() as directory:
        service = ControlProcess(f"sqlite:///{os.path.join(directory, 'c.db')}").start()
        driver = start_browser()
        try:
            driver.get(service.url + "/ui/")

            def run(body: str, *args: Any) -> Any:
                script = (
                    "const done = arguments[arguments.length - 1];"
                    "const args = [...arguments].slice(0, -1);"
                    "import('./model.js').then((m) => done((function (m, args) {"
                    f"{body}"
                    "})(m, args)));"
                )
                return driver.execute_async_script(script, *args)

            yield run
        finally:
            driver.quit()
            service.stop()


def dataset(dataset_id: str, primary: str = NODE_1, **fields: Any) -> dict[str, Any]:
    """A dataset as GET /v1/shoal/datasets answers it."""
    return {"dataset_id": dataset_id, "primary": primary, "metadata": {"name": dataset_id},
            "deleted": False, "released": False, "maximum_size": 64 * 2**20, "epoch": 0,
            "filesystem": "ext4", "storage_class": None, "access_mode": "ReadWriteOnce",
            **fields}


def node(uuid: str, name: str, **fields: Any) -> dict[str, Any]:
    """A node as GET /v1/shoal/nodes answers it."""
    return {"uuid": uuid, "host": "10.0.0.1", "labels": {"name": name, "zone": "a"},
            "live": True, "liveness": "live", "fence": None, "draining": False,
            "last_seen": 0, "capacity": None, **fields}


def answers() -> dict[str, Any]:
    """A cluster: mounted, moving, pending, failing, deleting and unbound datasets."""
    condition = {"node_uuid": NODE_1, "dataset_id": "fails", "kind": "error",
                 "reason": "too_large", "step": "create", "since": 100.0, "attempts": 1,
                 "permanent": True, "message": f"cannot fit on node {NODE_1}"}
    return {
        "nodes": [node(NODE_2, "node2"), node(NODE_1, "node1")],
        "datasets": [
            dataset("mounted"), dataset("moving", NODE_2), dataset("pending"),
            dataset("fails"), dataset("deleting", deleted=True), dataset("gone", deleted=True),
            dataset("unbound", "00000000-0000-0000-0000-000000000000"),
        ],
        "state": [
            {"dataset_id": "mounted", "primary": NODE_1, "path": "/m/mounted"},
            {"dataset_id": "moving", "primary": NODE_1, "path": "/m/moving"},
            {"dataset_id": "deleting", "primary": NODE_1, "path": "/m/deleting"},
        ],
        "leases": [{"dataset_id": "mounted", "node_uuid": NODE_1, "expires": None}],
        "conditions": [condition],
        "events": [],
    }


def test_rows_say_what_the_cli_says(model: Any) -> None:
    """Each dataset's status reads as ``shoal dataset list`` prints it; purged ones are gone."""
    words = model("return Object.fromEntries(m.datasetRows(args[0]).map("
                  "(r) => [r.id, [r.status.word, r.status.category]]));", answers())
    assert words == {
        "mounted": ["mounted", "mounted"],
        "moving": ["moving (on node1)", "moving"],
        "pending": ["pending", "pending"],
        "fails": ["error: cannot fit on node1", "error"],
        "deleting": ["deleting", "deleting"],
        "unbound": ["unbound", "unbound"],
    }


def test_condition_in_plain_words(model: Any) -> None:
    """A condition reads as ``shoal dataset show`` prints it, node names put in."""
    text = model("const names = m.namesOf(args[0].nodes);"
                 "return m.conditionText(args[0].conditions[0], names, 220);", answers())
    assert text == "node1: error (create, 1 attempt, for 2m, permanent): cannot fit on node1"


def test_filter_search_and_counts(model: Any) -> None:
    """The filter keeps a category, the search matches names and nodes, counts add up."""
    found = model(
        "const rows = m.datasetRows(args[0]);"
        "return [m.filterRows(rows, 'error', '').map((r) => r.id),"
        "        m.filterRows(rows, 'all', 'NODE2').map((r) => r.id),"
        "        m.filterRows(rows, 'mounted', 'moun').map((r) => r.id),"
        "        m.countCategories(rows)];", answers())
    assert found[0] == ["fails"]
    assert found[1] == ["moving"]
    assert found[2] == ["mounted"]
    assert found[3]["all"] == 6 and found[3]["moving"] == 1 and found[3]["error"] == 1


def test_in_flight_and_node_rows(model: Any) -> None:
    """Only the dataset on its way is in flight; nodes come sorted with what they hold."""
    found = model(
        "const rows = m.datasetRows(args[0]);"
        "return [m.inFlight(rows).map((r) => [r.id, r.progress.stage, r.progress.holder]),"
        "        m.nodeRows(args[0]).map((n) => [n.name, n.zone, n.held, n.desired])];",
        answers())
    assert found[0] == [["moving", "elsewhere", NODE_1]]
    assert found[1] == [["node1", "a", 3, 3], ["node2", "a", 0, 1]]


def test_sizes_and_durations(model: Any) -> None:
    """Sizes in binary units and short durations, as the CLI prints them."""
    found = model("return [m.describeSize(64 * 2 ** 20), m.describeSize(1536 * 2 ** 20),"
                  " m.describeSize(50 * 2 ** 40), m.duration(45), m.duration(600)];")
    assert found == ["64 MiB", "1.5 GiB", "50 TiB", "45s", "10m"]


def test_moves_from_events_are_applied_at_once(model: Any) -> None:
    """A ``moved`` event gives its dataset the new primary before the listing is read again;
    other events, and moves of unknown datasets, change nothing."""
    found = model(
        "const datasets = args[0].datasets;"
        "const events = [{kind: 'moved', dataset_id: 'mounted', details: {from: 'x', to: 'n2'}},"
        "                {kind: 'moved', dataset_id: 'nowhere', details: {to: 'n2'}},"
        "                {kind: 'created', dataset_id: 'pending', details: {}}];"
        "const moved = m.withMoves(datasets, events);"
        "return [moved.find((d) => d.dataset_id === 'mounted').primary,"
        "        datasets.find((d) => d.dataset_id === 'mounted').primary,"
        "        m.withMoves(datasets, events.slice(1)) === datasets];", answers())
    assert found == ["n2", NODE_1, True]
