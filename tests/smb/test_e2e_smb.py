"""``keyless smb`` end to end: a real emulator process, the real CLI in a subprocess, real MIT Kerberos.

What ``cifs.upcall`` does for the kernel is checked with GSSAPI: an initiator using the cache that
``smb set`` wrote establishes a context with an acceptor holding the emulator's keytab.
"""

from __future__ import annotations

import calendar
import json
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import urllib3

from keyless.testing import EmulatorProcess, start_emulator
from smb.smb_world import (
    CLIENT,
    agent,
    emulator_args,
    keyless,
    klist,
    krb5_env,
    server,
    ticket_ends,
    uri,
    world,
)

LIFETIME = 30


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with start_emulator(tmp_path_factory.mktemp("smb-e2e"), world(f"{LIFETIME}s")) as process:
        yield process


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return krb5_env(tmp_path, KEYLESS_AGENT_STATE=str(tmp_path / "state" / "agent.json"))


def smb(emu: EmulatorProcess, env: dict[str, str], *args: str, cache: str | None = None) -> Any:
    extra = ["--ccache", cache] if cache else []
    return keyless(["smb", *args, *emulator_args(emu), *extra], env)


def imds_token(emu: EmulatorProcess, resource: str) -> str:
    resp = urllib3.request("GET", f"{emu.imds_url}/metadata/identity/oauth2/token",
                           fields={"api-version": "2018-02-01", "resource": resource},
                           headers={"Metadata": "true"}, timeout=10)
    assert resp.status == 200, resp.data
    return str(json.loads(resp.data)["access_token"])


def test_set_klist_gssapi_clear(emu: EmulatorProcess, env: dict[str, str], tmp_path: Path,
                                handshake: Any) -> None:
    path = tmp_path / "krb5cc"
    cache = f"FILE:{path}"
    before = time.time()
    done = smb(emu, env, "set", uri("devaccount"), "--system", cache=cache)
    assert done.returncode == 0, done.stderr
    assert server("devaccount") in done.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    listing = klist(cache, env)
    assert f"Default principal: {CLIENT}" in listing
    assert server("devaccount") in listing
    (end,) = ticket_ends(cache).values()
    assert before + LIFETIME - 3 <= end <= time.time() + LIFETIME + 1  # the ticket follows the token
    # klist's own rendering of the times says the same (start and end LIFETIME seconds apart)
    stamps = re.findall(r"(\d\d/\d\d/\d\d\s+\d\d:\d\d:\d\d)", listing.split("Service principal", 1)[1])
    start_t, end_t = (time.mktime(time.strptime(s.split()[0] + " " + s.split()[1], "%m/%d/%y %H:%M:%S"))
                      for s in stamps[:2])
    assert abs(end_t - start_t - LIFETIME) <= 1

    assert handshake(cache, Path(emu.info["keytab"])) == CLIENT

    listed = json.loads(smb(emu, env, "list", "--json", cache=cache).stdout)
    assert [t["server"] for t in listed] == [server("devaccount")]

    cleared = smb(emu, env, "clear", uri("devaccount"), cache=cache)
    assert cleared.returncode == 0 and "removed" in cleared.stdout
    assert server("devaccount") not in klist(cache, env)


@pytest.mark.parametrize("how", ["imds-client-id", "client-id", "workload-identity"])
def test_identity_options(emu: EmulatorProcess, env: dict[str, str], tmp_path: Path, how: str,
                          handshake: Any) -> None:
    client_id = emu.identity("vm")["client_id"]
    cache = f"FILE:{tmp_path / 'cc'}"
    if how == "workload-identity":
        # tenant and authority host come from the emulator unless given; pass them as a pod would
        args = ["--workload-identity", "--client-id", client_id, "--tenant-id", emu.info["tenant_id"],
                "--authority-host", emu.info["authority_host"],
                "--token-file", emu.info["workload"][client_id]]
    else:
        args = [f"--{how}", client_id]
    done = smb(emu, env, "set", uri("devaccount"), *args, cache=cache)
    assert done.returncode == 0, done.stderr
    assert handshake(cache, Path(emu.info["keytab"])) == CLIENT
    registered = json.loads(Path(env["KEYLESS_AGENT_STATE"]).read_text())
    (entry,) = registered["endpoints"].values()
    expected = {"imds-client-id": "imds", "client-id": "client-id", "workload-identity": "workload"}[how]
    assert entry["source"]["kind"] == expected and entry["source"]["client_id"] == client_id


