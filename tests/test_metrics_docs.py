"""Every metric a Shoal process exposes is listed in docs/operations.md, and no other."""

from __future__ import annotations

import os
import re

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet.task import Clock

from agent.metrics import AgentMetrics
from control.api.metrics import ClusterCollector, ControlMetrics, ReportCache
from control.liveness import FailoverSettings
from control.store.memory import MemoryStore
from plugin.metrics import PluginMetrics

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                    "operations.md")
ROW = re.compile(r"^\| `(shoal_[a-z_]+)` \| (counter|gauge|histogram) \|", re.MULTILINE)


def documented(section: str) -> dict[str, str]:
    """Metric name -> type, from the table under ``### {section}`` of docs/operations.md."""
    with open(DOCS) as docs:
        text = docs.read()
    start = text.index(f"### {section}\n")
    end = text.find("\n### ", start + 1)
    return dict(ROW.findall(text[start:end]))


def exposed(registry: CollectorRegistry) -> dict[str, str]:
    """Metric name (as scraped: counters with ``_total``) -> type, of a registry's families."""
    found = {}
    for family in registry.collect():
        name = family.name + "_total" if family.type == "counter" else family.name
        found[name] = family.type
    return found


def control_registry() -> CollectorRegistry:
    """The control service's registry, with its scrape-time cluster collector."""
    metrics = ControlMetrics()
    metrics.registry.register(
        ClusterCollector(MemoryStore(), ReportCache(), Clock(), FailoverSettings(), 0.0)
    )
    return metrics.registry


@pytest.mark.parametrize(
    ("section", "registry"),
    [
        ("Control service", control_registry),
        ("Agent", lambda: AgentMetrics(lambda: 0.0).registry),
        ("Plugin", lambda: PluginMetrics().registry),
    ],
)
def test_docs_list_exactly_the_metrics_exposed(section: str, registry: object) -> None:
    """The docs' table of a process names each of its metrics with its type, and no other."""
    assert callable(registry)
    assert exposed(registry()) == documented(section)
