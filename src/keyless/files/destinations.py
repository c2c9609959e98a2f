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

    def check(self, url: str) -> None:
        """Raise :class:`UnsafeDestination` unless a credential may be sent to ``url``."""
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
