"""
The revoked certificates' serials, as the running service knows them.

One :class:`Denylist` is shared by the TLS handshake (a revoked client
certificate is refused before any request), the API (:class:`~control.api.guard.Guard`)
and the site, which drops live connections of a certificate once it is revoked
(:meth:`Denylist.subscribe`). It is refreshed from the store after every
revocation this service makes and every few seconds, so that revocations made
through another replica are applied too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


class Denylist:
    """A set of revoked serial numbers, with listeners told when it grows."""

    def __init__(self, serials: Iterable[int] = ()) -> None:
        self._serials: frozenset[int] = frozenset(serials)
        self._listeners: list[Callable[[], object]] = []

    def revoked(self, serial: int) -> bool:
        """Whether the certificate with ``serial`` is revoked."""
        return serial in self._serials

    def update(self, serials: Iterable[int]) -> None:
        """Replace the set; listeners run if it gained a serial."""
        new = frozenset(serials)
        grew = not new <= self._serials
        self._serials = new
        if grew:
            for listener in list(self._listeners):
                listener()

    def subscribe(self, listener: Callable[[], object]) -> None:
        """Call ``listener`` whenever a serial is added."""
        self._listeners.append(listener)
