"""Several control replicas on one PostgreSQL database: start-up, crashes, the leader, restarts."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from control.client.messages import register_node_body
from control.service import hold_sqlite_file
from tests.agent.functional.cluster import AgentProcess
from tests.pgserver import ThrowawayPostgres, postgres_bin
from tests.processes import (
    ControlProcess,
    free_port,
    http_json,
    shoal,
    wait_until,
)
from tests.replicaload import LoadProcess, acknowledged, errors

pytestmark = pytest.mark.functional


def _need(condition: bool, reason: str) -> None:
    if not condition:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}, and CI must have it")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def pg_server() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL server of this module's own, which its tests may restart."""
    _need(postgres_bin() is not None, "PostgreSQL server binaries are not installed")
    server = ThrowawayPostgres().start()
    yield server
    server.remove()


@pytest.fixture
def pg_database(pg_server: ThrowawayPostgres) -> str:
    """A fresh database on the module's own server."""
    return pg_server.create_database(f"shoal_{uuid.uuid4().hex[:10]}")


class Replicas:
    """Control replicas on one database, each restartable on its own port."""

    def __init__(self, database: str, base: Path, count: int, extra: Sequence[str] = ()):
        self.services = [
            ControlProcess(database, extra, log_path=str(base / f"control{i}.log"))
            for i in range(count)
        ]

    @property
    def urls(self) -> list[str]:
        """Every replica's URL."""
        return [s.url for s in self.services]

    def start(self) -> Replicas:
        """Start them all at the same moment and wait until each listens."""
        failures: list[BaseException] = []

        def start(service: ControlProcess) -> None:
            try:
                service.start(timeout=60)
            except BaseException as e:  # noqa: BLE001 - reported below, with its log
                failures.append(e)

        threads = [threading.Thread(target=start, args=(s,)) for s in self.services]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures, f"{failures}: {[self.log(i)[-2000:] for i in range(len(self))]}"
        return self

    def __len__(self) -> int:
        return len(self.services)

    def log(self, index: int) -> str:
        """The replica's log so far."""
        path = self.services[index].log_path
        assert path is not None
        with open(path, errors="replace") as f:
            return f.read()

    def acting(self) -> list[int]:
        """The live replicas that say (``GET /v1/version``) that they lead."""
        found = []
        for i, service in enumerate(self.services):
            if service.process is None or service.process.poll() is not None:
                continue
            try:
                status, _, body = http_json("GET", service.url + "/v1/version")
            except OSError:
                continue
            if status == 200 and body.get("leader") is True:
                found.append(i)
        return found

    def stop(self) -> None:
        """Stop every replica."""
        for service in self.services:
            service.stop()


def _datasets(url: str) -> set[uuid.UUID]:
    status, _, body = http_json("GET", url + "/v1/configuration/datasets")
    assert status == 200, body
    return {uuid.UUID(d["dataset_id"]) for d in body}


def _agent(name: str, urls: Sequence[str], base: Path) -> AgentProcess:
    """A real agent (fake storage) that knows every replica."""
    agent = ReplicaAgent(name, ",".join(urls), str(base), str(base / "pool"),
                         ["--backend", "fake"])
    return agent