def test_refusals_through_the_process(emu: EmulatorProcess, env: dict[str, str], tmp_path: Path) -> None:
    cache = f"FILE:{tmp_path / 'cc'}"
    slash_token = imds_token(emu, "https://storage.azure.com/")
    cases = [
        (["set", uri("devaccount"), "--imds-client-id", emu.identity("contrib")["client_id"]], 3,
         "role_missing", "Storage File Data SMB MI Admin"),
        (["set", uri("nosmbacct"), "--system"], 3, "smb_oauth_disabled", "EnableSmbOAuth"),
        (["set", uri("devaccount"), "--imds-client-id", emu.identity("detached")["client_id"]], 4,
         "identity_not_attached", "not attached"),
        (["set", uri("devaccount"), slash_token], 5, "audience_trailing_slash", "no trailing slash"),
    ]

    def one(case: tuple[list[str], int, str, str]) -> tuple[Any, tuple[list[str], int, str, str]]:
        return smb(emu, env, *case[0], "--no-register", cache=cache), case

    with ThreadPoolExecutor(len(cases)) as pool:
        for done, (args, code, cause, text) in pool.map(one, cases):
            assert done.returncode == code, (args, done.stderr)
            assert f"error ({cause})" in done.stderr and text in done.stderr, done.stderr
            assert slash_token not in done.stderr + done.stdout
    assert not (tmp_path / "cc").exists() or ticket_ends(cache) == {}


def test_clock_skew_refused(emu: EmulatorProcess, env: dict[str, str], tmp_path: Path) -> None:
    cache = f"FILE:{tmp_path / 'cc'}"
    emu.set_clock_offset(-3600)  # the service's clock an hour behind: tickets this machine can't use
    try:
        done = smb(emu, env, "set", uri("devaccount"), "--system", "--no-register", cache=cache)
    finally:
        emu.set_clock_offset(0)
    assert done.returncode == 6, done.stderr
    assert "error (clock_skew)" in done.stderr and "ahead of" in done.stderr and "not stored" in done.stderr
    assert not (tmp_path / "cc").exists() or ticket_ends(cache) == {}


def test_endpoint_unreachable(env: dict[str, str], tmp_path: Path) -> None:
    with start_emulator(tmp_path, None, name="gone") as gone:
        token = imds_token(gone, "https://storage.azure.com")
        info = dict(gone.info)
    saved = tmp_path / "saved-emulator.json"  # the stopped emulator removed its own
    saved.write_text(json.dumps(info))
    done = keyless(["smb", "set", uri("devaccount"), token, "--emulator", str(saved), "--no-register",
                    "--ccache", f"FILE:{tmp_path / 'cc'}"], env)
    assert done.returncode == 7, done.stderr
    assert "error (endpoint_unreachable)" in done.stderr and "could not reach" in done.stderr
    assert token not in done.stderr + done.stdout


