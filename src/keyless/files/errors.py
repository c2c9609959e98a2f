"""Typed errors for Azure Files replies, each with a message that says what to do.

400 ``MissingRequiredHeader`` explains the intent header; 401 says whether a fresh token was tried too; 403
names the identity, the refused data action, the roles that grant it and the scope to assign them at, and
the RBAC propagation delay. Messages carry the path, never the query string (which could hold a SAS) and
never a token. Messages name concepts, not command-line flags: the CLI adds its own flags to the remedy.

``NotFound``, ``AlreadyExists`` and ``PermissionDenied`` are also the built-in ``FileNotFoundError``,
``FileExistsError`` and ``PermissionError``, so code written for local files handles them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keyless import protocol as p
from keyless.claims import decode_claims


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What a message may say about the request: method, the address without a query, the operation."""

    method: str
    url: str  # no query string
    account: str = ""
    share: str = ""
    operation: str = ""  # e.g. "create directory", for humans
    action: str = ""  # the data action the request needs (without backup semantics)
    backup_intent: bool = False  # bearer requests with x-ms-file-request-intent: backup
    identity: str = ""  # e.g. "oid=… appid=…" or "SharedKey devaccount"


class FilesError(Exception):
    """Base of every keyless.files failure. ``status`` is 0 when no HTTP reply was received."""

    status: int = 0
    code: str = ""
    remedy: str = ""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str = "",
        request_id: str = "",
        remedy: str = "",
        request: RequestInfo | None = None,
    ) -> None:
        self.message = message
        self.status = status or type(self).status
        self.code = code or type(self).code
        self.request_id = request_id
        self.remedy = remedy or type(self).remedy
        self.request = request
        super().__init__(self._render())

    def _render(self) -> str:
        head = self.message
        if self.status:
            head += f" (HTTP {self.status}{' ' + self.code if self.code else ''}"
            head += f", request id {self.request_id})" if self.request_id else ")"
        if self.remedy:
            head += f"\nWhat to do: {self.remedy}"
        return head

    def __reduce__(self) -> tuple[Any, ...]:  # keep exceptions picklable across worker processes
        return (
            _rebuild,
            (type(self), self.message, self.status, self.code, self.request_id, self.remedy, self.request),
        )


def _rebuild(
    cls: type[FilesError],
    message: str,
    status: int,
    code: str,
    request_id: str,
    remedy: str,
    request: RequestInfo | None,
) -> FilesError:
    return cls(message, status=status, code=code, request_id=request_id, remedy=remedy, request=request)


class MissingIntentHeader(FilesError):
    status = 400
    code = p.E_MISSING_HEADER
    remedy = (
        f"OAuth requests to Azure Files must carry '{p.H_INTENT}: {p.INTENT_BACKUP}'. keyless sends it "
        "on every bearer request; if you see this, a proxy stripped the header or another client "
        "sent the request without it."
    )


class BadRequest(FilesError):
    status = 400


_TOKEN_CHECKS = (
    f"Check that the identity's token is for '{p.STORAGE_RESOURCE}', that this machine's clock is right, "
    "and that the storage account trusts your Microsoft Entra tenant."
)


class AuthenticationFailed(FilesError):
    status = 401
    remedy = "The token was refused even after fetching a fresh one. " + _TOKEN_CHECKS
    #: When the credential had nothing but the refused token to offer, no fresh one was tried.
    remedy_not_refreshed = (
        "The token was refused, and the credential gave the same token again, so no fresh one could be "
        "tried. " + _TOKEN_CHECKS
    )


class PermissionDenied(FilesError, PermissionError):
    """403: authenticated, but the identity's roles do not grant the data action. Never retried."""

    status = 403
    code = p.E_PERMISSION_MISMATCH


class KeyAuthNotPermitted(PermissionDenied):
    code = p.E_KEY_NOT_PERMITTED
    remedy = (
        "The storage account disallows Shared Key access (AllowSharedKeyAccess=false). Use a managed "
        "identity instead of the account key."
    )


class NotFound(FilesError, FileNotFoundError):
    status = 404


class ShareNotFound(NotFound):
    code = p.E_SHARE_NOT_FOUND
    remedy = "Check the share name; shares are created by the account owner (portal, az CLI or ARM)."


class ParentNotFound(NotFound):
    code = p.E_PARENT_NOT_FOUND
    remedy = "Create the parent directory first (or create missing parents with the request)."


class Conflict(FilesError):
    status = 409


class AlreadyExists(Conflict, FileExistsError):
    code = p.E_RESOURCE_EXISTS


