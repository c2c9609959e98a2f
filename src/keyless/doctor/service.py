"""Checks that talk to the file service: clock skew, the intent-header rule, and read / write / delete
probes in a temporary directory that is always removed, with an RBAC diagnosis when one is refused."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime

from keyless import protocol as p
from keyless.doctor.result import CheckResult, Status, fail, ok, skip, warn
from keyless.files import errors as fe
from keyless.files.client import ShareClient
from keyless.files.errors import parse_error_body, permission_remedy
from keyless.files.models import Entry
from keyless.files.transport import SendError

SKEW_WARN = 60.0  # seconds: worth fixing (NTP), harmless yet
SKEW_FAIL = 300.0  # Azure's token validation allows five minutes of skew; beyond, tokens look expired/early
PROBE_PREFIX = ".keyless-doctor-"


def measure_skew(client: ShareClient, *, authenticated: bool) -> tuple[float, str]:
    """``(service clock - local clock, in seconds; the service's Date)``.

    With a token, from a one-entry listing (a normal reply); without one, from an unauthenticated request,
    whose 401 carries ``Date`` too and sends no credential anywhere.
    """
    before = time.time()
    resp = None
    if authenticated:
        try:
            query = {"restype": "directory", "comp": "list", "maxresults": "1"}
            resp = client.send("GET", "", query=query, operation="list share root")
        except fe.FilesError:
            resp = None  # the read probe will explain; fall back to the unauthenticated request
    if resp is None:
        before = time.time()
        url = client.url().url + "?restype=directory&comp=list"
        resp = client.transport.request("GET", url, {p.H_VERSION: p.CURRENT_VERSION})
    after = time.time()
    date = resp.header("date")
    if not date:
        raise ValueError("the reply has no Date header")
    service = parsedate_to_datetime(date).timestamp()
    # Date has one-second resolution and is stamped somewhere during the round trip: compare to the middle.
    return service - (before + after) / 2, date


def check_clock(client: ShareClient, *, authenticated: bool = True) -> CheckResult:
    try:
        skew, date = measure_skew(client, authenticated=authenticated)
    except (SendError, ValueError, TypeError) as exc:
        return fail("clock", f"could not read the service's Date header ({exc})", _no_reply_fix())
    local = formatdate(usegmt=True)
    direction = "ahead of" if skew > 0 else "behind"
    if abs(skew) < 2:  # Date has one-second resolution: closer than that is "in step"
        detail = f"service Date {date}, local {local}: clocks in step (within the Date header's 1 s)"
    else:
        detail = (
            f"service Date {date}, local {local}: the service is {abs(skew):.0f} s {direction} this machine"
        )
    fix = (
        "Synchronise this machine's clock (chrony/systemd-timesyncd with time.windows.com or the Azure host "
        "via PTP: /dev/ptp_hyperv)."
    )
    if abs(skew) > SKEW_FAIL:
        return fail(
            "clock",
            detail + " (more than the 5 minutes Azure tolerates on token lifetimes)",
            fix + " Tokens and Shared Key signatures are judged by the service's clock.",
        )
    if abs(skew) > SKEW_WARN:
        return warn("clock", detail, fix)
    return ok("clock", detail)


def check_intent_header(client: ShareClient, token: str) -> CheckResult:
    """Send one bearer request *without* ``x-ms-file-request-intent`` and expect the 400 that proves the
    service enforces it (keyless sends it on every other request)."""
    url = client.url().url + "?restype=directory&comp=list&maxresults=1"
    client.destinations.check(url)  # the rule every credentialed request obeys
    headers = {
        p.H_VERSION: p.CURRENT_VERSION,
        p.H_DATE: formatdate(usegmt=True),
        "Authorization": f"Bearer {token}",
    }
    try:
        resp = client.transport.request("GET", url, headers)
    except SendError as exc:
        return fail("intent-header", f"no reply ({exc})", _no_reply_fix())
    code = resp.header(p.H_ERROR_CODE.lower()) or parse_error_body(resp.data)[0]
    names_header = p.H_INTENT in resp.data.decode("utf-8", errors="replace").lower()
    if resp.status == 400 and code == p.E_MISSING_HEADER:
        detail = f"without {p.H_INTENT}: 400 {code}"
        detail += f" naming {p.H_INTENT}" if names_header else ""
        return ok(
            "intent-header", detail + f"; keyless sends '{p.H_INTENT}: {p.INTENT_BACKUP}' on every request"
        )
    if 200 <= resp.status < 300:
        return warn(
            "intent-header",
            f"a bearer request without {p.H_INTENT} was accepted (HTTP {resp.status})",
            "Azure Files refuses such requests with 400 MissingRequiredHeader; something between here and "
            "the service is not Azure Files (a gateway?). keyless sends the header anyway.",
        )
    return warn(
        "intent-header",
        f"without {p.H_INTENT} the service answered HTTP {resp.status} {code} "
        f"(expected 400 {p.E_MISSING_HEADER})",
        "See the read probe for the cause; the header rule could not be confirmed.",
    )


@dataclass
class ProbeOutcome:
    """What the read / write / delete probes found, for the RBAC summary."""

    results: list[CheckResult] = field(default_factory=list)
    denied: dict[str, fe.PermissionDenied] = field(default_factory=dict)  # probe name -> 403


def _error_result(name: str, what: str, exc: fe.FilesError, outcome: ProbeOutcome) -> CheckResult:
    if isinstance(exc, fe.PermissionDenied) and not isinstance(exc, fe.KeyAuthNotPermitted):
        outcome.denied[name] = exc
        fix = permission_remedy(exc.request) if exc.request else exc.remedy
        return fail(name, f"{what}: 403 {exc.code or 'AuthorizationPermissionMismatch'}", fix)
    status = f"HTTP {exc.status} {exc.code}".strip() if exc.status else "no reply"
    return fail(name, f"{what}: {status}: {exc.message}", exc.remedy)


def run_probes(client: ShareClient) -> ProbeOutcome:
    """Read (list the share root), write (a directory and a small file), delete (both). The probe
    directory has a random name and is removed whatever happens."""
    outcome = ProbeOutcome()
    add = outcome.results.append
    try:
        entries = sum(1 for _ in _first_page(client))
        add(ok("read", f"listed the root of share {client.share} ({entries} entries on the first page)"))
    except fe.FilesError as exc:
        add(_error_result("read", f"list share {client.share}", exc, outcome))
        if isinstance(exc, fe.NotFound | fe.ConnectionFailed | fe.UnsafeDestination | fe.TokenError):
            add(skip("write", "skipped: the share could not be reached"))
            add(skip("delete", "skipped: the share could not be reached"))
            return outcome

    directory = PROBE_PREFIX + secrets.token_hex(4)
    path = f"{directory}/probe.txt"
    body = b"keyless doctor write probe\n"
    made_dir = made_file = False
    try:
        try:
            client.mkdir(directory)
            made_dir = True
            client.create_file(path, len(body), content_type="text/plain")
            made_file = True
            client.put_range(path, 0, body)
            if client.read_bytes(path) != body:
                add(fail("write", f"wrote {path} but read back different bytes", fe.IntegrityError.remedy))
            else:
                add(ok("write", f"created {directory}/ and wrote {len(body)} bytes to probe.txt"))
        except fe.FilesError as exc:
            add(_error_result("write", f"write in {directory}", exc, outcome))
        if not made_dir:
            add(skip("delete", "skipped: the write probe created nothing to delete"))
            return outcome
        try:
            if made_file:
                client.delete_file(path)
            client.delete_directory(directory)
            made_dir = made_file = False
            add(ok("delete", f"deleted the probe file and {directory}/"))
        except fe.FilesError as exc:
            add(_error_result("delete", f"delete {directory}", exc, outcome))
    finally:
        if made_dir:  # a failed delete probe: try once more, quietly, so no litter stays behind
            _cleanup(client, directory, path if made_file else None, outcome)
    return outcome


def _first_page(client: ShareClient) -> list[Entry]:
    page: list[Entry] = []
    for entry in client.listdir(""):
        page.append(entry)
        if len(page) >= 100:
            break
    return page


def _cleanup(client: ShareClient, directory: str, path: str | None, outcome: ProbeOutcome) -> None:
    try:
        if path:
            client.delete_file(path)
        client.delete_directory(directory)
    except fe.FilesError:
        outcome.results.append(
            warn(
                "cleanup",
                f"the probe directory {directory}/ could not be removed",
                f"Delete it by hand once delete access works: keyless rm -r azfiles://{client.account}/"
                f"{client.share}/{directory}",
            )
        )


def rbac_summary(outcome: ProbeOutcome, identity: str) -> CheckResult:
    """One line that names the role to assign, from which probes were refused."""
    statuses = {r.name: r.status for r in outcome.results}
    if not outcome.denied:
        if all(statuses.get(n) == Status.OK for n in ("read", "write", "delete")):
            return ok("rbac", f"{identity} can read, write and delete (backup semantics)")
        return skip("rbac", "no 403 seen; see the probes above")
    refused = ", ".join(sorted(outcome.denied))
    first = next(iter(outcome.denied.values()))
    req = first.request
    if statuses.get("read") == Status.OK:
        what = (
            f"{identity} can read but not {refused}: "
            "a read-only role (e.g. Storage File Data Privileged Reader)"
        )
    else:
        what = f"{identity} has no data access to share {req.share if req else ''}: refused {refused}"
    role = "Storage File Data Privileged Contributor"
    scope = fe.share_scope(req.account if req else "<account>", req.share if req else "<share>")
    fix = (
        f"Assign '{role}' to {identity} at scope {scope} (az role assignment create --role \"{role}\" "
        f"--assignee-object-id <oid> --scope <scope>). New assignments take 5-30 minutes to propagate. "
        "SMB share roles are not enough for REST access."
    )
    return fail("rbac", what, fix)


def _no_reply_fix() -> str:
    return fe.ConnectionFailed.remedy
