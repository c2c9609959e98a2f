"""Protocol constants shared by the client side and the emulator.

This is the only module both sides import: the emulator never imports client code and the client never
imports the emulator, so each can check the other. Everything here is a fact of the Azure protocol, not
an implementation choice.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cmp_to_key
from typing import Final

# --- Audiences -----------------------------------------------------------------------------------------
STORAGE_RESOURCE: Final = "https://storage.azure.com/"  # REST: the form azure-identity asks for
STORAGE_RESOURCE_SMB: Final = "https://storage.azure.com"  # SMB ticket exchange: no trailing slash
STORAGE_AUDIENCES: Final = frozenset({STORAGE_RESOURCE, STORAGE_RESOURCE_SMB})

# --- Headers -------------------------------------------------------------------------------------------
H_VERSION: Final = "x-ms-version"
H_DATE: Final = "x-ms-date"
H_INTENT: Final = "x-ms-file-request-intent"
H_CLIENT_REQUEST_ID: Final = "x-ms-client-request-id"
H_REQUEST_ID: Final = "x-ms-request-id"
H_ERROR_CODE: Final = "x-ms-error-code"
INTENT_BACKUP: Final = "backup"

# The oldest x-ms-version that accepts a bearer token, and the one keyless sends.
MIN_OAUTH_VERSION: Final = "2022-11-02"
CURRENT_VERSION: Final = "2025-05-05"
SMB_TICKET_VERSION: Final = "2024-05-04"

MAX_RANGE_UPDATE_BYTES: Final = 4 * 1024 * 1024
MAX_LIST_RESULTS: Final = 5000

# --- Identity endpoints --------------------------------------------------------------------------------
IMDS_HOST: Final = "http://169.254.169.254"
IMDS_TOKEN_PATH: Final = "/metadata/identity/oauth2/token"  # noqa: S105 - a URL path, not a secret
IMDS_API_VERSION: Final = "2018-02-01"
APP_SERVICE_API_VERSION: Final = "2019-08-01"
ARC_API_VERSION: Final = "2020-06-01"
ARC_KEY_MAX_BYTES: Final = 4096
CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# --- SMB ticket exchange -------------------------------------------------------------------------------
SMB_REALM: Final = "FILES.AZURE.STORAGE.MICROSOFT.COM"
SMB_CLIENT_PRINCIPAL: Final = "AzureFileClient"
FILE_ENDPOINT_SUFFIX: Final = "file.core.windows.net"
#: Azure Files endpoint suffixes of the public and sovereign clouds, by cloud name.
CLOUD_FILE_ENDPOINT_SUFFIXES: Final[dict[str, str]] = {
    "public": FILE_ENDPOINT_SUFFIX,
    "china": "file.core.chinacloudapi.cn",
    "usgov": "file.core.usgovcloudapi.net",
}
FILE_ENDPOINT_SUFFIXES: Final = tuple(CLOUD_FILE_ENDPOINT_SUFFIXES.values())


def smb_server_principal(account: str) -> str:
    """The service principal name a ticket for ``account`` is issued to (without the realm)."""
    return f"cifs/{account}.{FILE_ENDPOINT_SUFFIX}"


# --- RBAC ----------------------------------------------------------------------------------------------
#: The resource provider path every File service action (data and management) starts with.
FILE_SERVICES: Final = "Microsoft.Storage/storageAccounts/fileServices"
ACTION_READ: Final = f"{FILE_SERVICES}/fileshares/files/read"
ACTION_WRITE: Final = f"{FILE_SERVICES}/fileshares/files/write"
ACTION_DELETE: Final = f"{FILE_SERVICES}/fileshares/files/delete"
ACTION_MODIFY_PERMISSIONS: Final = f"{FILE_SERVICES}/fileshares/files/modifypermissions/action"
ACTION_READ_BACKUP: Final = f"{FILE_SERVICES}/readFileBackupSemantics/action"
ACTION_WRITE_BACKUP: Final = f"{FILE_SERVICES}/writeFileBackupSemantics/action"
ACTION_TAKE_OWNERSHIP: Final = f"{FILE_SERVICES}/takeOwnership/action"
ACTION_RUN_AS_ADMIN: Final = f"{FILE_SERVICES}/runAsBuiltInFileAdministrator/action"

ROLE_DATA_ACTIONS: Final[dict[str, frozenset[str]]] = {
    "Storage File Data Privileged Reader": frozenset({ACTION_READ, ACTION_READ_BACKUP}),
    "Storage File Data Privileged Contributor": frozenset(
        {
            ACTION_READ,
            ACTION_WRITE,
            ACTION_DELETE,
            ACTION_MODIFY_PERMISSIONS,
            ACTION_READ_BACKUP,
            ACTION_WRITE_BACKUP,
        }
    ),
    "Storage File Data SMB Share Reader": frozenset({ACTION_READ}),
    "Storage File Data SMB Share Contributor": frozenset({ACTION_READ, ACTION_WRITE, ACTION_DELETE}),
    "Storage File Data SMB Share Elevated Contributor": frozenset(
        {ACTION_READ, ACTION_WRITE, ACTION_DELETE, ACTION_MODIFY_PERMISSIONS}
    ),
    "Storage File Data SMB MI Admin": frozenset(
        {
            ACTION_READ,
            ACTION_WRITE,
            ACTION_DELETE,
            ACTION_MODIFY_PERMISSIONS,
            ACTION_READ_BACKUP,
            ACTION_WRITE_BACKUP,
            ACTION_TAKE_OWNERSHIP,
            ACTION_RUN_AS_ADMIN,
        }
    ),
}

# What an SMB Kerberos ticket for a managed identity requires (the MI Admin role's distinctive actions).
SMB_MI_DATA_ACTIONS: Final = frozenset({ACTION_TAKE_OWNERSHIP, ACTION_RUN_AS_ADMIN})

# --- Error codes ---------------------------------------------------------------------------------------
E_MISSING_HEADER: Final = "MissingRequiredHeader"
E_NO_AUTH: Final = "NoAuthenticationInformation"
E_INVALID_AUTH: Final = "InvalidAuthenticationInfo"
E_AUTH_FAILED: Final = "AuthenticationFailed"
E_PERMISSION_MISMATCH: Final = "AuthorizationPermissionMismatch"
E_KEY_NOT_PERMITTED: Final = "KeyBasedAuthenticationNotPermitted"
E_RESOURCE_NOT_FOUND: Final = "ResourceNotFound"
E_PARENT_NOT_FOUND: Final = "ParentNotFound"
E_SHARE_NOT_FOUND: Final = "ShareNotFound"
E_RESOURCE_EXISTS: Final = "ResourceAlreadyExists"
E_SHARE_EXISTS: Final = "ShareAlreadyExists"
E_DIRECTORY_NOT_EMPTY: Final = "DirectoryNotEmpty"
E_INVALID_RANGE: Final = "InvalidRange"
E_SERVER_BUSY: Final = "ServerBusy"
E_OPERATION_TIMED_OUT: Final = "OperationTimedOut"


# --- Shared Key canonicalization (File service, versions 2009-09-19 and later) -----------------------------
# Both the client (to sign) and the emulator (to verify) need the service's exact header order; the official
# SDK checks both sides independently in the tests.

# The standard headers signed in this order, before Range (which each side treats on its own: the Python SDK
# signs an empty Range and sends x-ms-range instead).
SHARED_KEY_STANDARD_HEADERS: Final = (
    "content-encoding", "content-language", "content-length", "content-md5", "content-type", "date",
    "if-modified-since", "if-match", "if-none-match", "if-unmodified-since",
)

# The service sorts canonicalized headers with a culture-aware collation, not ordinally; this is the
# two-level weight table the storage SDKs use to emulate it ('-' is ignored at the first level).
# fmt: off
_LV0 = [
    0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0,
    0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0,
    0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x71c, 0x0, 0x71f, 0x721, 0x723, 0x725,
    0x0, 0x0, 0x0, 0x72d, 0x803, 0x0, 0x0, 0x733, 0x0, 0xd03, 0xd1a, 0xd1c, 0xd1e,
    0xd20, 0xd22, 0xd24, 0xd26, 0xd28, 0xd2a, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0,
    0xe02, 0xe09, 0xe0a, 0xe1a, 0xe21, 0xe23, 0xe25, 0xe2c, 0xe32, 0xe35, 0xe36, 0xe48, 0xe51,
    0xe70, 0xe7c, 0xe7e, 0xe89, 0xe8a, 0xe91, 0xe99, 0xe9f, 0xea2, 0xea4, 0xea6, 0xea7, 0xea9,
    0x0, 0x0, 0x0, 0x743, 0x744, 0x748, 0xe02, 0xe09, 0xe0a, 0xe1a, 0xe21, 0xe23, 0xe25,
    0xe2c, 0xe32, 0xe35, 0xe36, 0xe48, 0xe51, 0xe70, 0xe7c, 0xe7e, 0xe89, 0xe8a, 0xe91, 0xe99,
    0xe9f, 0xea2, 0xea4, 0xea6, 0xea7, 0xea9, 0x0, 0x74c, 0x0, 0x750, 0x0,
]
_LV4 = [0x0] * 128
_LV4[39] = 0x8012  # '\''
_LV4[45] = 0x8212  # '-'
# fmt: on


def _collation_weight(table: list[int], text: str, index: int) -> int:
    if index >= len(text):
        return 0x1
    code = ord(text[index])
    return table[code] if code < len(table) else 0x0


def _collate(lhs: str, rhs: str) -> int:
    tables = (_LV0, _LV4)
    level, i, j = 0, 0, 0
    while level < len(tables):
        if level == len(tables) - 1 and i != j:
            return -1 if i > j else 1
        w1, w2 = _collation_weight(tables[level], lhs, i), _collation_weight(tables[level], rhs, j)
        if w1 == 0x1 and w2 == 0x1:
            i = j = 0
            level += 1
        elif w1 == w2:
            i += 1
            j += 1
        elif w1 == 0:
            i += 1
        elif w2 == 0:
            j += 1
        else:
            return -1 if w1 < w2 else 1
    return 0


def sort_shared_key_headers(names: Iterable[str]) -> list[str]:
    """Lower-case ``x-ms-*`` header names in the order the service canonicalizes them."""
    return sorted(names, key=cmp_to_key(_collate))

# The environment variable Azure's own tools (az, AzCopy, the SDK samples) read an account key from.
ENV_ACCOUNT_KEY = "AZURE_STORAGE_KEY"
