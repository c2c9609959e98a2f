"""Find storage credentials in one file's text: what kind, for which account, where, and what replaces it.

Each detector sees the whole text (so a cheap pre-filter can skip most files) and reports a ``Hit``:
line, kind, account (when the text says), the secret (kept in memory only, to fingerprint it) and the
replacement. Nothing here prints; ``Finding`` carries the fingerprint, never the secret.

Kinds:
  connection-string       ``DefaultEndpointsProtocol=…;AccountName=…;AccountKey=…``
  account-key             ``AccountKey=`` alone, ``AZURE_STORAGE_KEY=``, ``accountKey: …`` in
                          JSON/YAML/INI/TOML
  sas-token               a URL or query with ``sig=`` (and ``sv=``/``se=``/``sp=``)
  cifs-password           a CIFS mount (``/etc/fstab``, ``mount -o``) with ``password=``
  cifs-credentials-file   a CIFS mount with ``credentials=FILE`` (the file holds the key)
  smb-credentials         a credentials file (``username=``/``password=`` lines)
  systemd-environment     ``Environment=`` in a unit setting a storage secret
  systemd-environment-file ``EnvironmentFile=`` naming a file that holds a storage secret (set by the scanner)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

# add(offset, kind, account, secret, replacement, reference="")
_Add = Callable[..., None]

# Files without any of these (lower-cased) byte strings cannot match a detector below and are skipped.
# Plain substring tests (C speed) instead of one case-insensitive regex: most files are dismissed here.
PREFILTER_TOKENS = (
    b"accountkey", b"account_key", b"storagekey", b"storage_key", b"accesskey", b"access_key",
    b"primarykey", b"primary_key", b"secondarykey", b"secondary_key", b"sharedkey", b"shared_key",
    b"key1", b"key2", b"azure_storage_", b"sig=", b"password", b"pass=", b"credentials=", b"cred=",
    b"environmentfile",
)


def might_hold_secret(data: bytes) -> bool:
    low = data.lower()
    return any(token in low for token in PREFILTER_TOKENS)


_ACCOUNT_KEY = re.compile(r"(?i)AccountKey\s*=\s*([A-Za-z0-9+/]{20,}={0,2})")
_ACCOUNT_NAME = re.compile(r"(?i)AccountName\s*=\s*([a-z0-9]{3,24})\b")
_ENV_SECRET = re.compile(
    r"(?i)\b(AZURE_STORAGE_(?:ACCOUNT_)?(?:ACCESS_)?KEY|AZURE_STORAGE_SAS_TOKEN|AZURE_STORAGE_CONNECTION_STRING)"
    r"""["']?\s*[=:]\s*["']?([^"'\s;]+)"""
)
_NAMED_KEY = re.compile(
    r"""(?i)["']?\b((?:storage_?)?account_?key|storage_?key|access_?key|primary_?key|secondary_?key|"""
    r"""shared_?key|key1|key2)\b["']?\s*[:=]\s*["']?([A-Za-z0-9+/]{40,}={0,2})"""
)
_SIG = re.compile(r"(?i)(?:^|[?&\"'\s;])sig=([A-Za-z0-9%+/=]{16,})")
_SAS_COMPANION = re.compile(r"(?i)[?&\"'\s;](?:sv|se|sp|srt|ss|skoid)=")
# An account named elsewhere in the same file: AccountName=x, "AccountName": "x", account = x,
# AZURE_STORAGE_ACCOUNT=x (checked after the finding's own line and a storage URL in the file).
_ACCOUNT_SETTING = re.compile(
    r"""(?im)(?:\bAZURE_STORAGE_ACCOUNT(?:_NAME)?|\b(?:storage_?)?account_?name|^\s*["']?(?:storage_?)?account)"""
    r"""["']?\s*[:=]\s*["']?([a-z0-9]{3,24})["']?\s*(?:[,;]|$)"""
)
_ACCOUNT_HOST = re.compile(r"(?i)\b([a-z0-9]{3,24})\.(?:file|blob|queue|table|dfs)\.core\.")
_CIFS_MOUNT = re.compile(r"(?i)(?:^|[\s=])(?://|\\\\)([a-z0-9]{3,24})\.file\.core\.[^\s/\\]+[/\\]([^\s/\\]+)")
_CIFS_LINE = re.compile(r"(?i)\b(?:cifs|smb3|smbfs)\b|mount\.cifs|-t\s+cifs")
_PASSWORD_OPT = re.compile(r"(?i)(?:^|[,\s])(?:password|pass)=([^,\s]+)")
_CREDENTIALS_OPT = re.compile(r"(?i)(?:^|[,\s])(?:credentials|cred)=([^,\s]+)")
_CRED_USER = re.compile(r"(?im)^\s*username\s*=\s*(\S+)\s*$")
_CRED_PASSWORD = re.compile(r"(?im)^\s*password\s*=\s*(\S+)\s*$")
_ENVIRONMENT_FILE = re.compile(r"(?m)^\s*EnvironmentFile\s*=\s*-?(\S+)")
_ENVIRONMENT_LINE = re.compile(r"(?m)^\s*Environment\s*=")
# Values that are references, not secrets: ${VAR}, $(cmd), {{ template }}, <placeholder>, %(name)s, ***.
_PLACEHOLDER = re.compile(r"^(?:\$\{|\$\(|\$[A-Z_]|\{\{|<|%\(|\*{3}|x{6}|changeme|REPLACE|TODO)", re.I)