def test_concurrent_sets_never_corrupt(emu: EmulatorProcess, env: dict[str, str], tmp_path: Path) -> None:
    cache = f"FILE:{tmp_path / 'shared'}"
    accounts = ["devaccount", "otheracct", "thirdacct", "devaccount"] * 2
    procs = [subprocess.Popen([sys.executable, "-m", "keyless.cli.main", "smb", "set", uri(a), "--system",
                               *emulator_args(emu), "--ccache", cache],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for a in accounts]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    listing = klist(cache, env)
    for account in set(accounts):
        assert listing.count(server(account)) == 1, listing
    assert len(ticket_ends(cache)) == 3
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o600
    # the registrations were written concurrently too: one per server, the file intact and private
    state = Path(env["KEYLESS_AGENT_STATE"])
    assert len(json.loads(state.read_text())["endpoints"]) == 3
    assert stat.S_IMODE(state.stat().st_mode) == 0o600


def test_manual_token_registered_without_the_token(emu: EmulatorProcess, env: dict[str, str],
                                                   tmp_path: Path) -> None:
    token = imds_token(emu, "https://storage.azure.com")
    done = smb(emu, env, "set", uri("devaccount"), token, cache=f"FILE:{tmp_path / 'cc'}")
    assert done.returncode == 0, done.stderr
    assert "cannot be refreshed" in done.stderr
    state = Path(env["KEYLESS_AGENT_STATE"])
    assert token not in state.read_text()
    (entry,) = json.loads(state.read_text())["endpoints"].values()
    assert entry["source"] == {"kind": "manual"}
    status = agent(["status", "--json"], env)
    assert status.returncode == 0, status.stderr
    (row,) = json.loads(status.stdout)["endpoints"]
    assert row["refreshable"] is False and row["source"] == "manual"
    assert "not refreshed" in agent(["status"], env).stdout
    cleared = smb(emu, env, "clear", uri("devaccount"), cache=f"FILE:{tmp_path / 'cc'}")
    assert cleared.returncode == 0
    assert json.loads(state.read_text())["endpoints"] == {}


def test_drop_in_writes_the_user_uid_cache(emu: EmulatorProcess, env: dict[str, str], tmp_path: Path,
                                           handshake: Any) -> None:
    """azfilesauthmanager with USER_UID and no KRB5_CC_NAME: the ticket lands in FILE:/tmp/krb5cc_<USER_UID>,
    the cruid cache of mounts made for the real tool (src/azfilesauth.cpp:566-578); $KRB5CCNAME is ignored,
    as the real library never reads it. USER_UID 65534 (nobody) exists, so no account is created."""
    import pwd

    uid = 65534
    pwd.getpwuid(uid)
    path = Path(f"/tmp/krb5cc_{uid}")
    if path.exists():
        pytest.skip(f"{path} already exists on this machine; not touching another user's cache")
    config = tmp_path / "config.yaml"
    config.write_text(f"---\nUSER_UID: {uid}\nCURL_TOTAL_TIMEOUT: 30s\n")  # as the real tool reads it
    elsewhere = tmp_path / "krb5ccname"
    # --system means IMDS in the compatible command, whatever other identity the environment offers.
    run_env = dict(env, KRB5CCNAME=f"FILE:{elsewhere}", KEYLESS_ACCESS_TOKEN="not.a.token",
                   AZURE_FEDERATED_TOKEN_FILE=str(tmp_path / "absent-token"))
    manager = [str(Path(sys.executable).parent / "azfilesauthmanager")]
    try:
        done = subprocess.run([*manager, "set", uri("devaccount"), "--system", "--config", str(config),
                               *emulator_args(emu)], env=run_env, capture_output=True, text=True, timeout=60,
                              check=False)
        assert (done.returncode, done.stdout) == (0, ""), done.stderr
        assert not elsewhere.exists()
        info = path.stat()
        assert info.st_uid == uid and stat.S_IMODE(info.st_mode) == 0o600
        listing = klist(f"FILE:{path}", env)
        assert f"Default principal: {CLIENT}" in listing and server("devaccount") in listing
        assert handshake(f"FILE:{path}", Path(emu.info["keytab"])) == CLIENT
        # azfilesauthmanager list, byte for byte, against what MIT's klist says about the same ticket.
        utc = dict(run_env, TZ="UTC", LC_ALL="C")
        flagged = subprocess.run(["klist", "-f", "-c", f"FILE:{path}"], env=utc, capture_output=True,
                                 text=True, check=True).stdout
        stamp = r"(\d\d/\d\d/\d\d \d\d:\d\d:\d\d)"
        found = re.search(stamp + r"\s+" + stamp + r"\s+cifs/.*\n\s+renew until " + stamp + r", Flags: (\w+)",
                          flagged)
        assert found is not None, flagged
        start, end, renew, flags = found.groups()
        assert flags == "R"  # renewable, and nothing else, as the service's tickets

        def shown(text: str) -> str:
            epoch = calendar.timegm(time.strptime(text, "%m/%d/%y %H:%M:%S"))
            return f"{text} UTC (epoch: {epoch})"

        expected = (f"Credential 1:\n  Server: {server('devaccount')}\n  Client: AzureFileClient\n"
                    "  Realm: FILES.AZURE.STORAGE.MICROSOFT.COM\n  Ticket flags: 8388608\n"
                    f"  Ticket start time: {shown(start)}\n  Ticket end time:   {shown(end)}\n"
                    f"  Ticket renew till: {shown(renew)}\n")
        listed = subprocess.run([*manager, "list", "--config", str(config)], env=utc, capture_output=True,
                                text=True, timeout=60, check=False)
        assert (listed.returncode, listed.stdout) == (0, expected), listed.stderr
        cleared = subprocess.run([*manager, "clear", uri("devaccount"), "--config", str(config),
                                  *emulator_args(emu)], env=run_env, capture_output=True, text=True,
                                 timeout=60, check=False)
        assert (cleared.returncode, cleared.stdout) == (0, "azfilesauthmanager clear: 0\n"), cleared.stderr
        assert server("devaccount") not in klist(f"FILE:{path}", env)
    finally:
        path.unlink(missing_ok=True)
        Path(f"{path}.keyless.lock").unlink(missing_ok=True)


def test_doctor_smb_through_the_cli(emu: EmulatorProcess, env: dict[str, str], tmp_path: Path) -> None:
    """keyless doctor --smb against the emulator process: the exchange works, no ticket in the cruid cache."""
    config = tmp_path / "config.yaml"
    config.write_text(f"USER_UID: 0\nKRB5_CC_NAME: FILE:{tmp_path / 'cruid'}\n")
    done = keyless(["doctor", "--smb", uri("devaccount"), "--smb-config", str(config), "--json",
                    *emulator_args(emu)], env)
    assert done.returncode == 1, done.stderr
    found = {c["check"]: c for c in json.loads(done.stdout)["checks"]}
    assert found["smb-token"]["status"] == "OK" and found["smb-exchange"]["status"] == "OK"
    assert found["smb-cache"]["status"] == "FAIL" and "no ticket" in found["smb-cache"]["detail"]
    human = keyless(["doctor", "--smb", uri("nosmbacct"), "--smb-config", str(config), *emulator_args(emu)],
                    env)
    assert human.returncode == 1 and "SMB OAuth is off" in human.stdout


@pytest.mark.parametrize("command", ["keyless", "azfilesauthmanager"])
def test_workload_identity_with_resource(emu: EmulatorProcess, env: dict[str, str], tmp_path: Path,
                                         command: str) -> None:
    """set --resource (azfilesauth 1.0.11, sovereign clouds), given as its README suggests it: with the
    trailing slash, which keyless drops because the exchange refuses that audience."""
    client_id = emu.identity("vm")["client_id"]
    args = [uri("devaccount"), "--workload-identity", "--tenant-id", emu.info["tenant_id"],
            "--client-id", client_id, "--token-file", emu.info["workload"][client_id],
            "--authority-host", emu.info["authority_host"], "--resource", "https://storage.azure.com/"]
    cache = tmp_path / "cc"
    if command == "keyless":
        done = smb(emu, env, "set", *args, "--no-register", cache=f"FILE:{cache}")
    else:
        config = tmp_path / "config.yaml"
        config.write_text(f"USER_UID: 0\nKRB5_CC_NAME: FILE:{cache}\n")
        done = subprocess.run([str(Path(sys.executable).parent / "azfilesauthmanager"), "set", *args,
                               "--config", str(config), "--no-register", *emulator_args(emu)], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert server("devaccount") in klist(f"FILE:{cache}", env)
