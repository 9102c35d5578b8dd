"""
A stand-in node agent for runtime tests of the plugin alone: directories, not volumes.

It persists an identity the way the real agent does (``identity.json`` in its
state dir), registers, and on every configuration or state change reports the
live datasets whose primary is its node as mounted at ``<mount-root>/<id>``,
a plain directory it creates. It never reports a dataset another node still
has attached. It runs in a thread and waits on the control service's watch.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from agent.identity import load_or_create_identity, write_mount_root
from tests.processes import http_json


class DirectoryAgent:
    """One simulated node over HTTP, mounting datasets as directories."""

    def __init__(self, control_url: str, name: str, state_dir: str, mount_root: str) -> None:
        self.url = control_url
        self.name = name
        self.state_dir = state_dir
        self.mount_root = mount_root
        self.uuid = load_or_create_identity(state_dir, name).uuid
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[BaseException] = []

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        status, _, answer = http_json(method, self.url + path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {answer}")
        return answer

    def start(self) -> DirectoryAgent:
        """Register and start converging in a background thread."""
        write_mount_root(self.state_dir, self.mount_root)
        registration = {"host": self.name, "labels": {}, "mount_root": self.mount_root}
        self._call("PUT", f"/v1/shoal/nodes/{self.uuid}", registration)
        self.converge()
        self._thread = threading.Thread(target=self._run, name=f"agent-{self.name}", daemon=True)
        self._thread.start()
        return self

    def converge(self) -> None:
        """Report what this node would have mounted now."""
        configuration = self._call("GET", f"/v1/shoal/nodes/{self.uuid}/configuration")
        elsewhere = {
            s["dataset_id"]
            for s in self._call("GET", "/v1/state/datasets")
            if s.get("primary") not in (None, str(self.uuid))
        }
        reported = []
        for d in configuration["datasets"]:
            if d["primary"] != str(self.uuid) or d["deleted"] or d["dataset_id"] in elsewhere:
                continue
            path = os.path.join(self.mount_root, d["dataset_id"])
            os.makedirs(path, exist_ok=True)
            reported.append(
                {"dataset_id": d["dataset_id"], "status": "mounted",
                 "maximum_size": d.get("maximum_size"), "device": None, "path": path}
            )
        body = {"generation": configuration["generation"], "datasets": reported}
        self._call("PUT", f"/v1/shoal/state/{self.uuid}", body)

    def _run(self) -> None:
        versions = {"configuration": 0, "state": 0}
        while not self._stop.is_set():
            try:
                versions = self._call(
                    "GET",
                    f"/v1/shoal/watch?configuration={versions['configuration']}"
                    f"&state={versions['state']}&timeout=0.5",
                )
                self.converge()
            except Exception as e:  # noqa: BLE001 - recorded for the test to report
                self.errors.append(e)
                self._stop.wait(0.2)

    def stop(self) -> None:
        """Stop converging."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
