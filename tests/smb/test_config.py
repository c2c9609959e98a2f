"""azfilesauth-compatible config parsing and cache selection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keyless.smb.config import SmbConfig, load_config, parse_config
from keyless.smb.errors import ConfigFileError


def test_parse_azfilesauth_file() -> None:
    cfg = parse_config(
        '# azfilesauth\nKRB5_CC_NAME: "FILE:/tmp/krb5cc_1001"\nUSER_UID: 1001\nLOG_DESTINATION: file\n'
        "LOG_FILE_PATH: /var/log/azfilesauth.log\nCURL_CONNECT_TIMEOUT: 5\nCURL_TOTAL_TIMEOUT: 20\n"
        "SOMETHING_ELSE: kept quiet\n"
    )
    assert cfg.krb5_cc_name == "FILE:/tmp/krb5cc_1001"
    assert cfg.user_uid == 1001 and cfg.cache_uid() == 1001
    assert (cfg.log_destination, cfg.log_file_path) == ("file", "/var/log/azfilesauth.log")
    assert (cfg.connect_timeout, cfg.total_timeout) == (5.0, 20.0)


def test_cache_name_precedence() -> None:
    assert SmbConfig(krb5_cc_name="KCM:").cache_name("FILE:/x", env={"KRB5CCNAME": "DIR:/y"}) == "FILE:/x"
    assert SmbConfig(krb5_cc_name="KCM:").cache_name(None, env={"KRB5CCNAME": "DIR:/y"}) == "KCM:"
    assert SmbConfig().cache_name(None, env={"KRB5CCNAME": "DIR:/y"}) == "DIR:/y"
    assert SmbConfig(user_uid=1234).cache_name(None, env={}) == "FILE:/tmp/krb5cc_1234"


# What AzFilesAuthenticator's read_config_value / get_timeout_from_config accept (src/azfilesauth.cpp:22-52,
# 151-161, 99-108): every one of these files works there, so it must work here, with a warning on stderr
# for what was ignored or read differently from how it is written.
@pytest.mark.parametrize(("text", "check", "warning"), [
    ("---\nUSER_UID: 7\n...\n", lambda c: c.user_uid == 7, None),
    ("LOG_DESTINATION: journald\n", lambda c: c.log_destination == "syslog", "LOG_DESTINATION"),
    ("LOG_DESTINATION: FILE\n",
     lambda c: (c.log_destination, c.log_file_path) == ("file", "/var/log/azfilesauth.log"), None),
    ("CURL_TOTAL_TIMEOUT: 30s\nCURL_CONNECT_TIMEOUT: 5 seconds\n",
     lambda c: (c.total_timeout, c.connect_timeout) == (30.0, 5.0), "CURL_TOTAL_TIMEOUT"),
    ("CURL_TOTAL_TIMEOUT: soon\nCURL_CONNECT_TIMEOUT: -3\n",
     lambda c: (c.total_timeout, c.connect_timeout) == (30.0, 10.0), "CURL_CONNECT_TIMEOUT"),
    ("KRB5_CC_NAME: FILE:/first\nKRB5_CC_NAME: FILE:/second\n", lambda c: c.krb5_cc_name == "FILE:/first",
     "KRB5_CC_NAME"),
    ("just words\nUSER_UID: 8\n", lambda c: c.user_uid == 8, "just words"),
    ("USER_UID: bob\n", lambda c: c.user_uid is None, "USER_UID"),
    ("ENVIRONMENT:\n  MSI_ENDPOINT: http://localhost:40342\n", lambda c: True, "MSI_ENDPOINT"),
])
def test_accepts_what_azfilesauth_accepts(text: str, check: Any, warning: str | None) -> None:
    cfg = parse_config(text)
    assert check(cfg), cfg
    if warning is None:
        assert cfg.warnings == ()
    else:
        assert any(warning in w for w in cfg.warnings), cfg.warnings


def test_warnings_reach_stderr(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from keyless.cli.smb_cmd import smb_group

    config = tmp_path / "c.yaml"
    config.write_text("---\nLOG_DESTINATION: journald\nKRB5_CC_NAME: FILE:" + str(tmp_path / "cc") + "\n")
    result = CliRunner().invoke(smb_group, ["list", "--config", str(config)])
    assert result.exit_code == 0 and result.stdout == ""
    assert "LOG_DESTINATION" in result.stderr and "syslog" in result.stderr


def test_explicit_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "c.yaml").write_text("USER_UID: 7\n")
    assert load_config(tmp_path / "c.yaml").user_uid == 7
