"""keyless.identity against a real emulator process: every source, every IMDS failure script, refresh
windows with short-lived tokens, the 64-thread herd and the cross-process cache, counted in the
emulator's audit log, and the credential inside the official azure-storage-file-share SDK.

Retries sleep on a FakeClock (70 s of 410 take well under a second); the emulator runs for real.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from identity.identity_fakes import shared_cache_worker
from keyless.emulator_info import INFO_FILE, load_emulator_info
from keyless.identity import (
    DEFAULT_RETRY,
    ArcKeyFileError,
    FakeClock,
    IdentityNotFound,
    ManagedIdentityCredential,
    SystemClock,
    TokenRequestFailed,
    decode_claims,
)
from keyless.testing import EmulatorProcess, start_emulator

REST = "https://storage.azure.com/.default"

CONFIG = """
token_lifetime = "15m"

[[accounts]]
name = "devaccount"
smb_oauth = true
shares = ["demo"]

[[identities]]
name = "vm"
type = "system"

[[identities]]
name = "worker"
type = "user"

[[identities]]
name = "detached"
type = "user"
attached = false

[[role_assignments]]
role = "Storage File Data Privileged Contributor"
principal = "vm"
scope = "devaccount/demo"
"""


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with start_emulator(tmp_path_factory.mktemp("identity-e2e"), CONFIG) as process:
        yield process


@pytest.fixture(autouse=True)
def no_faults(emu: EmulatorProcess) -> Iterator[None]:
    emu.set_faults([])
    yield
    emu.set_faults([])


def issued(emu: EmulatorProcess, source: str = "imds") -> list[dict[str, Any]]:
    return [r for r in emu.audit("TokenIssuance") if r.get("source") == source]


def imds(emu: EmulatorProcess, clock: Any = None, **kw: Any) -> ManagedIdentityCredential:
    return ManagedIdentityCredential(source="imds", imds_host=emu.imds_url, env={},
                                     clock=clock or FakeClock(time.time()), **kw)


def ident(emu: EmulatorProcess, name: str) -> dict[str, Any]:
    return emu.identity(name)


# --- sources ---------------------------------------------------------------------------------------------


def test_imds_system_and_every_user_selector(emu: EmulatorProcess) -> None:
    vm, worker = ident(emu, "vm"), ident(emu, "worker")
    claims = decode_claims(imds(emu).get_token(REST).token)
    assert claims["oid"] == vm["object_id"] and claims["aud"] == "https://storage.azure.com/"
    for kw in ({"client_id": worker["client_id"]}, {"object_id": worker["object_id"]},
               {"resource_id": worker["resource_id"]}):
        cred = imds(emu, **kw)
        assert decode_claims(cred.get_token(REST).token)["oid"] == worker["object_id"]
    smb = imds(emu).token("smb")
    assert decode_claims(smb.token)["aud"] == "https://storage.azure.com"


def test_imds_identity_not_found(emu: EmulatorProcess) -> None:
    detached = ident(emu, "detached")
    before = len(issued(emu))
    with pytest.raises(IdentityNotFound) as info:
        imds(emu, client_id=detached["client_id"]).get_token(REST)
    assert f"client_id={detached['client_id']}" in str(info.value)
    assert len(issued(emu)) == before + 1  # 400 is never retried


def test_app_service(emu: EmulatorProcess) -> None:
    env = dict(emu.info["app_service"])
    cred = ManagedIdentityCredential(env=env)
    assert cred.source_name == "appservice"
    tok = cred.token()
    assert decode_claims(tok.token)["oid"] == ident(emu, "vm")["object_id"]
    assert tok.remaining(time.time()) == pytest.approx(900, abs=30)  # expires_on only, from the reply
    user = ManagedIdentityCredential(env=env, client_id=ident(emu, "worker")["client_id"])
    assert decode_claims(user.token().token)["oid"] == ident(emu, "worker")["object_id"]
    with pytest.raises(IdentityNotFound):
        ManagedIdentityCredential(env=env, client_id=ident(emu, "detached")["client_id"]).token()


def test_arc_with_the_key_directory_override(emu: EmulatorProcess) -> None:
    arc = emu.info["arc"]
    env = {"IDENTITY_ENDPOINT": arc["IDENTITY_ENDPOINT"], "IMDS_ENDPOINT": arc["IMDS_ENDPOINT"]}
    # Without the override the Arc agent's key-directory check (as azure-identity makes it) refuses the
    # emulator's key file.
    with pytest.raises(ArcKeyFileError, match="outside the agent's key directory"):
        ManagedIdentityCredential(env=env).token()
    cred = ManagedIdentityCredential(env={**env, "KEYLESS_ARC_KEY_DIR": arc["key_dir"]})
    assert cred.source_name == "arc"
    assert decode_claims(cred.token().token)["oid"] == ident(emu, "vm")["object_id"]


def test_workload_identity_rereads_the_rotated_file(emu: EmulatorProcess, tmp_path: Path) -> None:
    worker = ident(emu, "worker")
    original = Path(emu.info["workload"][worker["client_id"]])
    file = tmp_path / "token"
    file.write_text(original.read_text())
    env = {"AZURE_FEDERATED_TOKEN_FILE": str(file), "AZURE_CLIENT_ID": worker["client_id"],
           "AZURE_TENANT_ID": emu.info["tenant_id"], "AZURE_AUTHORITY_HOST": emu.info["authority_host"]}
    cred = ManagedIdentityCredential(env=env, ca_certs=emu.ca_cert)
    assert cred.source_name == "workload"
    assert decode_claims(cred.token().token)["oid"] == worker["object_id"]
    # Rotation: a garbage assertion must now be read (and refused), proving the file is re-read.
    file.write_text("not-a-jwt-at-all")
    with pytest.raises(TokenRequestFailed):
        cred.token(force_refresh=True)
    file.write_text(original.read_text())
    assert cred.token(force_refresh=True).token


# --- IMDS failure scripts --------------------------------------------------------------------------------


def test_404_then_token(emu: EmulatorProcess) -> None:
    emu.set_faults([{"target": "imds", "action": "status", "status": 404, "count": 2}])
    clock = FakeClock(time.time())
    assert imds(emu, clock).get_token(REST).token
    assert len(clock.sleeps) == 2


def test_410_for_70_seconds_of_fake_time(emu: EmulatorProcess) -> None:
    emu.set_faults([{"target": "imds", "action": "status", "status": 410, "count": 1000}])
    clock = FakeClock(time.time())
    start = clock.now()
    with pytest.raises(TokenRequestFailed) as info:
        imds(emu, clock).get_token(REST)
    assert info.value.status == 410
    assert clock.now() - start == pytest.approx(70.0)


def test_410_ending_within_the_window(emu: EmulatorProcess) -> None:
    emu.set_faults([{"target": "imds", "action": "status", "status": 410, "count": 7}])
    clock = FakeClock(time.time())
    assert imds(emu, clock).get_token(REST).token
    assert len(clock.sleeps) == 7


def test_429_with_retry_after(emu: EmulatorProcess) -> None:
    emu.set_faults([{"target": "imds", "action": "status", "status": 429, "count": 2, "retry_after": 2}])
    clock = FakeClock(time.time())
    assert imds(emu, clock).get_token(REST).token
    assert clock.sleeps == [2.0, 2.0]


def test_500_exhausts_retries(emu: EmulatorProcess) -> None:
    emu.set_faults([{"target": "imds", "action": "status", "status": 500, "count": 100}])
    with pytest.raises(TokenRequestFailed) as info:
        imds(emu).get_token(REST)
    assert info.value.status == 500 and info.value.attempts == DEFAULT_RETRY.total + 1


def test_timeout_then_token(emu: EmulatorProcess) -> None:
    emu.set_faults([{"target": "imds", "action": "timeout", "seconds": 3, "count": 1}])
    clock = FakeClock(time.time())
    before = len(issued(emu))
    started = time.monotonic()
    assert imds(emu, clock, timeout=0.3).get_token(REST).token
    assert len(clock.sleeps) == 1
    assert time.monotonic() - started < 2.5  # the client gave up on the hung request, then retried
    # The emulator audits the hung request only when its fault ends (it drops the connection then): wait
    # for both lines (the hung one and the retry) so later tests that count issuances do not see it land
    # in their window.
    deadline = time.monotonic() + 10
    while len(issued(emu)) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.1)


# --- refresh windows with short-lived (15 min) tokens --------------------------------------------------


def test_refresh_windows_with_short_tokens(emu: EmulatorProcess) -> None:
    clock = FakeClock(time.time())
    cred = imds(emu, clock)
    before = len(issued(emu))
    first = cred.get_token(REST)
    assert first.expires_on - clock.now() == pytest.approx(900, abs=5)
    clock.advance(290)  # before the advisory point (10 min before expiry): cached
    assert cred.get_token(REST) is first
    assert len(issued(emu)) == before + 1
    clock.advance(20)  # advisory window: one refresh
    second = cred.get_token(REST)
    assert second.token != first.token
    assert len(issued(emu)) == before + 2
    # The refresh fails in the next advisory window: the old token stays in use, with back-off.
    emu.set_faults([{"target": "imds", "action": "status", "status": 503, "count": 1000}])
    clock.advance(310)
    assert cred.get_token(REST).token == second.token
    failed_at = len(issued(emu))
    assert cred.get_token(REST).token == second.token  # backing off: no new request
    assert len(issued(emu)) == failed_at
    emu.set_faults([])
    clock.advance(300)  # mandatory window (< 5 min left): callers wait for the new token
    third = cred.get_token(REST)
    assert third.token != second.token


# --- the herd and the cross-process cache ---------------------------------------------------------------


def test_herd_64_threads_one_imds_request(emu: EmulatorProcess) -> None:
    # A short delay keeps the first request in flight while all 64 threads arrive.
    emu.set_faults([{"target": "imds", "action": "delay", "seconds": 0.3, "count": 1}])
    cred = imds(emu, SystemClock())
    before = len(issued(emu))
    barrier = threading.Barrier(64)
    got: list[str] = []

    def worker() -> None:
        barrier.wait(10)
        got.append(cred.get_token(REST).token)

    threads = [threading.Thread(target=worker) for _ in range(64)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(20)
    assert len(got) == 64 and len(set(got)) == 1
    assert len(issued(emu)) == before + 1


def test_cross_process_cache_one_imds_request(emu: EmulatorProcess, tmp_path: Path) -> None:
    emu.set_faults([{"target": "imds", "action": "delay", "seconds": 0.3, "count": 1}])
    ctx = multiprocessing.get_context("spawn")
    n = 6
    barrier = ctx.Barrier(n)
    out = ctx.Queue()
    cache_dir = tmp_path / "tokens"
    before = len(issued(emu))
    procs = [ctx.Process(target=shared_cache_worker, args=(emu.imds_url, str(cache_dir), barrier, out))
             for _ in range(n)]
    for p in procs:
        p.start()
    digests = [out.get(timeout=60) for _ in range(n)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len(set(digests)) == 1
    assert len(issued(emu)) == before + 1
    files = list(cache_dir.iterdir())
    assert all((f.stat().st_mode & 0o777) == 0o600 for f in files)
    assert (cache_dir.stat().st_mode & 0o777) == 0o700


# --- the official SDK --------------------------------------------------------------------------------------


def test_inside_the_official_file_share_sdk(emu: EmulatorProcess) -> None:
    import azure.storage.fileshare as storage
    cred = imds(emu, SystemClock())
    share = storage.ShareClient(account_url=emu.account()["url"], share_name="demo", credential=cred,
                                token_intent="backup", connection_verify=emu.ca_cert)
    name = f"keyless-identity-{time.time_ns()}"
    directory = share.get_directory_client(name)
    directory.create_directory()
    directory.upload_file("hello.txt", b"hello from keyless.identity")
    got = share.get_file_client(f"{name}/hello.txt").download_file().readall()
    assert got == b"hello from keyless.identity"
    share.get_file_client(f"{name}/hello.txt").delete_file()
    directory.delete_directory()


# --- keyless token ------------------------------------------------------------------------------------


def test_keyless_token_command(emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    import json as jsonlib

    from click.testing import CliRunner

    from keyless.cli.token_cmd import token_command

    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("KEYLESS_TOKEN_CACHE_DIR", raising=False)
    runner = CliRunner()
    out = runner.invoke(token_command, ["--emulator", str(emu.data_dir)])
    assert out.exit_code == 0, out.output
    vm = ident(emu, "vm")
    assert vm["object_id"] in out.output and "left)" in out.output
    assert "eyJ" not in out.output  # no token without --raw

    out = runner.invoke(token_command, ["--resource", "smb", "--json", "--client-id",
                                        ident(emu, "worker")["client_id"]],
                        env={"KEYLESS_EMULATOR": str(emu.data_dir / "emulator.json")})
    report = jsonlib.loads(out.output)
    assert report["audience"] == "https://storage.azure.com" and "access_token" not in report
    assert report["oid"] == ident(emu, "worker")["object_id"]

    for source in ("appservice", "arc", "workload"):
        args = ["--emulator", str(emu.data_dir), "--source", source, "--json"]
        if source == "workload":
            args += ["--client-id", ident(emu, "worker")["client_id"]]
        out = runner.invoke(token_command, args)
        assert out.exit_code == 0, out.output
        assert jsonlib.loads(out.output)["source"] == source

    out = runner.invoke(token_command, ["--emulator", str(emu.data_dir), "--raw"])
    assert decode_claims(out.output.strip())["oid"] == vm["object_id"]

    out = runner.invoke(token_command, ["--emulator", str(emu.data_dir), "--client-id",
                                        ident(emu, "detached")["client_id"]])
    assert out.exit_code == 3 and "client_id=" in out.output


def test_async_twin_inside_the_async_sdk(emu: EmulatorProcess) -> None:
    import asyncio

    import azure.storage.fileshare.aio as storage_aio

    from keyless.identity import aio

    async def run() -> bytes:
        async with (
            aio.ManagedIdentityCredential(source="imds", imds_host=emu.imds_url, env={}) as cred,
            storage_aio.ShareClient(account_url=emu.account()["url"], share_name="demo",
                                    credential=cred, token_intent="backup",
                                    connection_verify=emu.ca_cert) as share,
        ):
            name = f"keyless-aio-{time.time_ns()}.txt"
            file = share.get_file_client(name)
            await file.upload_file(b"async hello")
            data: bytes = await (await file.download_file()).readall()
            await file.delete_file()
            return data

    assert asyncio.run(run()) == b"async hello"


def test_the_emulator_writes_exactly_the_shared_emulator_json_format(emu: EmulatorProcess) -> None:
    """The writer (the emulator) and the readers share one definition: every field it writes is read back
    and written again unchanged, and nothing is left over."""
    path = Path(emu.info["data_dir"]) / INFO_FILE
    written = json.loads(path.read_text())
    assert load_emulator_info(path).to_json() == written
