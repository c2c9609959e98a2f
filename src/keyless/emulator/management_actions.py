"""What a bearer token needs to call the FileREST operations that manage the FileService and FileShare
resources (List Shares, Get/Set File Service Properties, Create/Delete Share, share properties, metadata,
ACL, stats, snapshots and leases), and which built-in roles hold it.

What Azure publishes, and what the emulator answers:

=========================  ====================================================  ===========================
Operation                  Needs (both, from 2024-11-04)                         Refused without
=========================  ====================================================  ===========================
List Shares                fileServices/shares/read + readFileBackupSemantics    403 AuthorizationPermission
Get File Service Props     fileServices/read + readFileBackupSemantics               Mismatch (every row)
Set File Service Props     fileServices/write + writeFileBackupSemantics
Create Share               fileServices/shares/write + writeFileBackupSemantics
Get Share Props/Metadata   fileServices/shares/read + readFileBackupSemantics
Get Share Stats / ACL      fileServices/shares/read + readFileBackupSemantics
Set Share Props/Metadata   fileServices/shares/write + writeFileBackupSemantics
Set Share ACL              fileServices/shares/write + writeFileBackupSemantics
Create Share Snapshot      fileServices/shares/write + writeFileBackupSemantics
Delete Share (snapshot)    fileServices/shares/delete + writeFileBackupSemantics
Lease Share                fileServices/shares/lease/action + writeFileBackupSemantics
=========================  ====================================================  ===========================

(``fileServices/...`` is ``Microsoft.Storage/storageAccounts/fileServices/...``.) Before x-ms-version
2024-11-04 none of these takes a bearer token at all: 409 ``FileOAuthManagementApiRestrictedToSrp``
(see ``files/dispatch.py``). Create / Get Permission serve files' security descriptors and stay file
data operations (``fileshares/files/write`` / ``read``).

Built-in roles: the management actions are control-plane *Actions*: Owner and Contributor (``*``) and
Storage Account Contributor (``Microsoft.Storage/storageAccounts/*``) hold all of them, Reader
(``*/read``) the two reads. The backup-semantics *DataActions* come from Storage File Data Privileged
Reader (read) and Privileged Contributor (both), and Storage File Data SMB MI Admin. No built-in role
holds both halves: a caller needs one of each kind.

Sources:

* "Access Azure file shares using Microsoft Entra ID with Azure Files OAuth over REST"
  (learn.microsoft.com/azure/storage/files/authorize-oauth-rest, 2025-03-25): OAuth "for Azure Files
  REST data plane APIs that manage FileService and FileShare resources is available with REST API
  versions 2024-11-04 and later"; callers "must have either the readFileBackupSemantics or
  writeFileBackupSemantics action"; the Privileged roles "don't include any permissions to access file
  share management services (actions on file shares). To use this feature, make sure you have
  permissions to access: the storage account, file share management services, data services"; "RBAC
  actions on the data plane differ for file data operations versus file management operations ...
  ``fileShares`` as opposed to ``shares``".
* "Azure permissions for Storage" (role-based-access-control/permissions/storage.md): the FileService
  and FileShare actions are ``fileServices/read`` ("Get file service properties"), ``fileServices/write``
  ("Put file service properties"), ``fileServices/shares/read`` ("Get file share", "List file shares"),
  ``/write`` ("Create or update file share"), ``/delete`` ("Delete file share"), ``/lease/action``; the
  only Files DataActions are ``fileshares/files/*`` and the fileServices privileges: no data action
  manages a share.
* "Azure built-in roles for Storage": the Privileged roles have no Actions (DataActions only).
* Version 2024-11-04 release notes: "token-based authentication for all data plane APIs in the files
  service"; azure-storage-file-share 12.18.0b1: "Entra ID authentication for all data plane file
  operations that were previously not enabled".
* Microsoft's AzureStorageExplorer issue 8557 (2025-04): a share-scoped Storage File Data Privileged
  Contributor listing a share's snapshots gets "This request is not authorized to perform this operation
  using this permission" (``AuthorizationPermissionMismatch``, the code Azure Storage returns when an
  authenticated principal lacks an action; the same as for file operations).

Where the sources are silent the emulator takes the stricter reading: it requires both halves (the
management action *and* the backup-semantics data action) rather than either, reads the management
action at the account scope only (the config refuses management roles scoped to a share), and keeps
the ``x-ms-file-request-intent: backup`` header required as for every bearer request.
"""

from __future__ import annotations

from typing import Final

from keyless.protocol import ACTION_READ_BACKUP, ACTION_WRITE_BACKUP, FILE_SERVICES

FILE_SERVICE_READ: Final = f"{FILE_SERVICES}/read"
FILE_SERVICE_WRITE: Final = f"{FILE_SERVICES}/write"
SHARES_READ: Final = f"{FILE_SERVICES}/shares/read"
SHARES_WRITE: Final = f"{FILE_SERVICES}/shares/write"
SHARES_DELETE: Final = f"{FILE_SERVICES}/shares/delete"
SHARES_LEASE: Final = f"{FILE_SERVICES}/shares/lease/action"

#: Every FileService / FileShare management action (what ``*`` and ``storageAccounts/*`` grant here).
ALL: Final = frozenset({FILE_SERVICE_READ, FILE_SERVICE_WRITE, SHARES_READ, SHARES_WRITE, SHARES_DELETE,
                        SHARES_LEASE})
#: What ``*/read`` grants of them.
READS: Final = frozenset({FILE_SERVICE_READ, SHARES_READ})

# What each management operation needs: the management action and the backup-semantics data action.
SERVICE_READ: Final = frozenset({FILE_SERVICE_READ, ACTION_READ_BACKUP})
SERVICE_WRITE: Final = frozenset({FILE_SERVICE_WRITE, ACTION_WRITE_BACKUP})
SHARE_LIST: Final = frozenset({SHARES_READ, ACTION_READ_BACKUP})
SHARE_READ: Final = frozenset({SHARES_READ, ACTION_READ_BACKUP})
SHARE_WRITE: Final = frozenset({SHARES_WRITE, ACTION_WRITE_BACKUP})
SHARE_DELETE: Final = frozenset({SHARES_DELETE, ACTION_WRITE_BACKUP})
SHARE_LEASE: Final = frozenset({SHARES_LEASE, ACTION_WRITE_BACKUP})
