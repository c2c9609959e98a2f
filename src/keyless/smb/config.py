"""Settings compatible with ``/etc/azfilesauth/config.yaml``, with keyless's own defaults when absent.

The file is ``KEY: value`` lines (not full YAML: azfilesauth reads it line by line, and so do we, so a
file that works for one works for the other). Keys: ``KRB5_CC_NAME``, ``USER_UID``, ``LOG_DESTINATION``
(``syslog`` | ``file``), ``LOG_FILE_PATH``, ``CURL_CONNECT_TIMEOUT``, ``CURL_TOTAL_TIMEOUT`` (seconds).

Which credential cache: an explicit ``--ccache`` first, then ``KRB5_CC_NAME`` from the config, then
``$KRB5CCNAME``, then ``FILE:/tmp/krb5cc_<uid>`` of the cache's user (``USER_UID``, else the caller).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from keyless.smb.errors import ConfigFileError

DEFAULT_CONFIG_PATH = Path("/etc/azfilesauth/config.yaml")
KNOWN_KEYS = frozenset({"KRB5_CC_NAME", "USER_UID", "LOG_DESTINATION", "LOG_FILE_PATH",
                        "CURL_CONNECT_TIMEOUT", "CURL_TOTAL_TIMEOUT"})


@dataclass(frozen=True)
class SmbConfig:
    krb5_cc_name: str | None = None
    user_uid: int | None = None
    log_destination: str = "syslog"
    log_file_path: str | None = None
    connect_timeout: float = 10.0  # azfilesauth's defaults
    total_timeout: float = 30.0
    path: Path | None = None  # the file it came from, if any

    def cache_uid(self) -> int:
        return self.user_uid if self.user_uid is not None else os.geteuid()

    def cache_name(self, explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
        env = os.environ if env is None else env
        if explicit:
            return explicit
        if self.krb5_cc_name:
            return self.krb5_cc_name
        if env.get("KRB5CCNAME"):
            return env["KRB5CCNAME"]
        return f"FILE:/tmp/krb5cc_{self.cache_uid()}"


def parse_config(text: str, path: Path | None = None) -> SmbConfig:
    values: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition(":")
        if not sep:
            raise ConfigFileError(
                f"{path or 'config'}:{lineno}: expected 'KEY: value', got {stripped[:60]!r}")
        values[key.strip()] = value.strip().strip("\"'")
    where = str(path or "config")

    def number(key: str, default: float) -> float:
        raw = values.get(key)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigFileError(f"{where}: {key} must be a number of seconds, got {raw!r}") from None
        if value <= 0:
            raise ConfigFileError(f"{where}: {key} must be positive, got {raw!r}")
        return value

    uid: int | None = None
    if values.get("USER_UID"):
        try:
            uid = int(values["USER_UID"])
        except ValueError:
            raise ConfigFileError(f"{where}: USER_UID must be a numeric uid, got {values['USER_UID']!r}") \
                from None
    destination = (values.get("LOG_DESTINATION") or "syslog").lower()
    if destination not in ("syslog", "file"):
        raise ConfigFileError(f"{where}: LOG_DESTINATION is 'syslog' or 'file', got {destination!r}")
    if destination == "file" and not values.get("LOG_FILE_PATH"):
        raise ConfigFileError(f"{where}: LOG_DESTINATION is 'file' but LOG_FILE_PATH is not set")
    return SmbConfig(
        krb5_cc_name=values.get("KRB5_CC_NAME") or None,
        user_uid=uid,
        log_destination=destination,
        log_file_path=values.get("LOG_FILE_PATH") or None,
        connect_timeout=number("CURL_CONNECT_TIMEOUT", 10.0),
        total_timeout=number("CURL_TOTAL_TIMEOUT", 30.0),
        path=path,
    )


def load_config(path: Path | None = None) -> SmbConfig:
    """``path`` when given (it must exist); else the system file when present; else the defaults."""
    target = path or DEFAULT_CONFIG_PATH
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        if path is not None:
            raise ConfigFileError(f"{path}: no such config file") from None
        return SmbConfig()
    except PermissionError:
        if path is not None:
            raise ConfigFileError(f"{path}: not permitted to read the config file") from None
        return SmbConfig()
    return parse_config(text, target)
