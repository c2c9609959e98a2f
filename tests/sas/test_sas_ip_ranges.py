"""``keyless sas --ip``: Azure's ``sip`` is one IPv4 address or an inclusive IPv4 range ("Create a user
delegation SAS": "Only IPv4 addresses are supported"). Anything else is a usage error naming --ip, given
before the identity asks Azure for a delegation key, and nothing is printed on stdout."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from keyless.cli.main import cli
from keyless.testing import EmulatorProcess, start_emulator
from worlds import minter_world

CLIENT_ID = "bbbbbbbb-0000-0000-0000-0000000007a1"
WORLD = minter_world("ipacct", CLIENT_ID)


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with start_emulator(tmp_path_factory.mktemp("sas-ip"), WORLD) as started:
        yield started


@pytest.fixture(autouse=True)
def no_host_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)


def _sas(emu: EmulatorProcess, ip: str) -> tuple[int, str, str]:
    done = CliRunner().invoke(cli, ["sas", f"{emu.files_url}/ipacct/data/a.txt", "-p", "r", "--expiry", "1h",
                                    "--ip", ip, "--emulator", str(emu.data_dir), "--client-id", CLIENT_ID])
    return done.exit_code, done.stdout, done.stderr


def _key_requests(emu: EmulatorProcess) -> int:
    return sum(1 for r in emu.audit("StorageFileLogs") if r["OperationName"] == "GetUserDelegationKey")


@pytest.mark.parametrize("ip", [
    "10.0.0.9-10.0.0.1",  # start after end: a range that holds no address
    "300.1.1.1",  # an octet past 255
    "10.0.0.1-10.0.0.300",
    "1.2.3",
    "10.0.0.1-",
    "-10.0.0.1",
    "10.0.0.1-10.0.0.2-10.0.0.3",
    "::1",  # IPv6: Azure's sip is IPv4 only
    "01.2.3.4",  # a leading zero reads as octal to some parsers: refuse rather than guess
    "",
])
def test_impossible_ranges_are_usage_errors_before_any_request(emu: EmulatorProcess, ip: str) -> None:
    before = _key_requests(emu)
    code, out, err = _sas(emu, ip)
    assert code == 2, (ip, out, err)
    assert "--ip" in err and "Traceback" not in err and out == ""
    assert _key_requests(emu) == before


@pytest.mark.parametrize("ip", ["168.1.5.65", "168.1.5.60-168.1.5.70", "10.0.0.1-10.0.0.1", " 10.0.0.1 "])
def test_addresses_and_ordered_ranges_are_signed_as_given(emu: EmulatorProcess, ip: str) -> None:
    code, out, err = _sas(emu, ip)
    assert code == 0, err
    assert parse_qs(urlsplit(out.strip()).query)["sip"] == [ip.strip()]
