"""The routing table: every Files operation by method and ``comp`` (per resource kind, chosen by
``restype`` and the URL's shape), with its name for the audit log, the data actions it needs, its
handler, and where its store work runs (:class:`Worker`).
"""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from keyless.emulator import management_actions as mgmt
from keyless.emulator.files import (
    copy_rename,
    directory,
    file,
    lease,
    service,
    share,
    user_delegation,
)
from keyless.emulator.files.model import DELETE, READ, WRITE, Call, Op, Worker
from keyless.emulator.smb_ticket import OPERATION as KERBEROS_TICKET
from keyless.emulator.smb_ticket import handle_kerbticket

Table = dict[tuple[str, str | None], Op]

BYTES = Worker.ABOVE_INLINE_BYTES


async def _kerberos_ticket(call: Call) -> web.StreamResponse:
    return await handle_kerbticket(call.ctx, call.request, call.target.account)


# Matched on the service URL by (method, restype, comp) before the account check and authentication.
SELF_AUTHENTICATING_OPS: dict[tuple[str, str | None, str | None], Op] = {
    ("POST", "service", "kerbticket"): Op(KERBEROS_TICKET, frozenset(), _kerberos_ticket,
                                          authenticates_itself=True),
    # Bearer only and without the intent header, as Azure accepts it from the official SDK.
    ("POST", "service", "userdelegationkey"): Op(user_delegation.OPERATION, frozenset(),
                                                 user_delegation.get_user_delegation_key,
                                                 authenticates_itself=True),
}

# The FileService and FileShare management operations need a management action and a backup-semantics
# data action each (the table and its sources are in keyless.emulator.management_actions).
SERVICE_OPS: Table = {
    ("GET", "list"): Op("ListShares", mgmt.SHARE_LIST, service.list_shares),
    ("GET", "properties"): Op("GetFileServiceProperties", mgmt.SERVICE_READ, service.get_service_properties),
    ("PUT", "properties"): Op("SetFileServiceProperties", mgmt.SERVICE_WRITE, service.set_service_properties),
}

SHARE_OPS: Table = {
    ("PUT", None): Op("CreateShare", mgmt.SHARE_WRITE, share.create_share),
    ("GET", None): Op("GetShareProperties", mgmt.SHARE_READ, share.get_share_properties, on_snapshot=True),
    ("HEAD", None): Op("GetShareProperties", mgmt.SHARE_READ, share.get_share_properties, on_snapshot=True),
    ("DELETE", None): Op("DeleteShare", mgmt.SHARE_DELETE, share.delete_share, Worker.ALWAYS,
                         on_snapshot=True),
    ("PUT", "snapshot"): Op("SnapshotShare", mgmt.SHARE_WRITE, share.create_snapshot, Worker.ALWAYS),
    ("PUT", "undelete"): Op("RestoreShare", mgmt.SHARE_WRITE, share.restore_share),
    ("PUT", "lease"): Op("LeaseShare", mgmt.SHARE_LEASE, lease.lease_share, on_snapshot=True),
    ("PUT", "metadata"): Op("SetShareMetadata", mgmt.SHARE_WRITE, share.set_share_metadata),
    ("GET", "metadata"): Op("GetShareMetadata", mgmt.SHARE_READ, share.get_share_properties,
                            on_snapshot=True),
    ("HEAD", "metadata"): Op("GetShareMetadata", mgmt.SHARE_READ, share.get_share_properties,
                             on_snapshot=True),
    ("PUT", "properties"): Op("SetShareProperties", mgmt.SHARE_WRITE, share.set_share_properties),
    ("GET", "stats"): Op("GetShareStats", mgmt.SHARE_READ, share.get_share_stats),
    ("GET", "acl"): Op("GetShareAcl", mgmt.SHARE_READ, share.get_share_acl),
    ("HEAD", "acl"): Op("GetShareAcl", mgmt.SHARE_READ, share.get_share_acl),
    ("PUT", "acl"): Op("SetShareAcl", mgmt.SHARE_WRITE, share.set_share_acl),
    ("PUT", "filepermission"): Op("CreatePermission", WRITE, share.create_permission),
    ("GET", "filepermission"): Op("GetPermission", READ, share.get_permission),
}

