"""Error replies exactly as Azure Files sends them: XML body, ``x-ms-error-code``, ``x-ms-request-id``."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.sax.saxutils import escape

# Default messages of the service, so handlers only have to name the code.
MESSAGES: dict[str, str] = {
    "MissingRequiredHeader": "An HTTP header that's mandatory for this request is not specified.",
    "NoAuthenticationInformation": "Server failed to authenticate the request. "
    "Please refer to the information in the www-authenticate header.",
    "InvalidAuthenticationInfo": "Server failed to authenticate the request. "
    "Please refer to the information in the www-authenticate header.",
    "AuthenticationFailed": "Server failed to authenticate the request. Make sure the value of "
    "Authorization header is formed correctly including the signature.",
    "AuthorizationPermissionMismatch": "This request is not authorized to perform this operation "
    "using this permission.",
    "KeyBasedAuthenticationNotPermitted":
        "Key based authentication is not permitted on this storage account.",
    "ResourceNotFound": "The specified resource does not exist.",
    "ParentNotFound": "The specified parent path does not exist.",
    "ShareNotFound": "The specified share does not exist.",
    "ResourceAlreadyExists": "The specified resource already exists.",
    "ShareAlreadyExists": "The specified share already exists.",
    "DirectoryNotEmpty": "The specified directory is not empty.",
    "InvalidRange": "The range specified is invalid for the current size of the resource.",
    "ServerBusy": "The server is currently unable to receive requests. Please retry your request.",
    "OperationTimedOut": "The operation could not be completed within the permitted time.",
    "InternalError": "The server encountered an internal error. Please retry the request.",
    "InvalidHeaderValue": "The value for one of the HTTP headers is not in the correct format.",
    "InvalidQueryParameterValue":
        "Value for one of the query parameters specified in the request URI is invalid.",
    "InvalidUri": "The requested URI does not represent any resource on the server.",
    "InvalidXmlDocument": "XML specified is not syntactically valid.",
    "InvalidMetadata": "The metadata specified is invalid. It has characters that are not permitted.",
    "MetadataTooLarge": "The size of the specified metadata exceeds the maximum size permitted.",
    "InvalidResourceName": "The specifed resource name contains invalid characters.",
    "UnsupportedHttpVerb": "The resource doesn't support the specified HTTP verb.",
    "InvalidInput": "One of the request inputs is not valid.",
    "RequestBodyTooLarge": "The request body is too large and exceeds the maximum permissible limit.",
    "Md5Mismatch": "The MD5 value specified in the request did not match with the MD5 value calculated "
    "by the server.",
    "ShareNotEmpty": "The specified share is not empty.",
    "ResourceTypeMismatch": "The specified resource type does not match the type of the resource.",
    "CannotDeleteFileOrDirectory": "The file or directory could not be deleted because it is in use "
    "by an SMB client.",
    "InvalidFileOrDirectoryPathName": "File or directory path is too long or contains invalid characters.",
    "AccountNotFound": "The specified account does not exist.",
    "UnsupportedHeader": "One of the headers specified in the request is not supported.",
    "FeatureNotSupportedOnStorageAccount": "This feature is not supported on this storage account.",
}


class StorageError(Exception):
    """Raised anywhere in request handling; the server turns it into the service's error reply.

    ``detail`` lands in the XML as ``AuthenticationErrorDetail`` / ``HeaderName`` style extra elements
    via ``extra``. Never put a token or key in any field: this text goes over the wire and into logs.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str | None = None,
        *,
        extra: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.message = message or MESSAGES.get(code, code)
        self.extra = extra or {}
        self.headers = headers or {}


class TokenRejected(Exception):
    """A bearer token failed validation; ``detail`` is the service's AuthenticationErrorDetail text."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def error_body(err: StorageError, request_id: str, now: datetime | None = None) -> bytes:
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    parts = [
        '<?xml version="1.0" encoding="utf-8"?><Error>',
        f"<Code>{escape(err.code)}</Code>",
        f"<Message>{escape(err.message)}\nRequestId:{request_id}\nTime:{when}</Message>",
    ]
    parts.extend(f"<{k}>{escape(v)}</{k}>" for k, v in err.extra.items())
    parts.append("</Error>")
    return "".join(parts).encode("utf-8")
