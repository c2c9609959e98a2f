"""Protocol constants shared by the client side and the emulator.

This is the only module both sides import: the emulator never imports client code and the client never
imports the emulator, so each can check the other. Everything here is a fact of the Azure protocol, not
an implementation choice.
"""

from __future__ import annotations

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


def smb_server_principal(account: str) -> str:
    """The service principal name a ticket for ``account`` is issued to (without the realm)."""
    return f"cifs/{account}.{FILE_ENDPOINT_SUFFIX}"


# --- RBAC ----------------------------------------------------------------------------------------------
_FS = "Microsoft.Storage/storageAccounts/fileServices"
ACTION_READ: Final = f"{_FS}/fileshares/files/read"
ACTION_WRITE: Final = f"{_FS}/fileshares/files/write"
ACTION_DELETE: Final = f"{_FS}/fileshares/files/delete"
ACTION_MODIFY_PERMISSIONS: Final = f"{_FS}/fileshares/files/modifypermissions/action"
ACTION_READ_BACKUP: Final = f"{_FS}/readFileBackupSemantics/action"
ACTION_WRITE_BACKUP: Final = f"{_FS}/writeFileBackupSemantics/action"
ACTION_TAKE_OWNERSHIP: Final = f"{_FS}/takeOwnership/action"
ACTION_RUN_AS_ADMIN: Final = f"{_FS}/runAsBuiltInFileAdministrator/action"

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
