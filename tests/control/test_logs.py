"""One logging stack: structlog JSON lines, Twisted's events and the HTTP access log included."""

from __future__ import annotations

import json
import subprocess
import sys

from structlog.testing import capture_logs
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.web.test.requesthelper import DummyRequest

from control.logs import LoggedSite, twisted_to_structlog
from tests.processes import ROOT


def test_twisted_events_become_structlog_events() -> None:
    """A Twisted log event keeps its level and text, and its failure as a traceback."""
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failure = Failure()
    with capture_logs() as logs:
        twisted_to_structlog({"log_format": "hello {who}", "who": "you",
                              "log_level": LogLevel.warn, "log_namespace": "twisted.web"})
        twisted_to_structlog({"log_format": "it failed", "log_level": LogLevel.critical,
                              "log_failure": failure})
    assert logs[0]["log_level"] == "warning" and logs[0]["message"] == "hello you"
    assert logs[0]["namespace"] == "twisted.web"
    assert logs[1]["log_level"] == "critical" and "RuntimeError: boom" in logs[1]["exception"]


def test_access_log_is_one_structured_event() -> None:
    """Each answered request is logged as http.request (a Unix socket's client has no host)."""
    request = DummyRequest([b"v1", b"version"])
    request.method, request.uri = b"GET", b"/v1/version?x=1"
    request.code, request.sentLength = 200, 42  # as twisted.web.server.Request has them
    request.requestHeaders.setRawHeaders(b"user-agent", [b"shoal-test"])
    with capture_logs() as logs:
        LoggedSite(None).log(request)  # type: ignore[arg-type]
    assert logs == [{
        "event": "http.request", "log_level": "info", "method": "GET",
        "path": "/v1/version?x=1", "status": 200, "bytes": 42,
        "client": None, "user_agent": "shoal-test",
    }]


def test_a_configured_process_writes_only_json_lines() -> None:
    """After configure_logging, structlog and Twisted's logger both write JSON lines to stderr."""
    script = (
        "from control.logs import configure_logging\n"
        "configure_logging()\n"
        "import structlog\n"
        "from twisted.logger import Logger\n"
        "structlog.get_logger('shoal.test').info('agent.started', node='n1')\n"
        "Logger(namespace='twisted.test').info('Starting factory {f}', f='F')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=True)
    events = [json.loads(line) for line in done.stderr.splitlines()]
    assert [e["event"] for e in events] == ["agent.started", "twisted"]
    assert events[1]["message"] == "Starting factory F" and "timestamp" in events[0]


def test_routine_requests_are_logged_at_debug_level() -> None:
    """A request the site calls routine is logged as http.request at debug level."""

    class Quiet(LoggedSite):
        def routine(self, request: object) -> bool:
            return True

    request = DummyRequest([b"v1", b"shoal", b"watch"])
    request.method, request.uri = b"GET", b"/v1/shoal/watch"
    request.code, request.sentLength = 200, 30
    with capture_logs() as logs:
        Quiet(None).log(request)  # type: ignore[arg-type]
        LoggedSite(None).log(request)  # type: ignore[arg-type]
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("http.request", "debug"), ("http.request", "info")
    ]
