"""Console output on Windows: VT mode switched on (or colour off), no crash on unencodable text."""

from __future__ import annotations

import ctypes
import io
import sys
from typing import Any

import pytest

from keyless.cli import console


class FakeKernel32:
    """GetStdHandle/GetConsoleMode/SetConsoleMode as the Windows console host answers them."""

    def __init__(self, modes: dict[int, int | None], set_ok: bool = True) -> None:
        self.modes = modes  # None: the handle is not a console (redirected)
        self.set_ok = set_ok
        self.set_calls: list[tuple[int, int]] = []

    def GetStdHandle(self, which: int) -> int:
        return which

    def GetConsoleMode(self, handle: int, mode: Any) -> int:
        if self.modes[handle] is None:
            return 0
        mode._obj.value = self.modes[handle]
        return 1

    def SetConsoleMode(self, handle: int, mode: int) -> int:
        self.set_calls.append((handle, mode))
        if self.set_ok:
            self.modes[handle] = mode
        return int(self.set_ok)


def test_vt_mode_is_switched_on_for_console_handles_only() -> None:
    kernel = FakeKernel32({-11: 0x0003, -12: None})
    assert console.enable_ansi(kernel) is True
    assert kernel.set_calls == [(-11, 0x0007)]
    assert console.color_wanted({}, kernel) is None  # click decides: a terminal gets colour


def test_vt_mode_already_on_is_left_alone() -> None:
    kernel = FakeKernel32({-11: 0x0007, -12: 0x0005})
    assert console.enable_ansi(kernel) is True and kernel.set_calls == []


def test_colour_off_where_the_console_refuses_vt_mode() -> None:
    kernel = FakeKernel32({-11: 0x0003, -12: 0x0003}, set_ok=False)
    assert console.color_wanted({}, kernel) is False


def test_no_color_is_honoured() -> None:
    assert console.color_wanted({"NO_COLOR": "1"}, FakeKernel32({-11: 7, -12: 7})) is False


def test_off_windows_nothing_is_touched() -> None:
    assert console.enable_ansi() is True  # this is Linux: no kernel32 is loaded at all


def test_unencodable_output_is_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="cp1252", errors="strict")
    monkeypatch.setattr(sys, "stdout", stream)
    console.make_output_safe()
    stream.write("名前 café\n")
    stream.flush()
    assert raw.getvalue() == b"\\u540d\\u524d caf\xe9\n"


def test_byref_is_what_the_fake_receives() -> None:
    """The fake's ``mode._obj`` is how ctypes.byref exposes its target: check that assumption holds."""
    value = ctypes.c_uint32(5)
    assert ctypes.byref(value)._obj is value  # type: ignore[attr-defined]


def _on_a_terminal(args: list[str], env: dict[str, str]) -> bytes:
    """Run ``keyless`` with stdout and stderr on a pseudo-terminal; everything it printed."""
    import os
    import subprocess

    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "keyless.cli.main", *args], stdout=slave, stderr=slave,
                            env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its side
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(60) == 0, out
    return out


def test_no_color_reaches_the_commands(emulator: Any) -> None:
    import os

    args = ["test", "--account", "devaccount", "--share", "demo", "--dir", "no-color-test", "--cleanup",
            "--emulator", str(emulator.data_dir)]
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    assert b"\x1b[32m OK" in _on_a_terminal(args, env)  # a terminal gets colour by default
    plain = _on_a_terminal(args, {**env, "NO_COLOR": "1"})
    assert b"\x1b[" not in plain and b"[1/3] Getting token... OK" in plain