@dataclass(frozen=True)
class Hit:
    line: int
    kind: str
    account: str
    secret: str
    replacement: str
    reference: str = ""  # for credentials=FILE / EnvironmentFile=FILE: the file named


def fingerprint(kind: str, account: str, secret: str) -> str:
    """kind + account + a hash prefix: tells findings apart, matches them across machines, reveals nothing."""
    digest = hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{kind}:{account or '-'}:{digest}"


def is_account_key(value: str) -> bool:
    """An Azure storage account key is 64 random bytes, written as 88 base64 characters."""
    try:
        return len(base64.b64decode(value, validate=True)) == 64
    except (binascii.Error, ValueError):
        return False


def _placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match(value))


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _line_text(text: str, offset: int) -> str:
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return text[start:] if end < 0 else text[start:end]


def _account_in(text: str) -> str:
    """The account a file is about, when it says: a setting naming it, else a storage URL."""
    setting = _ACCOUNT_SETTING.search(text)
    if setting:
        return setting.group(1)
    host = _ACCOUNT_HOST.search(text)
    return host.group(1) if host else ""


def _replacement_for_key(account: str, via: str) -> str:
    acct = account or "<account>"
    return (f"remove {via}; give the machine a managed identity with a Storage File Data role on {acct} "
            f"and use it: `keyless ls azfiles://{acct}/<share>/` (REST) or `keyless smb mount "
            f"//{acct}.file.core.windows.net/<share> <dir>` (SMB)")


