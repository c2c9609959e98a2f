"""Who still uses a key: requests per account and share by authentication type, the callers, the verdict.

Memory grows with the number of distinct callers, never with the number of records: each request is
folded into counters as it streams past.

What counts as key-signed (what stops working when Shared Key is switched off), after Microsoft's
"Prevent Shared Key authorization" guide (learn.microsoft.com/azure/storage/common/
shared-key-authorization-prevent): ``AuthenticationType`` ``AccountKey``, and ``SAS`` unless the log shows
it was a user delegation SAS. The guide notes that the logs report every kind of SAS as ``SAS``; the
``AuthenticationHash`` tells them apart when present (``key1(…),SasSignature(…)`` is signed with an
account key), so a ``SAS`` row without a hash is counted as key-signed: the safe side.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from keyless.migrate.logs import ReadStats, Request

IDENTITY_TYPES = frozenset({"OAuth", "Kerberos", "DelegationSas"})
AUTH_COLUMNS = ("AccountKey", "SAS", "DelegationSas", "OAuth", "Kerberos", "Anonymous")
MAX_OPERATIONS = 50  # distinct operation names kept per caller; a caller never needs more to be found


def key_signed(request: Request) -> bool:
    if request.auth_type == "AccountKey":
        return True
    if request.auth_type == "SAS":
        digest = request.auth_hash.lower()
        return not (digest and "delegation" in digest)
    return False


@dataclass
class Caller:
    """A non-identity caller (by address and user agent) or an identity (by object id)."""

    account: str
    count: int = 0
    key_signed: int = 0
    first: datetime | None = None
    last: datetime | None = None
    auth_types: Counter[str] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    shares: set[str] = field(default_factory=set)

    def add(self, request: Request, signed: bool) -> None:
        self.count += 1
        self.key_signed += signed
        if self.first is None or request.time < self.first:
            self.first = request.time
        if self.last is None or request.time > self.last:
            self.last = request.time
        self.auth_types[request.auth_type] += 1
        if request.operation in self.operations or len(self.operations) < MAX_OPERATIONS:
            self.operations[request.operation] += 1
        if len(self.shares) < MAX_OPERATIONS:
            self.shares.add(request.share)

    def summary(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "requests": self.count,
            "key_signed_requests": self.key_signed,
            "authentication_types": dict(self.auth_types.most_common()),
            "operations": dict(self.operations.most_common()),
            "shares": sorted(s for s in self.shares if s),
            "first_seen": _iso(self.first),
            "last_seen": _iso(self.last),
        }


def _iso(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when else None


@dataclass
class Report:
    since: datetime | None = None
    until: datetime | None = None
    outside_window: int = 0
    first: datetime | None = None
    last: datetime | None = None
    by_share: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    callers: dict[tuple[str, str, str], Caller] = field(default_factory=dict)
    identities: dict[tuple[str, str], Caller] = field(default_factory=dict)
    identity_details: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def add_all(self, requests: Iterable[Request]) -> None:
        since, until = self.since, self.until
        for request in requests:
            when = request.time
            if (since is not None and when < since) or (until is not None and when >= until):
                self.outside_window += 1
                continue
            self.add(request)

    def add(self, request: Request) -> None:
        if self.first is None or request.time < self.first:
            self.first = request.time
        if self.last is None or request.time > self.last:
            self.last = request.time
        counts = self.by_share.get((request.account, request.share))
        if counts is None:
            counts = self.by_share[(request.account, request.share)] = Counter()
        counts[request.auth_type] += 1
        signed = key_signed(request)
        if request.auth_type in IDENTITY_TYPES and request.object_id:
            key = (request.account, request.object_id)
            caller = self.identities.get(key)
            if caller is None:
                caller = self.identities[key] = Caller(request.account)
                self.identity_details[key] = {"tenant_id": request.tenant_id, "app_id": request.app_id,
                                              "upn": request.upn}
        else:
            ckey = (request.account, request.caller_ip, request.user_agent)
            caller = self.callers.get(ckey)
            if caller is None:
                caller = self.callers[ckey] = Caller(request.account)
        caller.add(request, signed)

    # --- results --------------------------------------------------------------------------------------

    def accounts(self) -> list[str]:
        return sorted({account for account, _ in self.by_share})

    def key_users(self, account: str) -> list[tuple[str, str, Caller]]:
        return sorted(((ip, agent, c) for (acct, ip, agent), c in self.callers.items()
                       if acct == account and c.key_signed), key=lambda item: -item[2].key_signed)

    def to_dict(self, stats: ReadStats) -> dict[str, Any]:
        accounts: dict[str, Any] = {}
        for account in self.accounts():
            shares = {share or "(account)": dict(counts.most_common())
                      for (acct, share), counts in sorted(self.by_share.items()) if acct == account}
            totals: Counter[str] = Counter()
            for (acct, _), counts in self.by_share.items():
                if acct == account:
                    totals.update(counts)
            callers = [{"caller_ip": ip, "user_agent": agent, **c.summary()}
                       for (acct, ip, agent), c in sorted(self.callers.items(), key=lambda kv: -kv[1].count)
                       if acct == account]
            identities = [{"object_id": oid, **self.identity_details[(acct, oid)], **c.summary()}
                          for (acct, oid), c in sorted(self.identities.items(), key=lambda kv: -kv[1].count)
                          if acct == account]
            signed = sum(c.key_signed for (acct, _, _), c in self.callers.items() if acct == account)
            accounts[account] = {
                "ready": signed == 0,
                "key_signed_requests": signed,
                "requests_by_authentication_type": dict(totals.most_common()),
                "shares": shares,
                "non_identity_callers": callers,
                "identity_callers": identities,
            }
        ready, verdict = self.verdict(stats)
        return {
            "ready": ready,
            "verdict": verdict,
            "window": {"since": _iso(self.since), "until": _iso(self.until),
                       "first_request": _iso(self.first), "last_request": _iso(self.last)},
            "input": {"files": stats.files, "records": stats.records, "in_window": stats.records
                      - self.outside_window, "outside_window": self.outside_window,
                      "skipped_non_request_lines": stats.skipped, "malformed": stats.malformed,
                      "malformed_examples": stats.examples, "unreadable": stats.unreadable},
            "accounts": accounts,
        }

    def verdict(self, stats: ReadStats) -> tuple[bool, str]:
        if stats.unreadable:
            return False, (f"not ready: {len(stats.unreadable)} log file(s) could not be read, so the window "
                           "is not fully seen")
        if not self.by_share:
            return False, ("unknown: no storage requests in the window; collect logs over a period of "
                           "normal use")
        offenders = [(account, len(self.key_users(account))) for account in self.accounts()
                     if self.key_users(account)]
        if offenders:
            parts = ", ".join(f"{account} ({n} caller{'s' if n != 1 else ''})" for account, n in offenders)
            return False, f"not ready: key-signed requests in the window on {parts}; move those callers first"
        note = f" ({stats.malformed} malformed line(s) were skipped)" if stats.malformed else ""
        return True, ("ready: no key-signed request (Shared Key or SAS signed with a key) in the window"
                      + note)


def render_text(data: dict[str, Any]) -> str:
    """The report for a terminal: one section per account, then the verdict."""
    lines: list[str] = []
    inp = data["input"]
    win = data["window"]
    lines.append(f"Read {inp['files']} file(s): {inp['records']} request record(s), "
                 f"{inp['in_window']} in the window ({win['first_request'] or '-'} .. "
                 f"{win['last_request'] or '-'}).")
    if win["since"] or win["until"]:
        lines.append(f"Window: since {win['since'] or 'the start'} until {win['until'] or 'the end'}.")
    if inp["malformed"]:
        first = "; ".join(inp["malformed_examples"][:3])
        lines.append(f"Malformed lines skipped: {inp['malformed']} (first: {first})")
    for problem in inp["unreadable"]:
        lines.append(f"Unreadable: {problem}")
    for account, info in data["accounts"].items():
        lines.append("")
        lines.append(f"Account {account}: {'ready' if info['ready'] else 'NOT READY'} "
                     f"({info['key_signed_requests']} key-signed request(s))")
        lines.append("  Requests by AuthenticationType, per share:")
        for share, counts in info["shares"].items():
            cells = ", ".join(f"{name} {n}" for name, n in counts.items())
            lines.append(f"    {share}: {cells}")
        if info["non_identity_callers"]:
            lines.append("  Callers without an identity (IP, user agent):")
            for c in info["non_identity_callers"]:
                flag = "KEY" if c["key_signed_requests"] else "   "
                ops = ", ".join(list(c["operations"])[:8])
                lines.append(f"    {flag} {c['caller_ip'] or '-'}  {c['user_agent'] or '-'}")
                lines.append(f"        {c['requests']} request(s) {_types(c)}; "
                             f"first {c['first_seen']}, last {c['last_seen']}; operations: {ops}")
        if info["identity_callers"]:
            lines.append("  Identity callers (object id):")
            for c in info["identity_callers"]:
                extra = ", ".join(f"{k} {c[k]}" for k in ("app_id", "tenant_id", "upn") if c.get(k))
                tail = f"; {extra}" if extra else ""
                lines.append(f"    {c['object_id']}  {c['requests']} request(s) {_types(c)}; "
                             f"first {c['first_seen']}, last {c['last_seen']}{tail}")
    lines.append("")
    lines.append(f"Verdict: {data['verdict']}")
    if not data["ready"]:
        for account, info in data["accounts"].items():
            for c in info["non_identity_callers"]:
                if c["key_signed_requests"]:
                    lines.append(f"  move: {account} <- {c['caller_ip'] or '-'} {c['user_agent'] or '-'} "
                                 f"(last seen {c['last_seen']})")
    return "\n".join(lines) + "\n"


def _types(caller: dict[str, Any]) -> str:
    return "(" + ", ".join(f"{name} {n}" for name, n in caller["authentication_types"].items()) + ")"
