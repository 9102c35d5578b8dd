"""The dashboard in a real headless Chromium against a real control service and real agents
(loopback pool, as ``make run``): live updates, a move from the page, conditions, actions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.support.select import Select

from tests.agent.functional.cluster import LocalCluster, wait_until
from tests.agent.functional.conftest import skip_or_fail
from tests.control.ui.browser import missing, screenshot, start_browser
from tests.processes import ROOT

pytestmark = [pytest.mark.functional, pytest.mark.root]

TIMEOUT = 30.0
"""Seconds any one thing may take to show (generous: two shared cores)."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A control service and agents node1 and node2 on one loopback pool."""
    if os.geteuid() != 0:
        skip_or_fail("needs root: the agents attach loop devices and mount filesystems")
    local = LocalCluster(str(tmp_path_factory.mktemp("dashboard")))
    try:
        local.start()
        yield local
    finally:
        local.close()


@pytest.fixture(scope="module")
def page(cluster: LocalCluster) -> Iterator[Any]:
    """Chromium showing the dashboard, loaded once for the whole module (never reloaded)."""
    reason = missing()
    if reason is not None:
        skip_or_fail(reason)
    driver = start_browser()
    try:
        driver.get(cluster.url + "/ui/")
        wait_until(lambda: driver.execute_script("return document.body.dataset.ready"),
                   TIMEOUT, "the dashboard's first paint", interval=0.05)
        driver.execute_script("window.notReloaded = true")
        yield driver
    finally:
        driver.quit()


