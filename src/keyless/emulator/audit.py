"""Audit log: one JSON line per request, shaped like Azure's StorageFileLogs, never holding a secret.

Lines are appended with a single ``write`` on an ``O_APPEND`` descriptor, so concurrent writers never
interleave within a line and a crash loses at most the line being written.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Fields that must never reach the log even if a caller passes them by mistake.
_FORBIDDEN = frozenset({"token", "access_token", "authorization", "key", "account_key", "session_key",
                        "client_assertion", "signature"})


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._lock = threading.Lock()

    def write(self, category: str, **fields: Any) -> None:
        record: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "category": category,
        }
        for name, value in fields.items():
            if name.lower() in _FORBIDDEN:
                raise ValueError(f"audit field {name!r} would record a secret; log an identifier instead")
            if value is not None:
                record[name] = value
        line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            os.write(self._fd, line)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
