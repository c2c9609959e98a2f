"""Azure Arc-enabled servers: the local Hybrid Instance Metadata Service.

Detected by ``IDENTITY_ENDPOINT`` + ``IMDS_ENDPOINT``.

The first request is answered 401 with ``WWW-Authenticate: Basic realm=<path of a key file>``; only a
process allowed to read that file (root or the ``himds`` group) can prove it is local, by resending with
``Authorization: Basic <file contents>``. Before reading, the path is checked as the agent's contract says
(and as azure-identity does): it must lie directly in the agent's token directory
(``/var/opt/azcmagent/tokens`` on Linux, ``%ProgramData%\\AzureConnectedMachineAgent\\Tokens`` on
Windows), end in ``.key`` and be at most 4096 bytes, so a rogue endpoint cannot make keyless read and send
an arbitrary file. The directory can be overridden explicitly (argument ``key_dir`` or
``KEYLESS_ARC_KEY_DIR``): the local emulator writes its key files under its own data directory.
Arc supports the system-assigned identity only.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlencode

from keyless.clock import SYSTEM_CLOCK, Clock
from keyless.identity.errors import ArcKeyFileError, CredentialConfigError, IdentityUnavailable
from keyless.identity.retry import DEFAULT_RETRY, RetryPolicy
from keyless.identity.sources._http import map_failure
from keyless.identity.sources.base import SYSTEM_ASSIGNED, Selector, json_body, send_with_retry
from keyless.identity.token import Token, parse_token_response
from keyless.identity.transport import Transport, Urllib3Transport
from keyless.protocol import ARC_API_VERSION, ARC_KEY_MAX_BYTES

ENV_KEY_DIR = "KEYLESS_ARC_KEY_DIR"


def default_key_dir(env: Mapping[str, str]) -> Path:
    if sys.platform == "win32":  # pragma: no cover - Linux CI
        return Path(env.get("ProgramData", r"C:\ProgramData")) / "AzureConnectedMachineAgent" / "Tokens"
    return Path("/var/opt/azcmagent/tokens")


def read_key_file(realm_path: str, allowed_dir: Path) -> str:
    """The challenge key, after the agent's path checks; ArcKeyFileError names the check that failed."""
    if not realm_path:
        raise ArcKeyFileError("the Arc endpoint's challenge names no key file; is it really the Arc agent?")
    path = Path(os.path.normpath(realm_path))
    outside = ArcKeyFileError(
        f"the Arc endpoint pointed at {path}, outside the agent's key directory {allowed_dir}; refusing "
        f"to read it (set {ENV_KEY_DIR} only if your agent really uses another directory)")
    # Checked twice: on the path as named (before touching the file system), and after resolving
    # symlinks, so neither ``..`` nor a planted link leads out of the directory.
    if path.parent != Path(os.path.normpath(allowed_dir)):
        raise outside
    if path.suffix != ".key":
        raise ArcKeyFileError(f"the Arc endpoint pointed at {path}, which does not end in .key; refusing")
    try:
        real = path.resolve(strict=True)
        allowed = allowed_dir.resolve(strict=True)
    except OSError as exc:
        raise ArcKeyFileError(f"Arc key file {path} is missing ({exc.strerror}); is the Azure Connected "
                              "Machine agent running?") from None
    if real.parent != allowed or real.suffix != ".key":
        raise outside
    try:
        size = real.stat().st_size
        if size > ARC_KEY_MAX_BYTES:
            raise ArcKeyFileError(
                f"Arc key file {path} is {size} bytes, over the {ARC_KEY_MAX_BYTES}-byte limit")
        with open(real, "rb") as fh:
            data = fh.read(ARC_KEY_MAX_BYTES + 1)
    except PermissionError:
        raise ArcKeyFileError(
            f"cannot read the Arc key file {path}: run as root or as a member of the himds group "
            "(sudo usermod -aG himds $USER, then log in again)") from None
    if len(data) > ARC_KEY_MAX_BYTES:
        raise ArcKeyFileError(f"Arc key file {path} is over the {ARC_KEY_MAX_BYTES}-byte limit")
    return data.decode("utf-8", "replace").strip()


class ArcSource:
    name = "arc"

    def __init__(self, selector: Selector = SYSTEM_ASSIGNED, *, endpoint: str | None = None,
                 key_dir: str | Path | None = None, env: Mapping[str, str] | None = None,
                 transport: Transport | None = None, retry: RetryPolicy = DEFAULT_RETRY,
                 clock: Clock = SYSTEM_CLOCK, timeout: float | None = None,
                 rng: random.Random | None = None) -> None:
        env = {} if env is None else env
        if not selector.is_system:
            raise CredentialConfigError(
                f"Azure Arc servers have only a system-assigned identity; remove {selector.describe()}")
        endpoint = endpoint or env.get("IDENTITY_ENDPOINT")
        if not endpoint:
            raise IdentityUnavailable(
                "Azure Arc managed identity needs IDENTITY_ENDPOINT (and IMDS_ENDPOINT) in the environment, "
                "set by the Connected Machine agent: install/connect the agent (azcmagent connect) or choose "
                "another token source")
        self.selector = selector
        self.endpoint = endpoint
        explicit = key_dir or env.get(ENV_KEY_DIR)
        self.key_dir = Path(explicit) if explicit else default_key_dir(env)
        self._transport = transport or Urllib3Transport()
        self._owns_transport = transport is None
        self._retry, self._clock, self._timeout, self._rng = retry, clock, timeout, rng

    @property
    def identity(self) -> str:
        return self.selector.describe()

    @property
    def cache_scope(self) -> str:
        return f"arc|{self.endpoint}|{self.identity}"

    def fetch(self, resource: str) -> Token:
        sep = "&" if "?" in self.endpoint else "?"
        url = f"{self.endpoint}{sep}{urlencode({'api-version': ARC_API_VERSION, 'resource': resource})}"
        headers = {"Metadata": "true"}
        first = send_with_retry(self._transport, self._retry, self._clock, method="GET", url=url,
                                headers=headers, timeout=self._timeout, source=self.name, rng=self._rng)
        outcome = first
        if first.response is not None and first.response.status == 401:
            challenge = first.response.header("WWW-Authenticate") or ""
            scheme, _, realm = challenge.partition("realm=")
            if "basic" not in scheme.lower():
                raise IdentityUnavailable(f"the Arc endpoint {self.endpoint} sent an unexpected challenge "
                                          f"({scheme.strip() or 'none'}); is it really the Arc agent?")
            secret = read_key_file(realm.strip().strip('"'), self.key_dir)
            outcome = send_with_retry(self._transport, self._retry, self._clock, method="GET", url=url,
                                      headers={**headers, "Authorization": f"Basic {secret}"},
                                      timeout=self._timeout, source=self.name, rng=self._rng)
        if outcome.response is not None and outcome.response.status < 400:
            return parse_token_response(json_body(outcome.response), received_at=self._clock.now(),
                                        resource=resource, source=self.name, identity=self.identity)
        raise map_failure(outcome, source=self.name, label="Azure Arc", endpoint=self.endpoint,
                          selector=self.selector, resource=resource,
                          not_found_hint="check that the server is connected (azcmagent show)",
                          unavailable_hint="is the Connected Machine agent (himds) running? "
                                           "(systemctl status himdsd)")

    def close(self) -> None:
        if self._owns_transport:
            self._transport.close()

    def __repr__(self) -> str:
        return f"ArcSource(endpoint={self.endpoint!r}, key_dir={str(self.key_dir)!r})"


__all__ = ["ENV_KEY_DIR", "ArcSource", "read_key_file"]

