"""Run the doctor's checks in order, each only when what it depends on worked."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from keyless.doctor import identity as idc
from keyless.doctor import network, service
from keyless.doctor.result import CheckResult, Status, skip
from keyless.files.client import ShareClient
from keyless.files.retry import RetryPolicy
from keyless.files.urls import DEFAULT_SUFFIXES, PUBLIC_SUFFIX, share_url
from keyless.identity import ManagedIdentityCredential, decode_claims
from keyless.identity import RetryPolicy as IdentityRetry
from keyless.identity.sources.imds import ENV_HOST
from keyless.protocol import IMDS_HOST

# The doctor reports; it does not wait out outages: a couple of quick retries, then the verdict.
IDENTITY_RETRY = IdentityRetry(total=2, backoff_factor=0.2, total_deadline=10.0, connect=0)
FILES_RETRY = RetryPolicy(total=2, backoff_factor=0.2, backoff_max=1.0, retry_after_max=2.0)


@dataclass(frozen=True, slots=True)
class DoctorTarget:
    """What to check. Without ``account`` and ``share`` only the identity side is checked."""

    account: str | None = None
    share: str | None = None
    client_id: str | None = None
    object_id: str | None = None
    resource_id: str | None = None
    suffix: str = PUBLIC_SUFFIX
    emulator_files_url: str | None = None  # https://127.0.0.1:PORT of a keyless emulator
    emulator_imds_url: str | None = None
    ca_cert: str | None = None


def make_credential(target: DoctorTarget) -> ManagedIdentityCredential:
    selectors = {
        "client_id": target.client_id,
        "object_id": target.object_id,
        "resource_id": target.resource_id,
    }
    kwargs: dict[str, Any] = {k: v for k, v in selectors.items() if v}
    if target.emulator_imds_url:
        kwargs.update(source="imds", imds_host=target.emulator_imds_url)
    return ManagedIdentityCredential(retry=IDENTITY_RETRY, timeout=5.0, **kwargs)


def _imds_host(target: DoctorTarget) -> str:
    return target.emulator_imds_url or os.environ.get(ENV_HOST) or IMDS_HOST


def run_checks(
    target: DoctorTarget,
    *,
    credential: Any = None,
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Every check, in order. ``on_result`` sees each result as soon as it is known (live output)."""
    results: list[CheckResult] = []

    def add(result: CheckResult) -> CheckResult:
        results.append(result)
        if on_result is not None:
            on_result(result)
        return result

    try:
        credential = credential or make_credential(target)
    except Exception as exc:  # a bad selector combination, an unknown source
        from keyless.doctor.result import fail

        add(
            fail(
                "identity",
                f"{type(exc).__name__}: {exc}",
                "Pass at most one of --client-id, --object-id, --resource-id.",
            )
        )
        return results

    source = getattr(credential, "source_name", "")
    if source == "imds":
        add(network.check_imds(_imds_host(target)))
    else:
        add(skip("imds", f"token source is {source or 'not IMDS'}, not IMDS"))
    identity_result, token = idc.check_identity(credential)
    add(identity_result)
    if token is not None:
        add(idc.check_token(token))
    else:
        add(skip("token", "no token to inspect"))

    storage_checks = ("dns", "tls", "clock", "intent-header", "read", "write", "delete", "rbac")
    if not (target.account and target.share):
        for name in storage_checks:
            add(skip(name, "pass --account and --share to check the file share"))
        return results

    url = share_url(
        target.account, target.share, emulator_url=target.emulator_files_url, suffix=target.suffix
    )
    host = url.hostname
    port = urlsplit(f"//{url.host}").port or 443
    client = ShareClient(
        url,
        credential,
        ca_cert=target.ca_cert,
        emulator_url=target.emulator_files_url,
        suffixes=(target.suffix, *DEFAULT_SUFFIXES),
        retry=FILES_RETRY,
        concurrency=2,
    )
    try:
        dns = add(network.check_dns(host, is_emulator=bool(target.emulator_files_url)))
        if dns.status == Status.FAIL:
            for name in storage_checks[1:]:
                add(skip(name, "skipped: the name does not resolve"))
            return results
        tls = add(network.check_tls(host, port, ca_cert=target.ca_cert))
        if tls.status == Status.FAIL:
            for name in storage_checks[2:]:
                add(skip(name, "skipped: no verified TLS connection"))
            return results
        add(service.check_clock(client, authenticated=token is not None))
        if token is None:
            for name in storage_checks[3:]:
                add(skip(name, "skipped: no token"))
            return results
        add(service.check_intent_header(client, token.token))
        outcome = service.run_probes(client)
        for result in outcome.results:
            add(result)
        add(service.rbac_summary(outcome, _who(token.token)))
    finally:
        client.close()
    return results


def _who(token: str) -> str:
    claims = decode_claims(token)
    bits = [f"{k} {claims[k]}" for k in ("oid", "appid") if k in claims]
    return f"the identity ({', '.join(bits)})" if bits else "the identity"


def exit_code(results: list[CheckResult]) -> int:
    """0: nothing failed (warnings allowed); 1: at least one check failed."""
    return 1 if any(r.status == Status.FAIL for r in results) else 0
