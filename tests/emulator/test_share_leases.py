"""Share lease rules over time: a fixed lease expires, renews while not re-taken, and a break of a
fixed lease without a period waits out the lease (the states the SDK tests cannot wait for)."""

from __future__ import annotations

import pytest

from keyless.emulator.errors import StorageError
from keyless.emulator.storage import LeaseAction, LeaseState, lease_state
from keyless.emulator.storage.records import ShareLease
from keyless.emulator.storage.share_leases import check_share_lease, share_lease_transition

ID, OTHER = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"


def _do(lease: ShareLease, action: LeaseAction, now: float, **kw: object) -> tuple[ShareLease, int | None]:
    args: dict[str, object] = {"lease_id": None, "proposed": None, "duration": -1, "break_period": None}
    args.update(kw)
    return share_lease_transition(lease, action, now, **args)  # type: ignore[arg-type]


def test_fixed_lease_expires_then_renews_or_is_taken() -> None:
    lease, _ = _do(ShareLease(), LeaseAction.ACQUIRE, 100.0, proposed=ID, duration=15)
    assert lease_state(lease, 114.9) is LeaseState.LEASED
    assert lease_state(lease, 115.0) is LeaseState.EXPIRED
    check_share_lease(lease, None, 120.0, required=True)  # an expired lease guards nothing
    renewed, _ = _do(lease, LeaseAction.RENEW, 120.0, lease_id=ID)
    assert lease_state(renewed, 134.0) is LeaseState.LEASED
    taken, _ = _do(lease, LeaseAction.ACQUIRE, 120.0, proposed=OTHER, duration=-1)
    assert taken.lease_id == OTHER and lease_state(taken, 1e9) is LeaseState.LEASED
    with pytest.raises(StorageError) as err:
        _do(lease, LeaseAction.CHANGE, 120.0, lease_id=ID, proposed=OTHER)
    assert err.value.code == "LeaseNotPresentWithLeaseOperation"


def test_break_without_period_waits_out_a_fixed_lease_and_is_immediate_for_infinite() -> None:
    fixed, _ = _do(ShareLease(), LeaseAction.ACQUIRE, 0.0, proposed=ID, duration=40)
    breaking, seconds = _do(fixed, LeaseAction.BREAK, 10.0)
    assert seconds == 30 and lease_state(breaking, 39.0) is LeaseState.BREAKING
    assert lease_state(breaking, 40.0) is LeaseState.BROKEN
    shorter, seconds = _do(breaking, LeaseAction.BREAK, 11.0, break_period=5)
    assert seconds == 5 and lease_state(shorter, 16.0) is LeaseState.BROKEN
    infinite, _ = _do(ShareLease(), LeaseAction.ACQUIRE, 0.0, proposed=ID)
    broken, seconds = _do(infinite, LeaseAction.BREAK, 1.0)
    assert seconds == 0 and lease_state(broken, 1.0) is LeaseState.BROKEN
    again, _ = _do(broken, LeaseAction.ACQUIRE, 2.0, proposed=ID)
    assert lease_state(again, 2.0) is LeaseState.LEASED
    with pytest.raises(StorageError) as err:
        _do(breaking, LeaseAction.ACQUIRE, 12.0, proposed=ID)
    assert err.value.code == "LeaseIsBreakingAndCannotBeAcquired"
