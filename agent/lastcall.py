"""
:class:`LastCall`: the last result of a pure function, reused while it is called again
with the very same arguments (issue 16: an idle agent's pass).

An idle pass works on the very objects the last one did: discovery hands back the same
:class:`~agent.discovery.LocalState` while every observation equals the last
(:class:`~agent.observe.Classified`), and the configuration in hand is reused as it
is while nothing was dropped from it (:func:`~agent.pacing.reusable_configuration`).
What a pass derives from them alone (the records by id, the datasets to ask about)
is then what the last pass derived. Only for functions of immutable arguments:
identity stands for equality there, and any other object, equal or not, calls again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

R = TypeVar("R")


class LastCall(Generic[R]):
    """``function`` with its last call remembered; see the module."""

    def __init__(self, function: Callable[..., R]) -> None:
        self.function = function
        self._args: tuple[Any, ...] | None = None
        self._result: R | None = None

    def __call__(self, *args: Any) -> R:
        """``function(*args)``, or the last result if ``args`` are the last call's objects."""
        last = self._args
        if (
            last is not None
            and len(last) == len(args)
            and all(a is b for a, b in zip(args, last, strict=True))
        ):
            return self._result  # type: ignore[return-value]
        result = self.function(*args)
        self._args, self._result = args, result
        return result
