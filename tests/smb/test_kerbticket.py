"""The ticket endpoint through the real client: exchange, refusals with their causes, and the CLI."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from keyless.cli.smb_cmd import azfilesauthmanager_main, smb_group
from keyless.smb.errors import (
    AudienceTrailingSlash,
    ClockSkew,
    EndpointUnreachable,
    RoleMissing,
    SmbOAuthDisabled,
    TokenRejected,
)
from keyless.smb.exchange import emulator_endpoint, parse_endpoint, request_ticket

REALM = "FILES.AZURE.STORAGE.MICROSOFT.COM"
SERVER = f"cifs/devaccount.file.core.windows.net@{REALM}"


def test_exchange_success(ticket_server: Any) -> None:
    endpoint = emulator_endpoint("devaccount", ticket_server.url)
    reply = request_ticket(endpoint, ticket_server.token("vm"), ca_certs=ticket_server.ca_cert)
    assert str(reply.credential.server) == SERVER
    # the world's token_lifetime is 10 minutes: the ticket follows the token
    assert 590 <= reply.credential.endtime - reply.credential.starttime <= 600
    assert abs(reply.expiration - reply.credential.endtime) < 1
    assert abs(reply.clock_skew) < 5
    lines = [json.loads(x) for x in (ticket_server.ctx.data_dir / "audit.log").read_text().splitlines()]
    assert lines[-1]["OperationName"] == "GetKerberosTicket" and lines[-1]["Type"] == "StorageFileLogs"


def test_share_scoped_role_is_enough(ticket_server: Any) -> None:
    endpoint = emulator_endpoint("devaccount", ticket_server.url)
    request_ticket(endpoint, ticket_server.token("shareadmin"), ca_certs=ticket_server.ca_cert)


@pytest.mark.parametrize(("identity", "account", "resource", "error", "text"), [
    ("reader", "devaccount", "https://storage.azure.com", RoleMissing, "Storage File Data SMB MI Admin"),
    ("vm", "nosmbacct", "https://storage.azure.com", SmbOAuthDisabled, "EnableSmbOAuth"),
    ("vm", "devaccount", "https://management.azure.com", TokenRejected, "Audience validation failed"),
])
def test_refusals(ticket_server: Any, identity: str, account: str, resource: str, error: type[Exception],
                  text: str) -> None:
    endpoint = emulator_endpoint(account, ticket_server.url)
    token = ticket_server.token(identity, resource)
    with pytest.raises(error, match=text) as info:
        request_ticket(endpoint, token, ca_certs=ticket_server.ca_cert)
    assert token not in str(info.value)


def test_trailing_slash_refused_by_server_and_client(ticket_server: Any) -> None:
    token = ticket_server.token("vm", "https://storage.azure.com/")
    endpoint = emulator_endpoint("devaccount", ticket_server.url)
    with pytest.raises(AudienceTrailingSlash, match="no trailing slash"):
        request_ticket(endpoint, token, ca_certs=ticket_server.ca_cert)  # refused before sending
    import urllib3

    raw = urllib3.PoolManager(ca_certs=ticket_server.ca_cert).request(
        "POST", endpoint.exchange_url,
        headers={"Authorization": f"Bearer {token}", "x-ms-version": "2024-05-04"})
    assert raw.status == 401 and b"without a trailing slash" in raw.data


def test_expired_token_refused(ticket_server: Any) -> None:
    token = ticket_server.token("vm", lifetime=5)
    ticket_server.ctx.clock.offset = 60  # past exp, but within the REST path's 5-minute skew grace
    endpoint = emulator_endpoint("devaccount", ticket_server.url)
    # the server's Date is 60 s ahead: not enough to call it clock skew, so the refusal is the token's
    with pytest.raises(TokenRejected, match="expired"):
        request_ticket(endpoint, token, ca_certs=ticket_server.ca_cert)


def test_clock_skew_named(ticket_server: Any) -> None:
    ticket_server.ctx.clock.offset = 7200  # the service lives two hours ahead of this machine
    token = ticket_server.token("vm", lifetime=3600)  # fresh by the service's clock at 7200... minus
    ticket_server.ctx.clock.offset = 7200 + 3600 + 400  # ...and now expired there, valid here
    endpoint = emulator_endpoint("devaccount", ticket_server.url)
    # The reply's Date comes from the service's clock: the refusal names the skew and its direction.
    with pytest.raises(ClockSkew, match=r"1(1199|1200|1201) s behind the storage service"):
        request_ticket(endpoint, token, ca_certs=ticket_server.ca_cert)


def test_clock_skew_from_date_header(ticket_server: Any) -> None:
    token = ticket_server.token("vm", lifetime=5)
    ticket_server.ctx.clock.offset = 60
    endpoint = emulator_endpoint("devaccount", ticket_server.url)
    # The reply's Date is real time; a local clock an hour slow makes the refusal a clock problem.
    with pytest.raises(ClockSkew, match="behind"):
        request_ticket(endpoint, token, ca_certs=ticket_server.ca_cert, clock=lambda: time.time() - 3600)


def test_unreachable_endpoint() -> None:
    endpoint = emulator_endpoint("devaccount", "https://127.0.0.1:9")
    with pytest.raises(EndpointUnreachable, match="could not reach"):
        request_ticket(endpoint, "a.b.c", connect_timeout=2, total_timeout=3)


def test_parse_endpoint_forms() -> None:
    assert parse_endpoint("https://acct01.file.core.windows.net/").account == "acct01"
    assert parse_endpoint("acct01.file.core.windows.net").exchange_url == \
        "https://acct01.file.core.windows.net/?restype=service&comp=kerbticket"
    private = parse_endpoint("https://acct01.privatelink.file.core.windows.net")
    assert private.private_link and str(private.server) == f"cifs/acct01.file.core.windows.net@{REALM}"
    from keyless.smb.errors import InvalidEndpoint

    with pytest.raises(InvalidEndpoint, match="https"):
        parse_endpoint("http://acct01.file.core.windows.net")
    with pytest.raises(InvalidEndpoint, match="IP address"):
        parse_endpoint("https://192.0.2.7")


# --- CLI ---------------------------------------------------------------------------------------------


def run(args: list[str]) -> Any:
    return CliRunner().invoke(smb_group, args, catch_exceptions=False)


def test_cli_set_list_clear(ticket_server: Any, tmp_path: Path, handshake: Any) -> None:
    cache = f"FILE:{tmp_path / 'krb5cc'}"
    common = ["--emulator", str(ticket_server.emulator_json), "--ccache", cache]
    token = ticket_server.token("vm")
    result = run(["set", "https://devaccount.file.core.windows.net", token, *common])
    assert result.exit_code == 0, result.output
    assert token not in result.output and SERVER in result.output
    assert stat.S_IMODE((tmp_path / "krb5cc").stat().st_mode) == 0o600
    klist = shutil.which("klist")
    if klist:
        out = subprocess.run([klist, "-c", cache], capture_output=True, text=True, check=True).stdout
        assert f"Default principal: AzureFileClient@{REALM}" in out and SERVER in out
    assert handshake(cache, ticket_server.keytab) == f"AzureFileClient@{REALM}"

    listed = run(["list", "--json", "--ccache", cache])
    (entry,) = json.loads(listed.output)
    assert set(entry) == {"server", "client", "realm", "ticket_flags", "ticket_start_time",
                          "ticket_end_time", "ticket_renew_till"}
    assert entry["server"] == SERVER and entry["client"] == "AzureFileClient" and entry["realm"] == REALM

    cleared = run(["clear", "https://devaccount.file.core.windows.net", *common])
    assert cleared.exit_code == 0 and "removed" in cleared.output
    assert json.loads(run(["list", "--json", "--ccache", cache]).output) == []


def test_cli_refusal_exit_code_and_message(ticket_server: Any, tmp_path: Path) -> None:
    result = CliRunner().invoke(smb_group, [
        "set", "devaccount.file.core.windows.net", ticket_server.token("reader"),
        "--emulator", str(ticket_server.emulator_json), "--ccache", f"FILE:{tmp_path / 'cc'}"])
    assert result.exit_code == RoleMissing.exit_code
    assert "role_missing" in result.output and "SMB MI Admin" in result.output


def test_azfilesauthmanager_compat(ticket_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    cache = f"FILE:{tmp_path / 'cc'}"
    config = tmp_path / "config.yaml"
    config.write_text(f"KRB5_CC_NAME: {cache}\nUSER_UID: 0\n")
    monkeypatch.setenv("KEYLESS_EMULATOR", str(ticket_server.emulator_json))
    with pytest.raises(SystemExit) as done:
        azfilesauthmanager_main(["set", "https://devaccount.file.core.windows.net",
                                 ticket_server.token("vm"), "--config", str(config)])
    assert done.value.code == 0
    assert capsys.readouterr().out == ""  # the real tool's set prints nothing on success
    with pytest.raises(SystemExit) as done:
        azfilesauthmanager_main(["list", "--json", "--config", str(config)])
    assert done.value.code == 0
    assert json.loads(capsys.readouterr().out)[0]["server"] == SERVER
    with pytest.raises(SystemExit) as done:
        azfilesauthmanager_main(["set", "https://devaccount.file.core.windows.net",
                                 ticket_server.token("reader"), "--config", str(config)])
    assert done.value.code == 1
    with pytest.raises(SystemExit) as done:
        azfilesauthmanager_main([])
    assert done.value.code == 1


def test_mount_dry_run(tmp_path: Path) -> None:
    result = run(["mount", "//acct01.privatelink.file.core.windows.net/share", "/mnt/x", "--dry-run",
                  "--uid", "1000"])
    assert result.exit_code == 0
    assert ("mount -t cifs //acct01.file.core.windows.net/share /mnt/x -o sec=krb5,cruid=1000,dir_mode=0755,"
            "file_mode=0755,serverino,nosharesock,mfsymlinks,actimeo=30") in result.output
    assert "privatelink" in result.output and "126" in result.output
