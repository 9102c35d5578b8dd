"""
One logging stack for every Shoal process: structured JSON lines, one event per line.

:func:`configure_logging` sets up structlog (level, ISO timestamp, JSON) and
routes Twisted's own log events into it, so the control service, the agent
and the plugin write one format, whoever logged. :class:`LoggedSite` makes the
HTTP access log one ``http.request`` event per request instead of Twisted's
combined-log-format text line.

A Twisted event becomes ``{"event": "twisted", "message": ..., "namespace": ...}``
at its level, with the traceback under ``exception`` when it carries a failure.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogBeginner
from twisted.web.server import Site
from zope.interface import provider

_LEVELS = {
    LogLevel.debug: logging.DEBUG,
    LogLevel.info: logging.INFO,
    LogLevel.warn: logging.WARNING,
    LogLevel.error: logging.ERROR,
    LogLevel.critical: logging.CRITICAL,
}


def structlog_processors() -> list[Any]:
    """The processors every Shoal process renders its events with."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(sort_keys=True),
    ]


def configure_logging(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Log JSON lines to ``stream`` (stderr by default), Twisted's events included."""
    out = sys.stderr if stream is None else stream
    structlog.configure(
        processors=structlog_processors(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    globalLogBeginner.beginLoggingTo(
        [twisted_to_structlog], discardBuffer=True, redirectStandardIO=False
    )


@provider(ILogObserver)
def twisted_to_structlog(event: dict[str, Any]) -> None:
    """A Twisted log observer that re-emits each event through structlog."""
    logger = structlog.get_logger(event.get("log_namespace") or "twisted")
    level = _LEVELS.get(event.get("log_level", LogLevel.info), logging.INFO)
    fields: dict[str, Any] = {
        "message": formatEvent(event),
        "namespace": event.get("log_namespace"),
    }
    failure = event.get("log_failure")
    if failure is not None:
        fields["exception"] = failure.getTraceback()
    logger.log(level, "twisted", **fields)


class LoggedSite(Site):
    """A Twisted ``Site`` whose access log is one structured ``http.request`` event per request."""

    access_log = structlog.get_logger("shoal.http")
    noisy = False  # no "Starting factory" events: the service logs its own start

    def routine(self, request: Any) -> bool:
        """Whether ``request`` is routine, logged at debug level only (none is, here)."""
        return False

    def log(self, request: Any) -> None:
        """Log one answered request: method, path, status, bytes sent, client, user agent
        (at debug level if :meth:`routine`, else at info)."""
        routine = self.routine(request)
        if routine and not self.access_log.is_enabled_for(logging.DEBUG):
            return  # dropped anyway: not worth building its fields 400 times a second
        address = request.getClientAddress()
        user_agent = request.getHeader(b"user-agent")
        emit = self.access_log.debug if routine else self.access_log.info
        emit(
            "http.request",
            method=request.method.decode("ascii", "replace"),
            path=request.uri.decode("ascii", "replace"),
            status=request.code,
            bytes=request.sentLength,
            client=getattr(address, "host", None),
            user_agent=None if user_agent is None else user_agent.decode("utf-8", "replace"),
        )
