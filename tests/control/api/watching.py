"""What the watch notifier's tests share: a fake source of counters and a Deferred's recorder."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from control.api.watch import Notifier
from control.model import Versions

WATCH = "/v1/shoal/watch"
NODE_C = UUID("cccccccc-0000-4000-8000-000000000003")


class Counters:
    """A fake source of versions that counts how often it is read."""

    def __init__(self, versions: Versions = Versions(0, 0)) -> None:
        self.versions = versions
        self.reads = 0
        self.pending: list[Deferred] = []
        self.hold = False

    def read(self) -> Deferred:
        """Answer the current versions (or hold the answer when asked to)."""
        self.reads += 1
        if self.hold:
            d: Deferred = Deferred()
            self.pending.append(d)
            return d
        return succeed(self.versions)


def counted_notifier(versions: Versions = Versions(0, 0)) -> tuple[Counters, Notifier]:
    """A notifier on a fake clock reading ``Counters`` that start at ``versions``."""
    counters = Counters(versions)
    return counters, Notifier(Clock(), counters.read, interval=1.0)


def fired(d: Deferred) -> list[Any]:
    """A list that receives ``d``'s result (or failure) once it fires."""
    seen: list[Any] = []

    def record(result: Any) -> Any:
        seen.append(result)
        return result

    d.addBoth(record)
    return seen


def started_watches(
    h: Any, configuration: int, state: int, queries: list[tuple[str, str]]
) -> dict[str, list[Any]]:
    """One watch per ``(name, query)`` on harness ``h`` from the given counters, none yet
    answered; each name's list receives its answer."""
    watches = {
        name: fired(h.start("GET", f"{WATCH}?configuration={configuration}"
                                   f"&state={state}&timeout=60{query}"))
        for name, query in queries
    }
    h.client.flush()
    assert not any(watches.values())
    return watches
