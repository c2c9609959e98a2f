"""Unit tests of the doctor's pure checks: DNS verdicts, token audience/expiry, rendering."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass

import click

from keyless.cli.doctor_render import render_row
from keyless.doctor import CheckResult, Status
from keyless.doctor.identity import check_token
from keyless.doctor.network import check_dns, classify_dns
from keyless.doctor.runner import exit_code


def test_private_endpoint_is_recognised() -> None:
    names = ["acct.privatelink.file.core.windows.net", "acct.file.core.windows.net"]
    result = classify_dns("acct.file.core.windows.net", names, ["10.1.2.3"])
    assert result.status == Status.OK and "private endpoint" in result.detail


def test_privatelink_cname_with_public_address_warns_about_the_zone_link() -> None:
    names = ["file.xyz.store.core.windows.net", "acct.privatelink.file.core.windows.net"]
    result = classify_dns("acct.file.core.windows.net", names, ["20.60.1.2"])
    assert result.status == Status.WARN and "privatelink.file.core.windows.net" in result.fix


def test_public_endpoint_and_ip_hosts() -> None:
    public = classify_dns("acct.file.core.windows.net", ["file.x.store.core.windows.net"], ["20.60.1.2"])
    assert public.status == Status.OK and "public endpoint" in public.detail
    emu = check_dns("127.0.0.1", is_emulator=True)
    assert emu.status == Status.OK and "emulator" in emu.detail


def test_unresolvable_name_fails_with_a_fix() -> None:
    def resolver(host: str) -> tuple[str, list[str], list[str]]:
        raise OSError("Name or service not known")

    result = check_dns("nope.file.core.windows.net", resolver=resolver)
    assert result.status == Status.FAIL and "DNS" in result.fix


@dataclass
class FakeToken:
    token: str
    expires_on: float


def _jwt(claims: dict[str, object]) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


def test_token_audience_and_expiry() -> None:
    now = time.time()
    good = check_token(
        FakeToken(_jwt({"aud": "https://storage.azure.com/", "oid": "o"}), now + 3600), now=now
    )
    assert good.status == Status.OK and "expires in 1h00m" in good.detail
    wrong = check_token(FakeToken(_jwt({"aud": "https://management.azure.com/"}), now + 3600), now=now)
    assert wrong.status == Status.FAIL and "https://storage.azure.com/" in wrong.fix
    expired = check_token(FakeToken(_jwt({"aud": "https://storage.azure.com"}), now - 5), now=now)
    assert expired.status == Status.FAIL


def test_render_row_and_exit_code() -> None:
    row = render_row(CheckResult("write", Status.FAIL, "refused", "Assign a role"))
    plain = click.unstyle(row)
    assert plain.startswith("write") and "FAIL" in plain and "fix: Assign a role" in plain
    assert exit_code([CheckResult("a", Status.WARN, "")]) == 0
    assert exit_code([CheckResult("a", Status.OK, ""), CheckResult("b", Status.FAIL, "")]) == 1
