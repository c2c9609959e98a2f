"""Settings compatible with ``/etc/azfilesauth/config.yaml``, with keyless's own defaults when absent.

The file is ``KEY: value`` lines (not full YAML: azfilesauth reads it line by line, and so do we, so a
file that works for one works for the other). Keys: ``KRB5_CC_NAME``, ``USER_UID``, ``LOG_DESTINATION``
(``syslog`` | ``file``), ``LOG_FILE_PATH``, ``CURL_CONNECT_TIMEOUT``, ``CURL_TOTAL_TIMEOUT`` (seconds).

Every file the real tool accepts is accepted, read as it reads it (AzFilesAuthenticator
src/azfilesauth.cpp ``read_config_value`` and ``get_timeout_from_config``): lines without a colon (YAML's
``---``) are skipped, the first of duplicate keys wins, values lose surrounding blanks and quotes, an
unknown ``LOG_DESTINATION`` means syslog, ``file`` without a path means ``/var/log/azfilesauth.log``, and a
timeout is its leading digits (``30s`` is 30) or the default. Whatever was ignored or read differently from
how it is written is listed in ``SmbConfig.warnings`` for the CLI to print on stderr. Added: ``#`` comments.

Which credential cache: an explicit ``--ccache`` first, then ``KRB5_CC_NAME`` from the config, then
``$KRB5CCNAME`` (``keyless smb`` only; the ``azfilesauthmanager`` drop-in ignores it, as the real library
does), then ``FILE:/tmp/krb5cc_<uid>`` of the cache's user (``USER_UID``, else the caller).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

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
    warnings: tuple[str, ...] = ()  # what was ignored or reinterpreted, for stderr

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


DEFAULT_LOG_FILE = "/var/log/azfilesauth.log"  # src/azfilesauth.cpp:33
_YAML_MARKERS = frozenset({"---", "..."})
_LEADING_INT = re.compile(r"^[+-]?\d+")


def parse_config(text: str, path: Path | None = None) -> SmbConfig:
    where = str(path or "config")
    values: dict[str, str] = {}
    warnings: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped in _YAML_MARKERS:
            continue
        key, sep, value = stripped.partition(":")
        if not sep:
            warnings.append(f"{where}:{lineno}: ignored {stripped[:60]!r} (not 'KEY: value')")
            continue
        key = key.strip()
        if key in values:
            warnings.append(f"{where}:{lineno}: ignored a second {key} (the first one counts, as in "
                            "azfilesauth)")
            continue
        # A bare "ENVIRONMENT:" (newer azfilesauth) opens a block whose entries are reported one by one.
        if key not in KNOWN_KEYS and (value.strip() or key != "ENVIRONMENT"):
            warnings.append(f"{where}:{lineno}: ignored {key} (not a setting keyless uses)")
        values[key] = value.strip(" \t\"'")

    def timeout(key: str, default: float) -> float:
        # strtol: leading digits count, the rest is ignored; zero, negative or no digits mean the default.
        raw = values.get(key)
        if not raw:
            return default
        match = _LEADING_INT.match(raw)
        number = int(match.group()) if match else 0
        if number <= 0:
            warnings.append(f"{where}: {key} {raw!r} is not a positive number of seconds; using {default:g}")
            return default
        if match is not None and match.group() != raw:
            warnings.append(f"{where}: {key} {raw!r} read as {number} seconds")
        return float(number)

    uid: int | None = None
    if values.get("USER_UID"):
        try:
            uid = int(values["USER_UID"])
        except ValueError:
            warnings.append(f"{where}: ignored USER_UID {values['USER_UID']!r} (not a numeric uid)")
    destination = (values.get("LOG_DESTINATION") or "syslog").lower()
    if destination not in ("syslog", "file"):
        warnings.append(f"{where}: LOG_DESTINATION {values['LOG_DESTINATION']!r} is neither 'syslog' nor "
                        "'file'; logging to syslog, as azfilesauth does")
        destination = "syslog"
    log_file = values.get("LOG_FILE_PATH") or None
    if destination == "file" and log_file is None:
        log_file = DEFAULT_LOG_FILE
    return SmbConfig(
        krb5_cc_name=values.get("KRB5_CC_NAME") or None,
        user_uid=uid,
        log_destination=destination,
        log_file_path=log_file,
        connect_timeout=timeout("CURL_CONNECT_TIMEOUT", 10.0),
        total_timeout=timeout("CURL_TOTAL_TIMEOUT", 30.0),
        path=path,
        warnings=tuple(warnings),
    )


def report_warnings(cfg: SmbConfig, err: TextIO) -> None:
    for warning in cfg.warnings:
        print(f"warning: {warning}", file=err, flush=True)


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
