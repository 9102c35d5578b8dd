"""A pure function's last result is reused only for the very same arguments."""

from __future__ import annotations

from typing import Any

from agent.lastcall import LastCall


def counted() -> tuple[LastCall[Any], list[tuple[Any, ...]]]:
    """A LastCall over a function that records its calls."""
    calls: list[tuple[Any, ...]] = []

    def function(*args: Any) -> tuple[Any, ...]:
        calls.append(args)
        return ("result", *args)

    return LastCall(function), calls


def test_same_objects_reuse_the_result() -> None:
    """Called again with the very same objects, the function is not called again."""
    last, calls = counted()
    a, b = frozenset({1}), (2,)
    first = last(a, b)
    assert last(a, b) is first
    assert calls == [(a, b)]


def test_equal_but_other_objects_call_again() -> None:
    """An equal argument that is another object is another call (identity, not equality)."""
    last, calls = counted()
    a = frozenset({1})
    last(a)
    assert last(frozenset({1})) == ("result", frozenset({1}))
    assert len(calls) == 2


def test_any_argument_changed_calls_again() -> None:
    """A change in any one argument, or in their number, calls again; only the last call
    is remembered."""
    last, calls = counted()
    a, b, c = object(), object(), object()
    last(a, b)
    last(a, c)
    last(c, b)
    last(a)
    last(a, b)
    assert calls == [(a, b), (a, c), (c, b), (a,), (a, b)]
