"""Local path rules for get/sync: Windows's rules exercised on Linux through the ``platform`` value."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyless.files import errors as fe
from keyless.files import localpaths as lp
from keyless.files import transfer

W, P = lp.WINDOWS, lp.POSIX


@pytest.mark.parametrize("name", ["CON", "con", "NUL.txt", "nul.tar.gz", "Com1", "LPT9.log", "COM\u00b9",
                                  "AUX ", "PRN .txt", "CONIN$", "conout$.x"])
def test_reserved_device_names_are_refused_on_windows(name: str) -> None:
    with pytest.raises(fe.UnsafeName, match=r"reserved device name|trailing dot or space"):
        lp.check_relative(f"dir/{name}", W)
    assert lp.check_relative(f"dir/{name}", P) == ["dir", name]  # an ordinary name on Linux


@pytest.mark.parametrize("name", ["notes.", "notes ", "dir./x", "a<b", 'say"hi"', "a:b", "what?", "x*y",
                                  "pipe|d", "bell\x07", "gt>"])
def test_names_windows_cannot_hold_are_refused(name: str) -> None:
    with pytest.raises(fe.UnsafeName) as info:
        lp.check_relative(name, W)
    assert repr(name) in str(info.value) and "rename it on the share" in str(info.value)


@pytest.mark.parametrize("name", ["CONSOLE", "con1", "COM10", "LPTX", "nul_file", "a.b.c", ".hidden",
                                  "x" * 255, "ünïcödé 名前"])
def test_ordinary_names_pass_on_windows(name: str) -> None:
    assert lp.check_relative(name, W) == [name]


def test_too_long_component_on_windows() -> None:
    with pytest.raises(fe.UnsafeName, match="at most 255"):
        lp.check_relative("x" * 256, W)


@pytest.mark.parametrize("name", ["", "/etc/passwd", "C:/x", "c:x", "a/../b", "./a", "a//b", "a\\b",
                                  "a\x00b"])
@pytest.mark.parametrize("platform", [W, P])
def test_escaping_names_refused_everywhere(name: str, platform: str) -> None:
    with pytest.raises(fe.UnsafeName):
        lp.check_relative(name, platform)


def test_case_collisions_on_case_insensitive_systems() -> None:
    with pytest.raises(fe.UnsafeName, match=r"'docs/Readme\.md' and 'docs/README\.md'"):
        lp.check_case_collisions(["docs/Readme.md", "docs/README.md"], W)
    with pytest.raises(fe.UnsafeName):
        lp.check_case_collisions(["A", "a"], lp.DARWIN)
    lp.check_case_collisions(["A", "a"], P)  # two files on Linux: nothing to refuse
    assert lp.case_key("Dir/ÄB", W) == lp.case_key("dir/äb", W)


def test_long_paths_get_the_extended_prefix_on_windows() -> None:
    short = "C:\\data\\" + "a" * 100
    assert lp.os_path(short, W) == short
    long = "C:\\data\\" + "\\".join(["d" * 50] * 6)
    assert lp.os_path(long, W) == "\\\\?\\" + long
    assert lp.os_path("C:/data/" + "/".join(["d" * 50] * 6), W) == "\\\\?\\" + long  # normalised first
    unc = "\\\\server\\share\\" + "\\".join(["d" * 50] * 6)
    assert lp.os_path(unc, W) == "\\\\?\\UNC\\server\\share\\" + "\\".join(["d" * 50] * 6)
    assert lp.os_path("\\\\?\\" + long, W) == "\\\\?\\" + long  # already prefixed
    assert lp.os_path("/" + "x" * 300, P) == "/" + "x" * 300


def test_safe_local_path_applies_the_injected_rules(tmp_path: Path) -> None:
    with pytest.raises(fe.UnsafeName, match="reserved device name"):
        transfer.safe_local_path(tmp_path, "sub/CON", W)
    assert transfer.safe_local_path(tmp_path, "sub/CON", P) == tmp_path / "sub" / "CON"


def test_a_trailing_backslash_means_contents_on_windows_only() -> None:
    assert lp.ends_with_separator("C:\\site\\", W) and lp.ends_with_separator("site/", W)
    assert not lp.ends_with_separator("site\\", P) and lp.ends_with_separator("site/", P)
    assert not lp.ends_with_separator("C:\\site", W)


def test_user_given_paths_are_left_alone_off_windows(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 200) / ("e" * 100)
    assert lp.for_os(Path("rel/file"), P) == Path("rel/file")
    assert lp.for_os(deep, P) == deep
    # On Windows the same long path would get the prefix; here its PureWindowsPath form shows the rule.
    assert lp.os_path("C:\\" + "d" * 200 + "\\" + "e" * 100, W).startswith("\\\\?\\C:\\")