DIRECTORY_OPS: Table = {
    ("PUT", None): Op("CreateDirectory", WRITE, directory.create_directory),
    ("GET", None): Op("GetDirectoryProperties", READ, directory.get_directory_properties, on_snapshot=True),
    ("HEAD", None): Op("GetDirectoryProperties", READ, directory.get_directory_properties, on_snapshot=True),
    ("DELETE", None): Op("DeleteDirectory", DELETE, directory.delete_directory),
    ("PUT", "metadata"): Op("SetDirectoryMetadata", WRITE, directory.set_directory_metadata),
    ("GET", "metadata"): Op("GetDirectoryMetadata", READ, directory.get_directory_properties,
                            on_snapshot=True),
    ("HEAD", "metadata"): Op("GetDirectoryMetadata", READ, directory.get_directory_properties,
                             on_snapshot=True),
    ("PUT", "properties"): Op("SetDirectoryProperties", WRITE, directory.set_directory_properties),
    ("GET", "list"): Op("ListFilesAndDirectories", READ, directory.list_files_and_directories,
                        on_snapshot=True),
    ("GET", "listhandles"): Op("ListHandles", READ, directory.list_handles, on_snapshot=True),
    ("PUT", "forceclosehandles"): Op("ForceCloseHandles", WRITE, directory.force_close_handles),
    ("PUT", "rename"): Op("RenameDirectory", WRITE | DELETE, copy_rename.rename_directory),
}

FILE_OPS: Table = {
    ("PUT", None): Op("CreateFile", WRITE, file.create_file, BYTES),
    ("GET", None): Op("GetFile", READ, file.get_file, BYTES, on_snapshot=True),
    ("HEAD", None): Op("GetFileProperties", READ, file.get_file_properties, on_snapshot=True),
    ("DELETE", None): Op("DeleteFile", DELETE, file.delete_file),
    ("PUT", "range"): Op("PutRange", WRITE, file.put_range, BYTES),
    ("GET", "rangelist"): Op("ListFileRangeList", READ, file.list_ranges, Worker.ALWAYS, on_snapshot=True),
    ("PUT", "properties"): Op("SetFileProperties", WRITE, file.set_file_properties),
    ("PUT", "metadata"): Op("SetFileMetadata", WRITE, file.set_file_metadata),
    ("PUT", "rename"): Op("RenameFile", WRITE | DELETE, copy_rename.rename_file),
    ("PUT", "lease"): Op("LeaseFile", WRITE, lease.lease_file),
    ("PUT", "copy"): Op("AbortCopyFile", WRITE, copy_rename.abort_copy),
    ("GET", "listhandles"): Op("ListHandles", READ, directory.list_handles, on_snapshot=True),
    ("PUT", "forceclosehandles"): Op("ForceCloseHandles", WRITE, directory.force_close_handles),
}


def _managing(table: Table, *, except_comps: frozenset[str | None] = frozenset()) -> Table:
    """Mark a table's rows as managing the FileService / FileShare resource (see ``Op.manages``)."""
    return {key: op if key[1] in except_comps else replace(op, manages=True) for key, op in table.items()}


# Every service-level and share-level operation manages a FileService or FileShare resource, except the
# share's permissions (Create / Get Permission), which serve files' security descriptors.
SERVICE_OPS = _managing(SERVICE_OPS)
SHARE_OPS = _managing(SHARE_OPS, except_comps=frozenset({"filepermission"}))

# Put with x-ms-copy-source and no comp: Copy File rather than Create File.
COPY_OP = Op("CopyFile", WRITE, copy_rename.copy_file, Worker.ALWAYS)
# Put with x-ms-copy-source and comp=range: Put Range From URL rather than Put Range.
RANGE_FROM_URL_OP = Op("PutRangeFromURL", WRITE, copy_rename.put_range_from_url, BYTES)
