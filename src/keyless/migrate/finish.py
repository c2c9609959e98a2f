"""``keyless migrate finish``: the last step of the rollout, disallowing Shared Key on a storage account.

1. the report's verdict over the given ``StorageFileLogs`` exports, for this account (no key-signed
   request in the window); refused unless ready, or forced;
2. ``PATCH …/storageAccounts/{name}?api-version=2023-05-01`` with ``{"properties":
   {"allowSharedKeyAccess": false}}`` through Azure Resource Manager, with the managed identity's token for
   ``https://management.azure.com`` (the equivalent of ``Set-AzStorageAccount -AllowSharedKeyAccess
   $false``; Microsoft's "Prevent Shared Key authorization for an Azure Storage account");
3. verification: a ``GET`` shows ``allowSharedKeyAccess`` false, and, when an account key is at hand, a
   Shared Key probe (List Shares) is refused with 403 ``KeyBasedAuthenticationNotPermitted``.

The token goes only to Resource Manager (``management.azure.com``) or to the emulator's Resource Manager
address named in ``emulator.json``. Neither the token nor the key ever reaches the output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

import urllib3

from keyless import protocol as p
from keyless.files.auth import SharedKeyAuth

ARM_ENDPOINT = "https://management.azure.com"
ARM_SCOPE = "https://management.azure.com/.default"
API_VERSION = "2023-05-01"
PROBE_VERSION = p.CURRENT_VERSION


class FinishError(Exception):
    """A step failed; ``step`` says which (verdict, patch, verify) and the message what to do."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


@dataclass
class Outcome:
    account: str
    resource_id: str
    verdict: str
    forced: bool = False
    patched: bool = False
    allow_shared_key_after: bool | None = None
    probe: str = "not run: no account key at hand"
    steps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"account": self.account, "resource_id": self.resource_id, "verdict": self.verdict,
                "forced": self.forced, "patched": self.patched,
                "allow_shared_key_after": self.allow_shared_key_after, "probe": self.probe,
                "steps": self.steps}


def account_resource_id(account: str, subscription: str | None, resource_group: str | None,
                        resource_id: str | None) -> str:
    if resource_id:
        parts = resource_id.strip("/").split("/")
        if (len(parts) != 8 or parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups"
                or parts[4].lower() != "providers" or parts[5].lower() != "microsoft.storage"
                or parts[6].lower() != "storageaccounts"):
            raise FinishError("input", f"--resource-id {resource_id!r}: expected /subscriptions/<id>/"
                                       "resourceGroups/<group>/providers/Microsoft.Storage/storageAccounts/<name>")
        if parts[7] != account:
            raise FinishError("input", f"--resource-id names account {parts[7]!r}, not --account {account!r}")
        return "/" + "/".join(parts)
    if not subscription or not resource_group:
        raise FinishError("input", "give --subscription and --resource-group, or --resource-id")
    return (f"/subscriptions/{subscription}/resourceGroups/{resource_group}"
            f"/providers/Microsoft.Storage/storageAccounts/{account}")


def check_verdict(account: str, logs: list[Path], *, since: Any = None, force: bool) -> tuple[bool, str]:
    """(ready, why) for ``account`` over ``logs``, as ``keyless migrate report`` decides it."""
    if not logs:
        return False, "no logs given: the verdict cannot be checked (pass --log with StorageFileLogs exports)"
    from keyless.migrate.parallel import build_report

    report, stats = build_report(logs, since=since, until=None, workers=1)
    data = report.to_dict(stats)
    if data["input"]["unreadable"]:
        return False, data["verdict"]
    info = data["accounts"].get(account)
    if info is None:
        return False, (f"unknown: no request for account {account!r} in the logs; collect logs over a period "
                       "of normal use")
    callers = [c for c in info["non_identity_callers"] if c["key_signed_requests"]]
    if callers:
        who = "; ".join(f"{c['caller_ip']} ({c['user_agent']})" for c in callers[:5])
        return False, f"not ready: {info['key_signed_requests']} key-signed request(s) from {who}"
    return True, "ready: no key-signed request (Shared Key or SAS signed with a key) in the window"


