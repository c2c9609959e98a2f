"""azure-core's token types when azure-core is installed, identical stand-ins when it is not.

keyless does not require azure-core: the stand-ins have the same shape (``AccessToken`` is a
``(token, expires_on)`` named tuple), so code written against azure-core's protocol works either way,
and with azure-core installed ``isinstance(t, azure.core.credentials.AccessToken)`` holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, AccessTokenInfo
else:
    try:
        from azure.core.credentials import AccessToken, AccessTokenInfo
    except ImportError:  # pragma: no cover - exercised only without azure-core

        class AccessToken(NamedTuple):
            token: str
            expires_on: int

        class AccessTokenInfo:
            def __init__(self, token: str, expires_on: int, *, token_type: str = "Bearer",  # noqa: S107 - a type name
                         refresh_on: int | None = None) -> None:
                self.token = token
                self.expires_on = expires_on
                self.token_type = token_type
                self.refresh_on = refresh_on


class SafeAccessToken(AccessToken):
    """azure-core's ``AccessToken`` whose ``repr`` never shows the token (a named tuple's would)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"AccessToken(token=<redacted>, expires_on={self.expires_on})"

    __str__ = __repr__


class SafeAccessTokenInfo(AccessTokenInfo):
    """azure-core's ``AccessTokenInfo`` whose ``repr`` never shows the token."""

    def __repr__(self) -> str:
        return (f"AccessTokenInfo(token=<redacted>, expires_on={self.expires_on}, "
                f"token_type={self.token_type!r}, refresh_on={self.refresh_on})")

    __str__ = __repr__


def options_get(options: Any, name: str) -> Any:
    """Read a key from azure-core's ``TokenRequestOptions`` (a TypedDict, maybe None)."""
    if not options:
        return None
    return options.get(name)


__all__ = ["AccessToken", "AccessTokenInfo", "SafeAccessToken", "SafeAccessTokenInfo"]
