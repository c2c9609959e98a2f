"""Shared pieces of the HTTP token sources (App Service, Arc): error mapping with actionable messages."""

from __future__ import annotations

from keyless.identity.errors import IdentityNotFound, IdentityUnavailable, TokenRequestFailed
from keyless.identity.sources.base import Outcome, Selector, error_fields


def map_failure(outcome: Outcome, *, source: str, label: str, endpoint: str, selector: Selector,
                resource: str, not_found_hint: str, unavailable_hint: str) -> Exception:
    tries = f"{outcome.attempts} attempt{'s' if outcome.attempts != 1 else ''}"
    if outcome.response is None:
        err = outcome.error
        if err is not None and err.kind == "connect":
            return IdentityUnavailable(
                f"{label} endpoint {endpoint} is not reachable ({err}); {unavailable_hint}")
        return TokenRequestFailed(f"{label} endpoint {endpoint} did not answer ({err}; {tries}); retry later",
                                  source=source, attempts=outcome.attempts)
    resp = outcome.response
    code, desc = error_fields(resp)
    detail = f": {desc}" if desc else ""
    if resp.status in (400, 404) and not _transient_404(resp.status, desc):
        return IdentityNotFound(
            f"{label} has no managed identity with {selector.describe()} (HTTP {resp.status}{detail}); "
            f"{not_found_hint}", selector=selector.describe(), source=source)
    return TokenRequestFailed(
        f"{label} endpoint {endpoint} answered HTTP {resp.status}{detail} for {resource} as "
        f"{selector.describe()} ({tries}); retry later, and check the platform's service health "
        "if it persists",
        status=resp.status, code=code, source=source, attempts=outcome.attempts)


def _transient_404(status: int, desc: str) -> bool:
    # A 404 that survived the retries and says nothing about identities is an endpoint problem.
    return status == 404 and "identity" not in desc.lower()