class ArmClient:
    """GET and PATCH of one storage account through Resource Manager with a bearer credential."""

    def __init__(self, credential: Any, endpoint: str = ARM_ENDPOINT, ca_cert: str | None = None) -> None:
        self.credential = credential
        self.endpoint = endpoint.rstrip("/")
        self.http = urllib3.PoolManager(ca_certs=ca_cert, cert_reqs="CERT_REQUIRED", retries=False,
                                        timeout=urllib3.Timeout(connect=10, read=60))

    def _request(self, method: str, resource_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        token = self.credential.get_token(ARM_SCOPE).token
        url = f"{self.endpoint}{resource_id}?api-version={API_VERSION}"
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        payload = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            payload = json.dumps(body).encode()
        try:
            resp = self.http.request(method, url, body=payload, headers=headers, redirect=False)
        except urllib3.exceptions.HTTPError as exc:
            raise FinishError(
                "arm", f"{method} {url}: no reply from Resource Manager ({type(exc).__name__})") from None
        try:
            doc = json.loads(resp.data or b"{}")
        except ValueError:
            doc = {}
        if resp.status >= 300:
            error = doc.get("error", {}) if isinstance(doc, dict) else {}
            code = error.get("code", "") if isinstance(error, dict) else ""
            message = error.get("message", "") if isinstance(error, dict) else ""
            hint = ""
            if code == "AuthorizationFailed":
                hint = (" Grant the identity Storage Account Contributor (or Contributor/Owner) on the "
                        "account: a data role does not allow changing the account.")
            raise FinishError("arm", f"{method} {resource_id}: HTTP {resp.status} {code}: {message}{hint}")
        return doc if isinstance(doc, dict) else {}

    def get_account(self, resource_id: str) -> dict[str, Any]:
        return self._request("GET", resource_id)

    def disallow_shared_key(self, resource_id: str) -> dict[str, Any]:
        return self._request("PATCH", resource_id, {"properties": {"allowSharedKeyAccess": False}})


def probe_shared_key(account_url: str, account: str, key: str, ca_cert: str | None) -> str:
    """List Shares signed with the key: ``refused`` (403 KeyBasedAuthenticationNotPermitted) or what came."""
    url = f"{account_url.rstrip('/')}/?comp=list&maxresults=1"
    headers = {p.H_VERSION: PROBE_VERSION, p.H_DATE: formatdate(usegmt=True)}
    SharedKeyAuth(account, key).authorize("GET", url, headers)
    http = urllib3.PoolManager(ca_certs=ca_cert, cert_reqs="CERT_REQUIRED", retries=False,
                               timeout=urllib3.Timeout(connect=10, read=30))
    try:
        resp = http.request("GET", url, headers=headers, redirect=False)
    except urllib3.exceptions.HTTPError as exc:
        return f"no reply ({type(exc).__name__})"
    code = resp.headers.get("x-ms-error-code", "")
    if resp.status == 403 and code == p.E_KEY_NOT_PERMITTED:
        return "refused"
    return f"HTTP {resp.status} {code}".strip()


def finish(account: str, resource_id: str, arm: ArmClient, *, logs: list[Path], force: bool,
           since: Any = None, probe: tuple[str, str, str | None] | None = None) -> Outcome:
    """Run the three steps. ``probe`` is (account URL, key, CA file) when a key is at hand."""
    ready, why = check_verdict(account, logs, since=since, force=force)
    outcome = Outcome(account, resource_id, why, forced=not ready and force)
    outcome.steps.append(f"verdict: {why}")
    if not ready and not force:
        raise FinishError("verdict", f"{why}. Move those callers first, or pass --force to switch anyway.")
    arm.disallow_shared_key(resource_id)
    outcome.patched = True
    outcome.steps.append("patched: allowSharedKeyAccess=false")
    after = arm.get_account(resource_id).get("properties", {}).get("allowSharedKeyAccess")
    outcome.allow_shared_key_after = after if isinstance(after, bool) else None
    if after is not False:
        raise FinishError("verify", f"Resource Manager still shows allowSharedKeyAccess={after!r} after the "
                                    "patch; check the account in the portal and run finish again")
    outcome.steps.append("verified: Resource Manager shows allowSharedKeyAccess=false")
    if probe is not None:
        outcome.probe = probe_shared_key(probe[0], account, probe[1], probe[2])
        if outcome.probe != "refused":
            raise FinishError("verify", f"a Shared Key request was not refused ({outcome.probe}); the change "
                                        "may still be propagating: retry the probe in a minute")
        outcome.steps.append("verified: a Shared Key request is refused (KeyBasedAuthenticationNotPermitted)")
    return outcome
