"""Share lease rules (Lease Share, version 2020-02-10 and later): states, transitions, and which share
operations a lease blocks, with the service's codes.

Unlike file leases, share leases may last 15 to 60 seconds or forever, can be renewed, and break over a
period. The states and transitions are those of a blob container's lease, which the Lease Share page
mirrors; Azurite's container lease states (src/blob/lease/Lease*State.ts) were the cross-check for the
corners the page leaves open (break on an expired lease, renew while breaking, ...).

The error codes are Azure's for shares although they name containers: azure-sdk-for-net's recorded
ShareClientTests.DeleteIfExistsAsync_LeaseFailed (a lease id on a share that has none) expects
``LeaseNotPresentWithContainerOperation``; the Lease Share actions answer with the lease-operation codes the
shared ``StorageErrorCode`` enum lists (``LeaseAlreadyPresent``, ``LeaseIdMismatchWithLeaseOperation``,
``LeaseIsBreakingAndCannotBeChanged``, ...). The File service's generated error enum has no lease code of its
own, so nothing names a share-specific variant.

A lease is stored as an id, its duration, when it expires (fixed leases) and when its break completes
(after a break); the state is derived from those and the time, so nothing has to wake up to expire it.
"""

from __future__ import annotations

import enum
import math
import uuid

from keyless.emulator.errors import StorageError
from keyless.emulator.storage.leases import LeaseAction
from keyless.emulator.storage.records import ShareLease


class LeaseState(enum.Enum):
    AVAILABLE = "available"
    LEASED = "leased"
    EXPIRED = "expired"
    BREAKING = "breaking"
    BROKEN = "broken"


def lease_state(lease: ShareLease, now: float) -> LeaseState:
    if lease.lease_id is None:
        return LeaseState.AVAILABLE
    if lease.broken_at is not None:
        return LeaseState.BREAKING if now < lease.broken_at else LeaseState.BROKEN
    if lease.expires is not None and now >= lease.expires:
        return LeaseState.EXPIRED
    return LeaseState.LEASED


def lease_active(lease: ShareLease, now: float) -> bool:
    """Leased or breaking: the states in which the lease id guards the share (status "locked")."""
    return lease_state(lease, now) in (LeaseState.LEASED, LeaseState.BREAKING)




def _err(status: int, code: str, message: str) -> StorageError:
    return StorageError(status, code, message)


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.lower() == b.lower()


def _new(lease_id: str, duration: int, now: float) -> ShareLease:
    return ShareLease(lease_id, duration, None if duration == -1 else now + duration)


def share_lease_transition(lease: ShareLease, action: LeaseAction, now: float, *, lease_id: str | None,
                           proposed: str | None, duration: int, break_period: int | None,
                           ) -> tuple[ShareLease, int | None]:
    """The lease after ``action``, and for a break the seconds until it completes (``x-ms-lease-time``)."""
    state = lease_state(lease, now)
    mismatch = _err(409, "LeaseIdMismatchWithLeaseOperation",
                    "The lease ID specified did not match the lease ID for the share.")
    not_present = _err(409, "LeaseNotPresentWithLeaseOperation", "There is currently no lease on the share.")
    if action is LeaseAction.ACQUIRE:
        if state in (LeaseState.AVAILABLE, LeaseState.EXPIRED, LeaseState.BROKEN):
            return _new(proposed or str(uuid.uuid4()), duration, now), None
        if state is LeaseState.BREAKING:
            if _same(proposed, lease.lease_id):
                raise _err(409, "LeaseIsBreakingAndCannotBeAcquired",
                           "There is already a breaking lease on the share and it cannot be acquired.")
            raise _err(409, "LeaseAlreadyPresent", "There is already a lease present.")
        # Leased: acquiring again with the same id (given as the proposed id) renews with the new duration.
        if proposed is None or not _same(proposed, lease.lease_id):
            raise _err(409, "LeaseAlreadyPresent", "There is already a lease present.")
        return _new(lease.lease_id or proposed, duration, now), None
    if action is LeaseAction.BREAK:
        if state in (LeaseState.AVAILABLE,):
            raise not_present
        if state in (LeaseState.BROKEN, LeaseState.EXPIRED):
            return ShareLease(lease.lease_id, lease.duration, None, now), 0
        remaining = math.inf if lease.expires is None else max(0.0, lease.expires - now)
        if state is LeaseState.BREAKING:
            assert lease.broken_at is not None
            remaining = lease.broken_at - now
        # No period: an infinite lease breaks at once, a fixed one when it would have expired.
        period = (0.0 if remaining == math.inf else remaining) if break_period is None \
            else min(float(break_period), remaining)
        return ShareLease(lease.lease_id, lease.duration, None, now + period), math.ceil(period)
    if state is LeaseState.AVAILABLE:
        raise not_present
    if action is LeaseAction.RELEASE:
        if not _same(lease_id, lease.lease_id):
            raise mismatch
        return ShareLease(), None
    if action is LeaseAction.RENEW:
        if not _same(lease_id, lease.lease_id):
            raise mismatch
        if state in (LeaseState.BREAKING, LeaseState.BROKEN):
            raise _err(409, "LeaseIsBrokenAndCannotBeRenewed",
                       "The lease ID matched, but the lease has been broken explicitly and cannot be "
                       "renewed.")
        return _new(lease.lease_id or "", lease.duration, now), None
    # CHANGE: from the current id (or, repeated, to the id it already has).
    if state in (LeaseState.EXPIRED, LeaseState.BROKEN):
        raise not_present
    if not (_same(lease_id, lease.lease_id) or _same(proposed, lease.lease_id)):
        raise mismatch
    if state is LeaseState.BREAKING:
        raise _err(409, "LeaseIsBreakingAndCannotBeChanged",
                   "The lease ID matched, but the lease is currently in breaking state and cannot be "
                   "changed.")
    assert proposed is not None
    return ShareLease(proposed, lease.duration, lease.expires, None), None


def check_share_lease(lease: ShareLease, lease_id: str | None, now: float, *, required: bool) -> None:
    """A share operation against the lease: Delete Share needs the id of an active lease (``required``);
    the others may omit it, but an id they give must be the active lease's."""
    if lease_active(lease, now):
        if lease_id is None:
            if required:
                raise _err(412, "LeaseIdMissing", "There is currently a lease on the share and no lease ID "
                           "was specified in the request.")
            return
        if not _same(lease_id, lease.lease_id):
            raise _err(412, "LeaseIdMismatchWithContainerOperation",
                       "The lease ID specified did not match the lease ID for the share.")
    elif lease_id is not None:
        raise _err(412, "LeaseNotPresentWithContainerOperation", "There is currently no lease on the share.")
