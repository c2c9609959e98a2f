"""The world the SMB end-to-end tests run in, and helpers to drive the real CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REALM = "FILES.AZURE.STORAGE.MICROSOFT.COM"
CLIENT = f"AzureFileClient@{REALM}"


def server(account: str) -> str:
    return f"cifs/{account}.file.core.windows.net@{REALM}"


def uri(account: str) -> str:
    return f"https://{account}.file.core.windows.net/"


def world(lifetime: str, accounts: tuple[str, ...] = ("devaccount", "otheracct", "thirdacct")) -> str:
    """SMB OAuth accounts the system identity may get tickets for, plus every refusal's cause."""
    parts = [f'token_lifetime = "{lifetime}"']
    for name in accounts:
        parts.append(f'[[accounts]]\nname = "{name}"\nsmb_oauth = true\nshares = ["demo"]')
    parts.append('[[accounts]]\nname = "nosmbacct"\nsmb_oauth = false\nshares = ["data"]')
    parts.append('[[identities]]\nname = "sys"\ntype = "system"')
    parts.append('[[identities]]\nname = "vm"\ntype = "user"')
    parts.append('[[identities]]\nname = "contrib"\ntype = "user"')  # REST role only
    parts.append('[[identities]]\nname = "detached"\ntype = "user"\nattached = false')
    for role in roles(accounts):
        parts.append(f'[[role_assignments]]\nrole = "{role["role"]}"\nprincipal = "{role["principal"]}"\n'
                     f'scope = "{role["scope"]}"')
    return "\n".join(parts) + "\n"


def roles(accounts: tuple[str, ...], without: tuple[str, ...] = ()) -> list[dict[str, str]]:
    smb = "Storage File Data SMB MI Admin"
    out = [{"role": smb, "principal": "sys", "scope": a}
           for a in (*accounts, "nosmbacct") if a not in without]
    out += [{"role": smb, "principal": p, "scope": "devaccount"} for p in ("vm", "detached")]
    out.append({"role": "Storage File Data Privileged Contributor", "principal": "contrib",
                "scope": "devaccount"})
    return out


def krb5_env(tmp: Path, **extra: str) -> dict[str, str]:
    conf = tmp / "krb5.conf"
    if not conf.exists():
        conf.write_text("[libdefaults]\n  dns_lookup_realm = false\n  dns_lookup_kdc = false\n"
                        "  rdns = false\n  dns_canonicalize_hostname = false\n")
    env = {k: v for k, v in os.environ.items() if k not in ("KRB5CCNAME", "KEYLESS_EMULATOR")}
    env.update(KRB5_CONFIG=str(conf), KRB5RCACHETYPE="none", PYTHONUNBUFFERED="1", **extra)
    return env


def keyless(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real ``keyless`` command, in its own process."""
    return subprocess.run([sys.executable, "-m", "keyless.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def klist(cache: str, env: dict[str, str]) -> str:
    return subprocess.run(["klist", "-c", cache], env=env, capture_output=True, text=True,
                          check=True).stdout


def ticket_ends(cache: str) -> dict[str, int]:
    from keyless.smb.ccache import list_tickets

    return {t.server: t.ticket_end_time for t in list_tickets(cache)}


def emulator_args(emu: Any) -> list[str]:
    return ["--emulator", str(Path(emu.info["data_dir"]) / "emulator.json")]


AGENT = [sys.executable, "-m", "keyless.cli.agent_cmd"]  # ``keyless agent``, whether or not it is registered


def agent(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AGENT, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
