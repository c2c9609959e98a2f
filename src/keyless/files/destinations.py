"""Where a credential may be sent: HTTPS only, and only to a host under a configured storage suffix or to
the configured emulator. Every request is checked before the credential is even asked for a token."""

from __future__ import annotations

from urllib.parse import urlsplit

from keyless.files.errors import UnsafeDestination
from keyless.files.urls import DEFAULT_SUFFIXES


class Destinations:
    def __init__(self, suffixes: tuple[str, ...] = DEFAULT_SUFFIXES, emulator_url: str | None = None) -> None:
        self.suffixes = tuple(s.lower().strip(".") for s in suffixes)
        self.emulator_netloc = urlsplit(emulator_url).netloc.lower() if emulator_url else None
        # Origins (scheme://netloc exactly as written) already checked and allowed: the answer depends on
        # nothing else, and a client sends thousands of requests to one origin.
        self._allowed: set[str] = set()

    def check(self, url: str) -> None:
        """Raise :class:`UnsafeDestination` unless a credential may be sent to ``url``."""
        slash = url.find("/", url.find("//") + 2) if "//" in url else -1
        origin = url if slash < 0 else url[:slash]
        if origin in self._allowed:
            return
        self._check(url)
        self._allowed.add(origin)

    def _check(self, url: str) -> None:
        split = urlsplit(url)
        host = (split.hostname or "").lower().rstrip(".")
        if split.scheme != "https":
            raise UnsafeDestination(
                f"refusing to send a credential over {split.scheme or 'plain'}:// "
                f"to {split.netloc} (HTTPS only)"
            )
        if self.emulator_netloc is not None and split.netloc.lower() == self.emulator_netloc:
            return
        if any(host.endswith("." + suffix) for suffix in self.suffixes):
            return
        raise UnsafeDestination(
            f"refusing to send a credential to {split.netloc}: not under "
            f"{', '.join(self.suffixes)} and not the configured emulator"
        )
