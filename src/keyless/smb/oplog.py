"""Logs of ``set`` / ``list`` / ``clear``, where azfilesauth writes them, never with a token.

AzFilesAuthenticator logs every step to syslog (ident ``azfilesauth``, facility ``LOG_USER``, with the pid)
or, with ``LOG_DESTINATION: file``, to ``LOG_FILE_PATH`` (default ``/var/log/azfilesauth.log``); a log
file whose directory does not exist falls back to syslog with a warning (src/azfilesauth.cpp:95-197).
Monitoring that greps syslog for ``azfilesauth[`` or tails that file sees keyless's operations too. The
lines themselves are keyless's (the cause of a failure, not "-1"). Messages are built from ``SmbError``
texts, which never hold a token, and from server and cache names only.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path
from typing import TextIO

from keyless.smb.config import SmbConfig

LOGGER_NAME = "keyless.smb.ops"
IDENT = "azfilesauth"
SYSLOG_SOCKET = "/dev/log"

_logger = logging.getLogger(LOGGER_NAME)
_logger.addHandler(logging.NullHandler())  # nothing reaches Python's last-resort stderr handler
_logger.propagate = False
_logger.setLevel(logging.INFO)


def log() -> logging.Logger:
    return _logger


def configure(cfg: SmbConfig, err: TextIO, *, syslog_socket: str = SYSLOG_SOCKET) -> logging.Handler:
    """Send the operation log where ``cfg`` says; returns the handler (tests read its target)."""
    for old in list(_logger.handlers):
        _logger.removeHandler(old)
        old.close()
    handler: logging.Handler | None = None
    if cfg.log_destination == "file" and cfg.log_file_path:
        path = Path(cfg.log_file_path)
        if path.parent.is_dir():
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))  # created private
                handler = logging.handlers.WatchedFileHandler(path)  # logrotate-friendly
                handler.setFormatter(logging.Formatter(
                    f"%(asctime)s {IDENT}[%(process)d]: [%(levelname)s] %(message)s"))
            except OSError as exc:
                print(f"warning: cannot write the log file {path} ({exc.strerror}); logging to syslog",
                      file=err, flush=True)
        else:
            print(f"warning: the directory of LOG_FILE_PATH {path} does not exist; logging to syslog",
                  file=err, flush=True)
    if handler is None and Path(syslog_socket).exists():
        try:
            handler = logging.handlers.SysLogHandler(address=syslog_socket,
                                                     facility=logging.handlers.SysLogHandler.LOG_USER)
            handler.setFormatter(logging.Formatter(f"{IDENT}[%(process)d]: %(message)s"))
        except OSError:
            handler = None  # no syslog daemon: dropped, as libc's syslog() drops it
    _logger.addHandler(handler or logging.NullHandler())
    return _logger.handlers[0]