def detect(text: str) -> list[Hit]:
    hits: list[Hit] = []
    seen: set[tuple[int, str]] = set()

    def add(offset: int, kind: str, account: str, secret: str, replacement: str, reference: str = "") -> None:
        line = _line_of(text, offset)
        if (line, secret) in seen:
            return
        seen.add((line, secret))
        hits.append(Hit(line, kind, account, secret, replacement, reference))

    unit = "[Service]" in text or "[Unit]" in text
    for m in _ACCOUNT_KEY.finditer(text):
        value = m.group(1)
        if len(value) < 40 or _placeholder(value):
            continue
        line = _line_text(text, m.start())
        name = _ACCOUNT_NAME.search(line)
        account = name.group(1) if name else ""
        conn = "DefaultEndpointsProtocol" in line or name is not None
        kind = "connection-string" if conn else "account-key"
        if unit and _ENVIRONMENT_LINE.match(line):
            kind = "systemd-environment"
        add(m.start(), kind, account, value,
            _replacement_for_key(account, "the connection string's AccountKey" if conn else "the AccountKey"))
    for m in _ENV_SECRET.finditer(text):
        var, value = m.group(1).upper(), m.group(2)
        if _placeholder(value) or len(value) < 16:
            continue
        line = _line_text(text, m.start())
        if var.endswith("CONNECTION_STRING"):
            continue  # its AccountKey= (or SharedAccessSignature=) part is reported on its own
        if var.endswith("SAS_TOKEN"):
            continue  # reported by the sig= detector with the token's account
        account = _account_in(text)
        kind = "systemd-environment" if unit and _ENVIRONMENT_LINE.match(line) else "account-key"
        add(m.start(), kind, account, value, _replacement_for_key(account, f"the environment variable {var}"))
    for m in _NAMED_KEY.finditer(text):
        value = m.group(2)
        if not is_account_key(value):
            continue
        line = _line_text(text, m.start())
        name = _ACCOUNT_NAME.search(line)
        account = name.group(1) if name else _account_in(text)
        add(m.start(), "account-key", account, value,
            _replacement_for_key(account, f"the {m.group(1)} setting"))
    for m in _SIG.finditer(text):
        value = m.group(1)
        line = _line_text(text, m.start())
        if not _SAS_COMPANION.search(" " + line) or _placeholder(value):
            continue
        host = _ACCOUNT_HOST.search(line)
        account = host.group(1) if host else ""
        add(m.start(), "sas-token", account, value,
            "remove the SAS; if the consumer needs a SAS, mint a short-lived user delegation SAS from "
            "the managed identity instead of one signed with the account key, otherwise use the identity")
    _detect_cifs(text, add)
    return hits


def _detect_cifs(text: str, add: _Add) -> None:
    # A systemd .mount unit spreads a mount over lines: What=//acct.file.core…/share, Type=cifs, Options=….
    unit_mount = "[Mount]" in text and _CIFS_LINE.search(text) is not None
    unit_what = _CIFS_MOUNT.search(text) if unit_mount else None
    offset = 0
    for line in text.splitlines(keepends=True):
        options_line = unit_mount and line.lstrip().startswith("Options=")
        if "=" in line and (options_line or _CIFS_LINE.search(line)) and not line.lstrip().startswith("#"):
            mount = _CIFS_MOUNT.search(line) or unit_what
            account = mount.group(1) if mount else ""
            share = mount.group(2) if mount else "<share>"
            fix = (f"mount with a Kerberos ticket from the managed identity: `keyless smb mount "
                   f"//{account or '<account>'}.file.core.windows.net/{share} <dir>` (sec=krb5, no password)")
            for m in _PASSWORD_OPT.finditer(line):
                if not _placeholder(m.group(1)):
                    add(offset + m.start(), "cifs-password", account, m.group(1), fix)
            for m in _CREDENTIALS_OPT.finditer(line):
                add(offset + m.start(), "cifs-credentials-file", account, m.group(1), fix,
                    reference=m.group(1))
        offset += len(line)
    users = list(_CRED_USER.finditer(text))
    for m in _CRED_PASSWORD.finditer(text):
        if users and not _placeholder(m.group(1)):
            account = users[0].group(1)
            add(m.start(), "smb-credentials", account, m.group(1),
                f"delete this credentials file and its fstab credentials= option; mount with "
                f"`keyless smb mount //{account}.file.core.windows.net/<share> <dir>` (Kerberos from the "
                "managed identity)")


def environment_files(text: str) -> list[tuple[int, str]]:
    """``EnvironmentFile=`` references of a systemd unit: (line, path)."""
    if "[Service]" not in text:
        return []
    return [(_line_of(text, m.start()), m.group(1)) for m in _ENVIRONMENT_FILE.finditer(text)]