class ReplicaAgent(AgentProcess):
    """An agent given several control URLs; registration is checked on any live one."""

    def _registered(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited; see {self.log_path}")
        if not os.path.exists(os.path.join(self.state_dir, "identity.json")):
            return False
        for url in self.control_url.split(","):
            try:
                _, _, nodes = http_json("GET", f"{url}/v1/shoal/nodes")
            except OSError:
                continue
            return any(n["uuid"] == str(self.uuid) for n in nodes)
        return False


def _in_parallel(calls: Sequence[Any]) -> None:
    threads = [threading.Thread(target=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _converged(url: str, expected: set[uuid.UUID]) -> bool:
    """Whether the agents report every expected dataset as present on its primary."""
    try:
        status, _, state = http_json("GET", url + "/v1/state/datasets")
    except OSError:
        return False
    return status == 200 and expected <= {uuid.UUID(d["dataset_id"]) for d in state}


def _any_live(replicas: Replicas) -> str:
    return next(s.url for s in replicas.services
                if s.process is not None and s.process.poll() is None)


def test_killing_replicas_in_turn_loses_no_acknowledged_write(
    pg_database: str, tmp_path: Path
) -> None:
    """Three replicas started at once on an empty database all come up and one leads. Under
    load, kill -9 each in turn, the leader first, and restart it: another replica leads,
    every acknowledged create is stored, the agents converge on all of them, and none of
    them stalls long enough to lose its node lease."""
    began = time.monotonic()
    replicas = Replicas(pg_database, tmp_path, 3).start()
    agents = [_agent(f"node{i}", replicas.urls, tmp_path) for i in range(2)]
    _in_parallel([a.start for a in agents])
    load = LoadProcess(replicas.urls, [a.uuid for a in agents], str(tmp_path / "load.log"),
                       interval=0.1)
    restarts: list[threading.Thread] = []
    try:
        assert not any("UniqueViolation" in replicas.log(i) for i in range(3))
        leader = wait_until(lambda: replicas.acting(), 30, "a leader")
        assert len(leader) == 1
        wait_until(lambda: len(acknowledged(load.log_path)) >= 5, 60, "the first writes")
        order = [leader[0]] + [i for i in range(3) if i != leader[0]]
        for index in order:  # one restarts while the next is killed
            victim = replicas.services[index]
            if len(restarts) >= 2:
                restarts[-2].join()  # so that one replica is always up
            victim.kill()
            if index == leader[0]:
                _check_handover(replicas, index)
            count = len(acknowledged(load.log_path))
            wait_until(lambda c=count: len(acknowledged(load.log_path)) > c + 5, 60,
                       f"writes to go on after killing replica on port {victim.port}")
            restarts.append(threading.Thread(target=victim.start, kwargs={"timeout": 60}))
            restarts[-1].start()
    finally:
        for thread in restarts:
            thread.join()
        load.stop()
    try:
        acked = {d for d, _, _ in acknowledged(load.log_path)}
        print(f"{len(acked)} creates acknowledged, {len(errors(load.log_path))} failed; "
              f"the kills done at {time.monotonic() - began:.1f} s")
        assert len(acked) >= 15
        for url in replicas.urls:
            missing = acked - _datasets(url)
            assert not missing, f"{len(missing)} acknowledged creates are lost"
        wait_until(lambda: _converged(_any_live(replicas), acked), 90,
                   "the agents to report every dataset")
        print(f"converged at {time.monotonic() - began:.1f} s")
        for agent in agents:
            with open(agent.log_path, errors="replace") as log:
                text = log.read()
            assert '"agent.self_fence"' not in text, f"{agent.name} lost its node lease"
            assert '"agent.fenced"' not in text, f"{agent.name} was fenced"
    finally:
        for agent in agents:
            agent.stop()
        replicas.stop()


def _check_handover(replicas: Replicas, killed: int) -> None:
    """Another replica leads soon after the leader was killed, and only one does."""
    killed_at = time.monotonic()
    new = wait_until(lambda: replicas.acting(), 30, "a new leader")
    print(f"handover after kill -9 of the leader: {time.monotonic() - killed_at:.2f} s")
    assert len(new) == 1 and new[0] != killed
    asked = shoal("--json", "--url", ",".join(replicas.urls), "control", "replicas")
    found = {r["url"]: r for r in json.loads(asked.stdout)}
    assert asked.returncode == 1  # the killed replica does not answer
    assert not found[replicas.urls[killed]]["answers"]
    assert [u for u, r in found.items() if r["leader"]] == [replicas.urls[new[0]]]


def _watch_latency(writer: str, watcher: str, floor: float) -> float:
    """Seconds between a write on one replica and a watch on another waking for it."""
    status, _, versions = http_json("GET", watcher + "/v1/shoal/watch?timeout=0")
    assert status == 200, versions
    answer: dict[str, Any] = {}

    def watch() -> None:
        query = (f"/v1/shoal/watch?configuration={versions['configuration']}"
                 f"&state={versions['state']}&timeout={floor * 2:g}")
        answer["versions"] = http_json("GET", watcher + query)[2]
        answer["at"] = time.monotonic()

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(0.3)  # let the watch reach the replica and wait there
    wrote = time.monotonic()
    body = register_node_body("host", "era", {}, None)
    status, _, made = http_json("PUT", f"{writer}/v1/shoal/nodes/{uuid.uuid4()}", body)
    assert status < 300, made
    thread.join(floor * 3)
    assert answer, "the watch did not answer"
    return float(answer["at"] - wrote)


def test_watch_latency_survives_a_database_restart(
    pg_server: ThrowawayPostgres, pg_database: str, tmp_path: Path
) -> None:
    """A watch on replica B wakes for a write on replica A by notification, before and after
    PostgreSQL restarts (the counters' floor read is set far longer than the waits seen)."""
    floor = 30.0
    replicas = Replicas(pg_database, tmp_path, 2, ["--watch-floor", str(floor)]).start()
    try:
        a, b = replicas.urls
        before = _watch_latency(a, b, floor)
        pg_server.restart()
        wait_until(lambda: http_json("GET", a + "/v1/configuration/datasets")[0] == 200, 30,
                   "replica A to reach the database again")
        wait_until(lambda: "listener.reconnected" in replicas.log(1), 30,
                   "replica B's listener to reconnect")
        after = _watch_latency(a, b, floor)
        print(f"watch latency A -> B: {before * 1000:.1f} ms before, {after * 1000:.1f} ms after")
        assert before < floor / 3 and after < floor / 3
    finally:
        replicas.stop()


def test_a_second_service_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    """SQLite serves one process: a service started on a file another one holds exits,
    naming the holder's pid and PostgreSQL as the way to several replicas."""
    path = str(tmp_path / "control.db")
    held = hold_sqlite_file(path)  # this test process plays the first service
    try:
        second = shoal("control", "serve", "--port", str(free_port()), "--database",
                       f"sqlite:///{path}", timeout=60)
    finally:
        os.close(held)
    assert second.returncode != 0
    assert f"(pid {os.getpid()}) already serves the SQLite database" in second.stderr
    assert "PostgreSQL" in second.stderr
