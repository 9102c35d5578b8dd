"""
Conformance cases of revoked certificates, which every store passes.

Mixed into the store test classes next to :class:`StoreConformance` (same ``store`` fixture).
"""

from __future__ import annotations

from control.events import EventQuery
from control.revocations import Revocation
from control.store.interface import Store
from tests.control.store.conformance import NOW

BIG = 2**159 + 12345
"""A serial as large as RFC 5280 allows: more than a SQL integer holds."""


class RevocationConformance:
    """Revocation records in any store."""

    def test_revoke_and_list(self, store: Store) -> None:
        """Revocations read back exactly, oldest first, big serials intact."""
        first = Revocation(BIG, "node-n1", NOW, "user-root (admin)", "lost laptop")
        second = Revocation(7, "user-bob", NOW + 1)
        assert store.revoke_certificate(second) == (second, True)
        assert store.revoke_certificate(first) == (first, True)
        assert store.revocations() == [first, second]

    def test_revoking_again_keeps_the_first(self, store: Store) -> None:
        """A second revocation of a serial answers the first record and records no event."""
        first = Revocation(42, "user-bob", NOW, "user-root (admin)", "left")
        store.revoke_certificate(first)
        again = Revocation(42, "user-bob", NOW + 5, "user-other (admin)", "again")
        assert store.revoke_certificate(again) == (first, False)
        assert store.revocations() == [first]
        kinds = [e.kind for e in store.events(EventQuery())]
        assert kinds.count("certificate_revoked") == 1

    def test_revocation_event(self, store: Store) -> None:
        """The event names the certificate, its serial and who revoked it."""
        store.revoke_certificate(Revocation(0xABC, "node-n1", NOW, "user-root (admin)"))
        (event,) = [e for e in store.events(EventQuery()) if e.kind == "certificate_revoked"]
        assert event.actor == "user-root (admin)"
        assert event.details["serial"] == "abc" and event.details["subject"] == "node-n1"
        assert "node-n1" in event.message