class DirectoryNotEmpty(Conflict):
    code = p.E_DIRECTORY_NOT_EMPTY
    remedy = "Delete the directory's contents first, or delete it recursively."


class NameCollision(Conflict):
    """Local names the service would take for one: it compares names case-insensitively."""

    status = 0
    remedy = (
        "Rename one of them: Azure Files keeps one file for names that differ only in letter case "
        "(case-insensitive, case-preserving)."
    )


class ChangedDuringUpload(Conflict):
    """Another writer replaced the remote file while this upload ran; this upload was not published."""

    status = 0
    remedy = "Another upload wrote the file meanwhile: check which version should stay, then upload again."


class InvalidRange(FilesError):
    status = 416
    code = p.E_INVALID_RANGE


class ServiceError(FilesError):
    """5xx, 408 and 429 replies that were still failing after the retries allowed."""

    remedy = "The service is busy or failing; try again later, or with fewer requests in parallel."


class ConnectionFailed(FilesError):
    """No HTTP reply: DNS, TCP, TLS or a dropped connection, after the retries allowed."""

    remedy = (
        "Check DNS (a private endpoint resolves to a private address), that port 443 is reachable, "
        "and TLS interception by a proxy."
    )


class UnsafeDestination(FilesError):
    """keyless refused to send a credential: not HTTPS, or a host outside the configured storage suffixes."""

    remedy = (
        "A credential only goes over HTTPS to <account>.file.core.windows.net (or a sovereign-cloud "
        "suffix, or the configured emulator). Check the address."
    )


class UnsafeName(FilesError):
    """A remote name that would escape the local target directory."""

    remedy = "The share holds a name that cannot be written safely here; rename it on the share."


class NotRegularFile(FilesError):
    """A local path that is neither a regular file nor a directory (FIFO, device, socket, /proc file)."""

    remedy = "Only regular files and directories are uploaded: copy the data into a regular file first."


class NotEnoughSpace(FilesError, OSError):
    """The local disk cannot hold a download (ENOSPC or a quota): found before any range is fetched."""

    remedy = "Free space there, or download to another directory or disk."


class IntegrityError(FilesError):
    """Content MD5 mismatch, or the file changed on the service during a transfer."""

    remedy = "Retry the transfer; if it repeats, the file is being modified by someone else."


class TokenError(FilesError):
    """The credential could not produce a token (IMDS unreachable, identity not found, ...)."""

    remedy = (
        "Check that a managed identity is assigned to this machine and that the token endpoint is "
        "reachable (keyless doctor); with several user-assigned identities, select one by its client id."
    )


# --- construction from a reply ------------------------------------------------------------------------

_BY_CODE: dict[str, type[FilesError]] = {
    p.E_MISSING_HEADER: MissingIntentHeader,
    p.E_KEY_NOT_PERMITTED: KeyAuthNotPermitted,
    p.E_SHARE_NOT_FOUND: ShareNotFound,
    p.E_PARENT_NOT_FOUND: ParentNotFound,
    p.E_RESOURCE_EXISTS: AlreadyExists,
    p.E_SHARE_EXISTS: AlreadyExists,
    p.E_DIRECTORY_NOT_EMPTY: DirectoryNotEmpty,
    p.E_INVALID_RANGE: InvalidRange,
}
_BY_STATUS: dict[int, type[FilesError]] = {
    400: BadRequest,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    416: InvalidRange,
}


def parse_error_body(body: bytes) -> tuple[str, str]:
    """``(code, message)`` from an ``<Error>`` XML body; empty strings when there is none."""
    if not body or b"<Error" not in body:
        return "", ""
    text = body.decode("utf-8", errors="replace")

    def tag(name: str) -> str:
        start = text.find(f"<{name}>")
        end = text.find(f"</{name}>", start)
        if start < 0 or end < 0:
            return ""
        return text[start + len(name) + 2 : end].strip()

    # The service appends "RequestId:…\nTime:…" to the message: the first line is what matters.
    return tag("Code"), tag("Message").split("\n", 1)[0].strip()


def token_identity(token: str) -> dict[str, str]:
    """``oid``, ``appid``, ``xms_mirid``, ``tid`` of a JWT, decoded *without* verification (messages only)."""
    claims = decode_claims(token)
    return {k: str(claims[k]) for k in ("oid", "appid", "xms_mirid", "tid", "aud") if k in claims}


def describe_identity(claims: dict[str, str]) -> str:
    """``object id (oid) X, client id (appid) Y`` for messages."""
    bits = []
    if "oid" in claims:
        bits.append(f"object id (oid) {claims['oid']}")
    if "appid" in claims:
        bits.append(f"client id (appid) {claims['appid']}")
    if "xms_mirid" in claims:
        bits.append(f"resource {claims['xms_mirid']}")
    return ", ".join(bits) or "the identity behind the token"


