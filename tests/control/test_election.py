"""The election's pure decisions: when a replica may act, and that two never act at once."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control import election as el
from control.election import Election, ElectionSettings, Step

SETTINGS = ElectionSettings(interval=0.5, lease=2.0, takeover=3.0)


def test_a_follower_tries_the_lock_and_a_holder_checks_it() -> None:
    """Without the lock the next step is to try it; with it, to confirm it."""
    assert el.next_step(Election()) is Step.TRY_LOCK
    assert el.next_step(el.won(Election(), 10.0, 10.1)) is Step.CHECK


def test_a_new_leader_waits_the_takeover_delay() -> None:
    """A replica that wins the lock acts only ``takeover`` after the answer arrived."""
    leader = el.confirmed(el.won(Election(), 10.0, 10.2), 12.5)
    assert not el.acting(leader, 13.1, SETTINGS)
    assert el.acting(leader, 13.2, SETTINGS)
    assert el.acting_from(leader, SETTINGS) == pytest.approx(13.2)


def test_a_leader_stops_when_its_lease_runs_out_without_a_confirmation() -> None:
    """Acting ends ``lease`` after the sending of the newest confirmed check."""
    leader = el.confirmed(el.won(Election(), 0.0, 0.1), 5.0)
    assert el.acting(leader, 6.9, SETTINGS)
    assert not el.acting(leader, 7.0, SETTINGS)
    assert el.acting(el.confirmed(leader, 6.5), 8.4, SETTINGS)


def test_an_older_confirmation_answered_late_does_not_shorten_the_lease() -> None:
    """Confirmations keep the newest sending time."""
    leader = el.confirmed(el.won(Election(), 0.0, 0.1), 5.0)
    assert el.confirmed(leader, 4.0).confirmed_at == 5.0


def test_losing_the_lock_stops_at_once_and_a_follower_ignores_confirmations() -> None:
    """A lost lock or session ends acting now; a stray confirmation does not revive it."""
    leader = el.confirmed(el.won(Election(), 0.0, 0.1), 5.0)
    follower = el.lost(leader)
    assert not el.acting(follower, 5.1, SETTINGS)
    assert el.confirmed(follower, 5.2) == Election()
    assert el.acting_from(follower, SETTINGS) is None


def test_the_takeover_delay_must_exceed_the_lease() -> None:
    """Settings whose takeover is not longer than the lease are refused with the reason."""
    with pytest.raises(ValueError, match="longer than the lease"):
        ElectionSettings(lease=3.0, takeover=3.0)


@given(
    confirmed_sent=st.floats(0, 100),
    freed_after=st.floats(0, 10),
    won_after=st.floats(0, 10),
    probe=st.floats(0, 200),
)
def test_an_old_and_a_new_leader_never_act_at_the_same_instant(
    confirmed_sent: float, freed_after: float, won_after: float, probe: float
) -> None:
    """Whenever the server freed the old lock, the old leader stopped before the new one acts.

    The old leader's newest confirmation was sent at ``confirmed_sent`` and the
    server freed the lock ``freed_after`` later (the backend died unseen); the
    new leader's attempt was answered ``won_after`` after that.
    """
    old = el.confirmed(el.won(Election(), 0.0, 0.0), confirmed_sent)
    freed = confirmed_sent + freed_after
    new = el.won(Election(), freed, freed + won_after)
    assert not (el.acting(old, probe, SETTINGS) and el.acting(new, probe, SETTINGS))
