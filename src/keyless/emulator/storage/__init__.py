"""The emulator's file store. :class:`Store` is the one door the handlers use; behind it metadata lives
in SQLite (``metadata``), file bytes in sparse files (``blobs``), and the lease and SMB property rules in
their own modules (``leases``, ``share_leases``, ``smb_rules``). Records are plain values (``records``).
"""

from keyless.emulator.storage.copies import copy_status
from keyless.emulator.storage.leases import LeaseAction, check_lease
from keyless.emulator.storage.records import (
    AccessPolicy,
    ContentSettings,
    Listing,
    Metadata,
    Node,
    ShareRecord,
    SmbProps,
    SmbUpdate,
    name_key,
)
from keyless.emulator.storage.share_leases import LeaseState, lease_state
from keyless.emulator.storage.smb_rules import permission_key_for, smb_time
from keyless.emulator.storage.store import Store

__all__ = [
    "AccessPolicy",
    "ContentSettings",
    "LeaseAction",
    "LeaseState",
    "Listing",
    "Metadata",
    "Node",
    "ShareRecord",
    "SmbProps",
    "SmbUpdate",
    "Store",
    "check_lease",
    "copy_status",
    "lease_state",
    "name_key",
    "permission_key_for",
    "smb_time",
]