def roles_granting(actions: frozenset[str]) -> list[str]:
    """Built-in roles whose data actions include all of ``actions``, narrowest first."""
    roles = [name for name, granted in p.ROLE_DATA_ACTIONS.items() if actions <= granted]
    return sorted(roles, key=lambda name: len(p.ROLE_DATA_ACTIONS[name]))


def share_scope(account: str, share: str) -> str:
    return (
        f"/subscriptions/<subscription>/resourceGroups/<resource-group>/providers/Microsoft.Storage/"
        f"storageAccounts/{account}/fileServices/default/fileshares/{share}"
    )


def needed_actions(req: RequestInfo) -> frozenset[str]:
    if not req.action:
        return frozenset()
    actions = {req.action}
    if req.backup_intent:
        actions.add(p.ACTION_READ_BACKUP if req.action == p.ACTION_READ else p.ACTION_WRITE_BACKUP)
    return frozenset(actions)


def permission_remedy(req: RequestInfo) -> str:
    actions = needed_actions(req)
    roles = roles_granting(actions) if actions else []
    # REST with a bearer token needs the backup-semantics actions, which only the privileged roles grant.
    role_text = " or ".join(f"'{r}'" for r in roles) or "'Storage File Data Privileged Contributor'"
    scope = share_scope(req.account or "<account>", req.share or "<share>")
    return (
        f"Assign {role_text} to {req.identity or 'the identity'} at scope {scope} (or the account). "
        "A new role assignment takes 5-30 minutes to propagate: if you just assigned it, wait and retry "
        "(or let the client wait for access). SMB share roles are not enough for REST access."
    )


def _classify(status: int, headers: dict[str, str], body: bytes) -> tuple[type[FilesError], str, str]:
    """``(error class, error code, the service's message)`` for a failed reply."""
    code = headers.get(p.H_ERROR_CODE.lower(), "")
    body_code, body_message = parse_error_body(body)
    code = code or body_code
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None:
        cls = ServiceError if status >= 500 or status in (408, 429) else FilesError
    mentions_intent = p.H_INTENT in body.decode("utf-8", errors="replace").lower()
    if status == 400 and code == p.E_MISSING_HEADER and body and not mentions_intent:
        # Some other header is missing: keep the code but do not blame the intent header.
        cls = BadRequest
    if status == 403 and code in ("", p.E_PERMISSION_MISMATCH, "AuthorizationFailure"):
        cls = PermissionDenied
    elif status == 403 and code == p.E_AUTH_FAILED:
        cls = AuthenticationFailed
    return cls, code, body_message


def is_permission_refusal(status: int, headers: dict[str, str], body: bytes) -> bool:
    """A 403 about permissions (roles), the kind a role assignment still propagating explains."""
    return status == 403 and issubclass(_classify(status, headers, body)[0], PermissionDenied)


def from_response(
    status: int, headers: dict[str, str], body: bytes, req: RequestInfo, *, token_refreshed: bool = True
) -> FilesError:
    """The typed error for a failed reply. ``headers`` keys are lower-case. ``token_refreshed``: whether a
    401 was answered to a fresh token too (False: the credential had no other token to try)."""
    cls, code, body_message = _classify(status, headers, body)
    request_id = headers.get(p.H_REQUEST_ID.lower(), "")
    what = f"{req.operation or req.method} {req.url}"
    detail = f": {body_message}" if body_message else ""
    remedy = ""
    if cls is PermissionDenied:
        actions = needed_actions(req)
        names = ", ".join(sorted(actions)) or "the data action"
        message = (
            f"{what} was refused for {req.identity or 'the identity'}: missing permission {names}{detail}"
        )
        remedy = permission_remedy(req)
        return PermissionDenied(
            message, status=status, code=code, request_id=request_id, remedy=remedy, request=req
        )
    if status == 403 and cls is AuthenticationFailed:
        remedy = (
            f"The service refused the credential. With a bearer token, x-ms-version must be "
            f"{p.MIN_OAUTH_VERSION} or later; with Shared Key, check the account key."
        )
    if status == 401:
        message = f"{what}: the token for {req.identity or 'the identity'} was refused{detail}"
        remedy = AuthenticationFailed.remedy if token_refreshed else AuthenticationFailed.remedy_not_refreshed
        return AuthenticationFailed(
            message, status=status, code=code, request_id=request_id, remedy=remedy, request=req
        )
    return cls(
        f"{what} failed{detail}", status=status, code=code, request_id=request_id, remedy=remedy, request=req
    )
