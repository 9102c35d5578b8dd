"""Shared helpers for the benchmark scripts: timing, percentiles and the table they print."""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The ``fraction`` percentile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def timed(action: Callable[[], Any], n: int) -> tuple[list[float], float]:
    """Run ``action`` ``n`` times; returns per-call seconds and the wall time of all."""
    samples = []
    start = time.perf_counter()
    for _ in range(n):
        before = time.perf_counter()
        action()
        samples.append(time.perf_counter() - before)
    return samples, time.perf_counter() - start


class Table:
    """Rows of n, p50, p99, throughput and memory, printed aligned."""

    HEADER = ("scenario", "n", "p50 ms", "p99 ms", "ops/s", "RSS MiB")

    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: list[tuple[str, ...]] = []
        self.notes: list[str] = []

    def add(
        self, scenario: str, samples: Sequence[float], wall: float | None, rss_kib: int | None
    ) -> None:
        """Add one scenario's samples (seconds) and the wall time they took."""
        throughput = "" if not wall else f"{len(samples) / wall:.0f}"
        memory = "" if rss_kib is None else f"{rss_kib / 1024:.0f}"
        self.rows.append(
            (
                scenario,
                str(len(samples)),
                f"{percentile(samples, 0.50) * 1000:.2f}",
                f"{percentile(samples, 0.99) * 1000:.2f}",
                throughput,
                memory,
            )
        )

    def note(self, text: str) -> None:
        self.notes.append(text)

    def render(self) -> str:
        """The table as Markdown."""
        lines = [self.HEADER, *self.rows]
        widths = [max(len(row[i]) for row in lines) for i in range(len(self.HEADER))]

        def fmt(row: Sequence[str]) -> str:
            return (
                "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"
            )

        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        notes = ["", *self.notes] if self.notes else []
        return "\n".join(
            [f"### {self.title}", "", fmt(lines[0]), rule, *map(fmt, lines[1:]), *notes]
        )


class KeepAlive:
    """A blocking JSON client on one keep-alive HTTP connection."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=120)

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, http.client.HTTPResponse]:
        """Send one request (``body``: a JSON value, or bytes sent as they are); returns status,
        decoded JSON body and the response."""
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        self.connection.request(method, path, body=data, headers=all_headers)
        response = self.connection.getresponse()
        payload = response.read()
        return response.status, json.loads(payload) if payload else None, response

    def check(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        """Send one request and fail unless it answers ``expect``."""
        status, decoded, _ = self.request(method, path, body)
        if status != expect:
            raise RuntimeError(f"{method} {path} answered {status}: {decoded}")
        return decoded
