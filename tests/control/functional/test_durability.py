"""Real control services under concurrent conditional writers and under SIGKILL."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.processes import NO_FAILOVER_GRACE, ControlProcess, http_json

pytestmark = pytest.mark.functional

SIZE = 64 * 1024 * 1024
DATASETS = "/v1/configuration/datasets"


def register(url: str, count: int) -> list[str]:
    """Register ``count`` nodes with the service; returns their uuids."""
    nodes = [str(uuid.uuid4()) for _ in range(count)]
    for i, node in enumerate(nodes):
        status, _, body = http_json(
            "PUT",
            f"{url}/v1/shoal/nodes/{node}",
            {"host": f"10.0.0.{i}", "era": None, "labels": {}},
        )
        assert status == 200, body
    return nodes


def conditional_mover(url: str, datasets: list[str], nodes: list[str], rounds: int):
    """Read the tag, then move one dataset conditionally on it, ``rounds`` times."""
    wins = []
    for i in range(rounds):
        status, headers, _ = http_json("GET", url + DATASETS)
        tag = headers["X-Configuration-Tag"]
        dataset, primary = datasets[i % len(datasets)], nodes[(i // len(datasets)) % len(nodes)]
        status, headers, body = http_json(
            "POST",
            f"{url}{DATASETS}/{dataset}",
            {"primary": primary},
            {"X-If-Configuration-Matches": tag},
        )
        assert status in (200, 412), body
        if status == 200:
            wins.append((int(tag), int(headers["X-Configuration-Tag"]), dataset, primary))
    return wins


def test_conditional_movers_never_lose_an_update(control: ControlProcess) -> None:
    """Twenty concurrent conditional movers: each tag wins once and the last win is what stays."""
    nodes = register(control.url, 3)
    datasets = [
        http_json("POST", control.url + DATASETS, {"primary": nodes[0]})[2]["dataset_id"]
        for _ in range(3)
    ]
    start_tag = int(http_json("GET", control.url + DATASETS)[1]["X-Configuration-Tag"])
    with ThreadPoolExecutor(20) as pool:
        results = pool.map(
            lambda k: conditional_mover(
                control.url, datasets[k % 3 :] + datasets[: k % 3], nodes, 15
            ),
            range(20),
        )
        wins = sorted(win for result in results for win in result)
    tags_won = [win[0] for win in wins]
    assert len(tags_won) == len(set(tags_won)), "a configuration tag was won twice"
    assert all(new == old + 1 for old, new, _, _ in wins)
    _, headers, final = http_json("GET", control.url + DATASETS)
    assert int(headers["X-Configuration-Tag"]) == start_tag + len(wins)
    last_primary = {dataset: primary for _, _, dataset, primary in wins}
    expected = {d: last_primary.get(d, nodes[0]) for d in datasets}
    assert {d["dataset_id"]: d["primary"] for d in final} == expected


def hammer_creates(url: str, node: str, stop: threading.Event, acknowledged: list[str]) -> None:
    """Create datasets until ``stop`` or the service dies, recording every 201."""
    while not stop.is_set():
        dataset_id = str(uuid.uuid4())
        try:
            status, _, _ = http_json(
                "POST",
                url + DATASETS,
                {"primary": node, "dataset_id": dataset_id, "maximum_size": SIZE},
            )
        except OSError:
            return
        if status == 201:
            acknowledged.append(dataset_id)


def test_acknowledged_writes_survive_sigkill(database_url: str, tmp_path) -> None:
    """Every create answered 201 before a SIGKILL is there after the restart."""
    log = str(tmp_path / "control.log")
    quiet = ["--failover-grace", str(NO_FAILOVER_GRACE)]  # the node never reports: no fence
    service = ControlProcess(database_url, quiet, log_path=log).start()
    node = register(service.url, 1)[0]
    stop, acknowledged = threading.Event(), []
    writers = [
        threading.Thread(target=hammer_creates, args=(service.url, node, stop, acknowledged))
        for _ in range(8)
    ]
    for writer in writers:
        writer.start()
    while len(acknowledged) < 200:
        threading.Event().wait(0.01)
    service.kill()
    stop.set()
    for writer in writers:
        writer.join()
    restarted = ControlProcess(database_url, quiet, log_path=log).start()
    try:
        stored = {d["dataset_id"] for d in http_json("GET", restarted.url + DATASETS)[2]}
    finally:
        restarted.stop()
    assert len(acknowledged) >= 200
    assert set(acknowledged) <= stored