def shoal(cluster: LocalCluster, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``shoal`` CLI against the cluster."""
    done = subprocess.run(
        [sys.executable, "-m", "control.cli", *argv, "--url", cluster.url],
        capture_output=True, text=True, cwd=ROOT, timeout=90, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


ROW_SCRIPT = """
const rows = [...document.querySelectorAll('#dataset-list .row')].filter(r => !r.hidden);
const row = rows.find(r => r.dataset.id === arguments[0]);
if (!row) return null;
const cells = {};
for (const cell of row.children) cells[cell.className] = cell.textContent;
return cells;
"""


CLICK_SCRIPT = """
const element = document.querySelector(arguments[0]);
if (element) element.click();
return element !== null;
"""
"""Click an element in the page's own thread: a live redraw cannot swap it between the finding
and the click (rows and lists are redrawn on every update)."""

TEXTS_SCRIPT = """
return [...document.querySelectorAll(arguments[0])].map((element) => element.innerText);
"""
"""The rendered texts of every element a selector matches, read in one go."""


def texts_of(driver: Any, selector: str) -> list[str]:
    """The rendered text of each element ``selector`` matches, read atomically in the page."""
    texts: list[str] = driver.execute_script(TEXTS_SCRIPT, selector)
    return texts


def search(driver: Any, text: str) -> None:
    """Type ``text`` into the search box (replacing what was there)."""
    box = driver.find_element("id", "search")
    box.clear()
    box.send_keys(text)


def row_of(driver: Any, dataset_id: UUID) -> dict[str, str] | None:
    """The cells of the dataset's row as drawn (``None`` when it is not drawn)."""
    cells: dict[str, str] | None = driver.execute_script(ROW_SCRIPT, str(dataset_id))
    return cells


def wait_row(driver: Any, dataset_id: UUID, check: Any, what: str) -> dict[str, str]:
    """Wait until the dataset's row is drawn and ``check(cells)`` holds; returns the cells."""
    def seen() -> dict[str, str] | None:
        cells = row_of(driver, dataset_id)
        return cells if cells is not None and check(cells) else None

    found: dict[str, str] = wait_until(seen, TIMEOUT, what, interval=0.05)
    return found


def select(driver: Any, dataset_id: UUID) -> None:
    """Click the dataset's row, which shows its details and actions."""
    search(driver, str(dataset_id))
    wait_row(driver, dataset_id, lambda cells: True, "the row to be drawn")
    clicked = driver.execute_script(CLICK_SCRIPT, f'#dataset-list .row[data-id="{dataset_id}"]')
    assert clicked, f"the row of {dataset_id} was not drawn to be clicked"
    wait_until(lambda: driver.find_element("id", "detail").is_displayed(), TIMEOUT, "details")


def choose(driver: Any, element_id: str, text: str) -> None:
    """Pick the option showing ``text`` in a select, again if a live update redrew it meanwhile."""
    def chosen() -> bool:
        try:
            Select(driver.find_element("id", element_id)).select_by_visible_text(text)
        except (StaleElementReferenceException, NoSuchElementException):
            return False
        return True

    wait_until(chosen, TIMEOUT, f"{text!r} to be chosen in #{element_id}", interval=0.05)


def text_of(driver: Any, element_id: str) -> str:
    """The visible text of an element."""
    return str(driver.find_element("id", element_id).text)


def test_page_shows_live_nodes_with_capacity(page: Any, cluster: LocalCluster) -> None:
    """The page lists both agents' nodes as live, with their capacity and backend."""
    def nodes() -> list[str] | None:
        texts = texts_of(page, "#node-table tbody tr")
        return texts if len(texts) == 2 and all(" live" in t or "live " in t for t in texts) \
            else None

    texts = wait_until(nodes, TIMEOUT, "two live nodes", interval=0.05)
    assert [t.split()[0] for t in texts] == ["node1", "node2"]
    assert all("loopback" in t and "free of" in t for t in texts)
    assert text_of(page, "connection") == "live"
    assert page.execute_script("return performance.getEntriesByName('shoal:first-paint').length")
    screenshot(page, "dashboard-loaded")


def test_dataset_created_with_the_cli_appears_without_reload(
    page: Any, cluster: LocalCluster
) -> None:
    """``shoal dataset create`` in a terminal: the row appears, then shows it mounted."""
    search(page, "from-cli")
    done = shoal(cluster, "dataset", "create", "--node", "node1", "--size", "64M",
                 "--meta", "name=from-cli", "--json")
    dataset_id = UUID(json.loads(done.stdout)["dataset"]["dataset_id"])
    wait_row(page, dataset_id, lambda c: c["name"] == "from-cli", "the CLI's dataset to appear")
    cells = wait_row(page, dataset_id, lambda c: c["status"] == "mounted", "it mounted")
    assert cells["desired"] == "node1" and cells["actual"].startswith("node1: ")
    assert cells["size"] == "64 MiB"
    assert page.execute_script("return window.notReloaded") is True
    screenshot(page, "dashboard-cli-create")


def test_move_started_from_the_page_lands_on_the_new_node(
    page: Any, cluster: LocalCluster
) -> None:
    """Move to node2 with the page's form: the row then shows it mounted on node2, and so
    does the API; the moves panel says it landed."""
    node1, node2 = cluster.agents["node1"], cluster.agents["node2"]
    dataset_id = cluster.create(node1)
    cluster.wait_mounted(dataset_id, node1, TIMEOUT)
    select(page, dataset_id)
    choose(page, "move-target", "node2")
    page.find_element("id", "move-button").click()
    cells = wait_row(page, dataset_id, lambda c: c["status"] == "mounted"
                     and c["actual"].startswith("node2: "), "the move to land on node2")
    assert cells["desired"] == "node2"
    assert cluster.mounted_on(dataset_id, node2)
    [landed] = texts_of(page, f'#flight-list li[data-id="{dataset_id}"]')
    assert "node1 → node2" in landed and "landed on node2" in landed
    assert "asked" in text_of(page, "action-result")
    screenshot(page, "dashboard-move-landed")


def test_snapshot_and_lease_release_from_the_page(page: Any, cluster: LocalCluster) -> None:
    """The snapshot button makes a snapshot the page lists ready; a lease a node holds is
    shown and released with the page's button."""
    node1 = cluster.agents["node1"]
    dataset_id = cluster.create(node1)
    cluster.wait_mounted(dataset_id, node1, TIMEOUT)
    lease = {"dataset_id": str(dataset_id), "node_uuid": str(node1.uuid), "expires": None}
    cluster.api("POST", "/v1/configuration/leases", lease, 201)
    select(page, dataset_id)
    wait_row(page, dataset_id, lambda c: c["lease"] == "node1", "the lease to show")
    page.find_element("id", "snapshot-name").send_keys("from-page")
    page.find_element("id", "snapshot-button").click()
    wait_until(lambda: "from-page: ready" in text_of(page, "detail-snapshots"),
               TIMEOUT, "the snapshot to be ready")
    page.find_element("id", "release-button").click()
    wait_row(page, dataset_id, lambda c: c["lease"] == "", "the lease to be released")
    assert cluster.api("GET", "/v1/configuration/leases") == []


def test_condition_of_a_failing_create_is_shown_and_delete_asks_first(
    page: Any, cluster: LocalCluster
) -> None:
    """A create larger than the pool (admitted while no node was live) shows the agent's
    error in plain words; Delete asks for confirmation, then the dataset goes."""
    agents = list(cluster.agents.values())
    for agent in agents:
        os.kill(agent.process.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: not any(n["live"] for n in cluster.api("GET", "/v1/shoal/nodes")),
                   TIMEOUT, "both nodes not live")
        body = {"primary": str(agents[0].uuid), "maximum_size": 50 * 1024**4,
                "metadata": {"name": "too-big"}}
        dataset_id = UUID(
            cluster.api("POST", "/v1/configuration/datasets", body, 201)["dataset_id"]
        )
    finally:
        for agent in agents:
            os.kill(agent.process.pid, signal.SIGCONT)
    search(page, "too-big")
    cells = wait_row(page, dataset_id, lambda c: c["status"].startswith("error: "),
                     "the agent's error")
    assert "A volume of 50 TiB can never fit" in cells["status"]
    select(page, dataset_id)
    conditions = text_of(page, "detail-conditions")
    assert "node1: error (create, 1 attempt" in conditions and "permanent" in conditions
    screenshot(page, "dashboard-condition")
    page.find_element("id", "delete-button").click()
    assert page.find_element("id", "confirm-delete").is_displayed()
    page.find_element("id", "confirm-cancel").click()
    assert not cluster.configuration()[dataset_id]["deleted"]
    page.find_element("id", "delete-button").click()
    page.find_element("id", "confirm-ok").click()
    wait_until(lambda: cluster.configuration().get(dataset_id, {"deleted": True})["deleted"],
               TIMEOUT, "the dataset deleted")
    wait_until(lambda: row_of(page, dataset_id) is None, TIMEOUT, "its row to go")
    events = text_of(page, "event-list")
    assert "deleted" in events
