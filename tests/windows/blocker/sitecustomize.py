"""Make this Python look like Windows to keyless: the POSIX-only modules and ``os`` functions are gone.

Put this directory first on ``PYTHONPATH`` and every process started with it:

* cannot import ``fcntl``, ``pwd``, ``grp``, ``termios`` (ModuleNotFoundError, as on Windows);
* has no ``os.getuid``/``geteuid``/``getgid``/``getegid``/``fchmod``/``pread``/``pwrite`` nor
  ``os.O_NOFOLLOW``;
* has an ``msvcrt`` module whose ``locking`` keeps Windows's contract (``LK_NBLCK`` on a byte range fails
  at once with EACCES when another process holds it, ``LK_UNLCK`` releases), built on ``os.lockf`` so that
  separate processes really exclude each other.

It is not Windows (paths, ``os.name``, the console stay Linux), and the README says so. A process reports
what was blocked in ``KEYLESS_BLOCKED_REPORT`` (a file path) so the test can check the blocker was active.
"""

from __future__ import annotations

import importlib.abc
import os
import sys

import fake_msvcrt  # this directory is on PYTHONPATH

BLOCKED_MODULES = ("fcntl", "pwd", "grp", "termios")
REMOVED_FROM_OS = ("getuid", "geteuid", "getgid", "getegid", "fchmod", "pread", "pwrite", "O_NOFOLLOW")


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        if fullname in BLOCKED_MODULES:
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked: simulating Windows)",
                                      name=fullname)
        return None


for _name in BLOCKED_MODULES:
    sys.modules.pop(_name, None)
sys.meta_path.insert(0, _Blocker())
for _attr in REMOVED_FROM_OS:
    if hasattr(os, _attr):
        delattr(os, _attr)
# The standard library decides "am I on Windows?" in a few places by whether msvcrt imports (subprocess,
# getpass): they are imported first, so they keep their Linux form and only keyless sees the stand-in.
import getpass  # noqa: E402
import subprocess  # noqa: E402, F401

del getpass
sys.modules["msvcrt"] = fake_msvcrt.make()

_report = os.environ.get("KEYLESS_BLOCKED_REPORT")
if _report:
    with open(_report, "a", encoding="utf-8") as _fh:
        _fh.write(f"{os.getpid()} blocked {','.join(BLOCKED_MODULES)}; "
                  f"removed os.{',os.'.join(REMOVED_FROM_OS)}\n")
