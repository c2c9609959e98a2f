"""File lease rules (leases on files are always infinite): which writes a lease blocks, and the
acquire / release / change / break transitions, with the service's error codes.

The handlers translate the request's headers into a :class:`LeaseAction` and lease ids; nothing here
knows a header.
"""

from __future__ import annotations

import enum
import uuid

from keyless.emulator.errors import StorageError
from keyless.emulator.storage.records import Node


class LeaseAction(enum.Enum):
    ACQUIRE = "acquire"
    RENEW = "renew"  # share leases only (file leases never expire)
    RELEASE = "release"
    CHANGE = "change"
    BREAK = "break"


def check_lease(node: Node, lease_id: str | None, *, write: bool) -> None:
    """The service's lease rules for files: writes need the lease id, reads may omit it; a lease id
    given (read or write) must be the file's active lease (Get File: "performed only if the file's lease
    is currently active and the lease ID specified in the request matches")."""
    if node.lease_id is None:
        if lease_id is not None:
            raise StorageError(412, "LeaseNotPresentWithFileOperation",
                               "There is currently no lease on the file.")
        return
    if lease_id is None:
        if write:
            raise StorageError(412, "LeaseIdMissing",
                               "There is currently a lease on the file and no lease ID was specified "
                               "in the request.")
        return
    if lease_id.lower() != node.lease_id.lower():
        raise StorageError(412, "LeaseIdMismatchWithFileOperation",
                           "The lease ID specified did not match the lease ID for the file.")


def lease_transition(node: Node, action: LeaseAction, lease_id: str | None,
                     proposed: str | None) -> str | None:
    """The file's lease id after ``action``. ``proposed`` is required for CHANGE (the caller checks)."""
    current = node.lease_id
    if action is LeaseAction.ACQUIRE:
        wanted = proposed or str(uuid.uuid4())
        if current is not None and current.lower() != wanted.lower():
            raise StorageError(409, "LeaseAlreadyPresent", "There is already a lease present.")
        return wanted
    if current is None:
        raise StorageError(409, "LeaseNotPresentWithLeaseOperation",
                           "There is currently no lease on the file.")
    if action is LeaseAction.BREAK:
        return None
    if lease_id is None or lease_id.lower() != current.lower():
        if action is LeaseAction.CHANGE and proposed is not None and lease_id is not None \
                and proposed.lower() == current.lower():
            return current  # a repeated change is idempotent, as in the service
        raise StorageError(409, "LeaseIdMismatchWithLeaseOperation",
                           "The lease ID specified did not match the lease ID for the file.")
    if action is LeaseAction.RELEASE:
        return None
    if proposed is None:
        raise ValueError("a lease change needs the proposed lease id")
    return proposed
