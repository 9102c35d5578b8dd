"""
Revoked certificates: the records, the rule every store applies, and their event.

``shoal ca revoke SERIAL|NAME`` records a :class:`Revocation`; the control
service then refuses the certificate's TLS handshakes and requests, and drops
its live connections (:mod:`control.api.denylist`). A revocation is for ever:
revoking a serial again answers the first record.
"""

from __future__ import annotations

from attrs import frozen

from control.errors import InvalidRequest
from control.model import Event

KINDS = ("certificate_revoked",)
"""The kind of event this module makes (besides :data:`control.events.KINDS`)."""

MAXIMUM_SERIAL = 2**160
"""RFC 5280 serials are positive and at most 20 octets."""


@frozen
class Revocation:
    """A certificate no longer trusted: its serial, who it named, when and by whom."""

    serial: int
    subject: str
    at: float
    actor: str | None = None
    reason: str | None = None


def parse_serial(text: str) -> int:
    """A certificate serial in hex (``3a:4f``, ``0x3A4F``, ``3a4f``), as openssl shows it."""
    digits = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        serial = int(digits, 16)
    except ValueError:
        raise InvalidRequest(
            f"{text[:80]!r} is not a certificate serial: give it in hex, as "
            "`openssl x509 -noout -serial` shows it."
        ) from None
    if not 0 < serial < MAXIMUM_SERIAL:
        raise InvalidRequest(f"Serial {text[:80]!r} is out of range (1 to 20 octets).")
    return serial


def serial_text(serial: int) -> str:
    """A serial in lower-case hex, as the API and the CLI write it."""
    return f"{serial:x}"


def revoke(existing: Revocation | None, asked: Revocation) -> tuple[Revocation, bool]:
    """The revocation to keep and whether it is new: the first one stays."""
    if existing is not None:
        return existing, False
    return asked, True


def revoked_event(revocation: Revocation) -> Event:
    """The event of a new revocation."""
    reason = "" if revocation.reason is None else f": {revocation.reason}"
    return Event(
        kind="certificate_revoked",
        at=revocation.at,
        message=f"revoked certificate {revocation.subject} (serial "
        f"{serial_text(revocation.serial)}){reason}",
        actor=revocation.actor,
        details={"serial": serial_text(revocation.serial), "subject": revocation.subject},
    )


def revocation_to_json(revocation: Revocation) -> dict[str, object]:
    """The JSON of a revocation, as the API answers it."""
    return {
        "serial": serial_text(revocation.serial),
        "subject": revocation.subject,
        "at": revocation.at,
        "actor": revocation.actor,
        "reason": revocation.reason,
    }


def revocation_from_json(body: dict[str, object]) -> Revocation:
    """A revocation from its JSON (as :func:`revocation_to_json` writes it)."""
    actor, reason = body.get("actor"), body.get("reason")
    return Revocation(
        serial=parse_serial(str(body["serial"])),
        subject=str(body["subject"]),
        at=float(body["at"]),  # type: ignore[arg-type]
        actor=None if actor is None else str(actor),
        reason=None if reason is None else str(reason),
    )
