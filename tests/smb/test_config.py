"""azfilesauth-compatible config parsing and cache selection."""

from __future__ import annotations

from pathlib import Path

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


@pytest.mark.parametrize(("text", "message"), [
    ("USER_UID: bob\n", "USER_UID must be a numeric uid"),
    ("CURL_TOTAL_TIMEOUT: soon\n", "CURL_TOTAL_TIMEOUT must be a number"),
    ("LOG_DESTINATION: journald\n", "LOG_DESTINATION is 'syslog' or 'file'"),
    ("LOG_DESTINATION: file\n", "LOG_FILE_PATH is not set"),
    ("just words\n", "expected 'KEY: value'"),
])
def test_bad_values_named(text: str, message: str) -> None:
    with pytest.raises(ConfigFileError, match=message):
        parse_config(text)


def test_explicit_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "c.yaml").write_text("USER_UID: 7\n")
    assert load_config(tmp_path / "c.yaml").user_uid == 7
