"""Addresses of shares, directories and files.

Three spellings name the same thing:

* ``https://<account>.file.core.windows.net/<share>/<path>`` (and the sovereign-cloud suffixes), a real URL:
  each segment is percent-decoded, so ``my%20file`` names ``my file``;
* ``https://127.0.0.1:PORT/<account>/<share>/<path>`` (IP-style, the emulator): the account is the first
  path segment;
* ``azfiles://<account>/<share>/<path>``, a shorthand for people: the path is taken *literally* (no
  percent-decoding, and ``#`` and ``?`` are part of the name), so what you type is the name you get.

A :class:`FileUrl` keeps the decoded names and re-encodes every segment on the way out, which is why names
with spaces, ``%``, ``#``, ``?``, unicode or trailing dots round-trip exactly.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote, urlsplit

from keyless.protocol import CLOUD_FILE_ENDPOINT_SUFFIXES, FILE_ENDPOINT_SUFFIX, FILE_ENDPOINT_SUFFIXES

#: Endpoint suffixes of the public and sovereign clouds. A bearer token is only ever sent under one of these
#: (or to an explicitly configured emulator).
PUBLIC_SUFFIX = FILE_ENDPOINT_SUFFIX
CLOUD_SUFFIXES: dict[str, str] = dict(CLOUD_FILE_ENDPOINT_SUFFIXES)
DEFAULT_SUFFIXES: tuple[str, ...] = FILE_ENDPOINT_SUFFIXES

AZFILES_SCHEME = "azfiles"


class InvalidFileUrl(ValueError):
    """The text is not an Azure Files address keyless understands."""


@functools.lru_cache(maxsize=4096)  # directory names repeat in every request under them
def encode_segment(name: str) -> str:
    """Percent-encode one path segment: everything but RFC 3986 unreserved characters.

    ``safe=""`` keeps ``/`` from passing through, so a name can never smuggle in an extra segment.
    """
    return quote(name, safe="~", encoding="utf-8", errors="strict")


def split_path(path: str) -> list[str]:
    """Split a share-relative path into names, dropping empty segments; ``.`` and ``..`` are refused.

    The service has no ``.`` or ``..`` entries; accepting them would let ``a/../b`` mean two things.
    """
    parts = [p for p in path.split("/") if p != ""]
    for part in parts:
        if part in (".", ".."):
            raise InvalidFileUrl(f"path segment {part!r} is not allowed in a remote path: {path!r}")
    return parts


def join_path(*parts: str) -> str:
    """Join share-relative paths with ``/``, normalising empty segments."""
    names: list[str] = []
    for part in parts:
        names.extend(split_path(part))
    return "/".join(names)


@dataclass(frozen=True, slots=True)
class FileUrl:
    """A share, or a directory or file inside it. ``path`` is decoded, ``/``-separated, without slashes
    at either end (``""`` is the share root)."""

    host: str  # host[:port] as it goes on the wire
    account: str
    share: str
    path: str = ""
    ip_style: bool = False
    scheme: str = "https"

    # --- derived addresses ---------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """The account URL (``https://acct.file.core.windows.net`` or ``https://127.0.0.1:P/acct``)."""
        base = f"{self.scheme}://{self.host}"
        return f"{base}/{encode_segment(self.account)}" if self.ip_style else base

    @property
    def share_url(self) -> str:
        return f"{self.endpoint}/{encode_segment(self.share)}"

    @property
    def url(self) -> str:
        """The encoded URL of this resource, without a query."""
        if not self.path:
            return self.share_url
        encoded = "/".join(encode_segment(p) for p in self.path.split("/"))
        return f"{self.share_url}/{encoded}"

    @property
    def hostname(self) -> str:
        """The host without a port (IPv6 brackets removed)."""
        return urlsplit(f"//{self.host}").hostname or self.host

    @property
    def name(self) -> str:
        """The last path segment, or the share name at the root."""
        return self.path.rsplit("/", 1)[-1] if self.path else self.share

    @property
    def parent(self) -> FileUrl:
        return replace(self, path=self.path.rsplit("/", 1)[0] if "/" in self.path else "")

    def child(self, *names: str) -> FileUrl:
        """A path below this one; each argument may itself contain ``/``."""
        return replace(self, path=join_path(self.path, *names))

    def with_path(self, path: str) -> FileUrl:
        return replace(self, path=join_path(path))

    def shorthand(self) -> str:
        """``azfiles://account/share/path``: for display; parses back to the same names."""
        tail = f"/{self.path}" if self.path else ""
        return f"{AZFILES_SCHEME}://{self.account}/{self.share}{tail}"

    def __str__(self) -> str:
        return self.url


def _is_ip_or_local(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True


def _account_from_host(hostname: str, suffixes: tuple[str, ...]) -> str | None:
    """``acct.file.core.windows.net`` (or ``acct.privatelink.file.core.windows.net``) -> ``acct``."""
    host = hostname.lower().rstrip(".")
    for suffix in suffixes:
        if host.endswith("." + suffix):
            return host[: -len(suffix) - 1].split(".", 1)[0]
    return None


def parse(
    text: str,
    *,
    emulator_url: str | None = None,
    suffix: str = PUBLIC_SUFFIX,
    suffixes: tuple[str, ...] = DEFAULT_SUFFIXES,
) -> FileUrl:
    """Parse any of the three spellings. ``emulator_url`` (``https://127.0.0.1:PORT``) is where
    ``azfiles://`` addresses point when an emulator is configured; ``suffix`` otherwise."""
    if text.startswith(f"{AZFILES_SCHEME}://"):
        return _parse_shorthand(text[len(AZFILES_SCHEME) + 3 :], emulator_url=emulator_url, suffix=suffix)
    split = urlsplit(text)
    if split.scheme not in ("https", "http") or not split.netloc:
        raise InvalidFileUrl(
            f"not an Azure Files address: {text!r} "
            "(expected https://<account>.file.core.windows.net/<share>/<path> or azfiles://<account>/<share>/<path>)"
        )
    if split.username or split.password:
        raise InvalidFileUrl("credentials in the URL are not supported; use an identity")
    hostname = split.hostname or ""
    segments = [unquote(s, errors="strict") for s in split.path.split("/") if s]
    emulator_netloc = urlsplit(emulator_url).netloc.lower() if emulator_url else None
    account = _account_from_host(hostname, suffixes)
    ip_style = account is None and (_is_ip_or_local(hostname) or split.netloc.lower() == emulator_netloc)
    if ip_style:
        if not segments:
            raise InvalidFileUrl(f"IP-style URL without an account: {text!r}")
        account = segments.pop(0)
    if account is None:
        # Any other host: accept it only as <account>.<something> so custom domains still parse; the
        # transport decides separately whether a credential may be sent there.
        account = hostname.split(".", 1)[0]
    if not segments:
        raise InvalidFileUrl(f"no share in {text!r}")
    share = segments[0]
    return FileUrl(
        host=split.netloc,
        account=account,
        share=share,
        path=join_path(*segments[1:]) if len(segments) > 1 else "",
        ip_style=ip_style,
        scheme=split.scheme,
    )


def _parse_shorthand(rest: str, *, emulator_url: str | None, suffix: str) -> FileUrl:
    account, _, tail = rest.partition("/")
    share, _, path = tail.partition("/")
    if not account or not share:
        raise InvalidFileUrl(f"expected azfiles://<account>/<share>/<path>, got azfiles://{rest}")
    return share_url(account, share, emulator_url=emulator_url, suffix=suffix, path=path)


def share_url(
    account: str, share: str, *, emulator_url: str | None = None, suffix: str = PUBLIC_SUFFIX, path: str = ""
) -> FileUrl:
    """Build the address of ``share`` (or ``path`` in it) in ``account``."""
    if emulator_url:
        split = urlsplit(emulator_url)
        return FileUrl(
            host=split.netloc,
            account=account,
            share=share,
            path=join_path(path),
            ip_style=True,
            scheme=split.scheme or "https",
        )
    return FileUrl(host=f"{account}.{suffix}", account=account, share=share, path=join_path(path))


def is_remote(text: str) -> bool:
    """Whether a CLI argument names a remote path rather than a local one."""
    return text.startswith((f"{AZFILES_SCHEME}://", "https://", "http://"))
