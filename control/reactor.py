"""
The typed faces of the reactor that control, agent and plugin share.

A neutral module: it imports nothing of the API, the store or the agent, so
any layer may depend on it. Runners (where blocking work goes) live beside it
in :mod:`control.runners`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class DelayedCall(Protocol):
    """What ``callLater`` returns (the typed face of ``IDelayedCall``)."""

    def active(self) -> bool:
        """Whether the call is still pending."""
        ...

    def cancel(self) -> None:
        """Stop the call from happening."""
        ...


class ReactorTime(Protocol):
    """The typed face of ``IReactorTime`` that Shoal uses: a reactor or a ``task.Clock``."""

    def seconds(self) -> float:
        """The current time in seconds since the epoch."""
        ...

    def callLater(self, delay: float, f: Callable[..., Any], /, *args: Any, **kw: Any) -> Any:
        """Call ``f`` after ``delay`` seconds; returns a :class:`DelayedCall`."""
        ...
