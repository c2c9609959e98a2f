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

from keyless.migrate.records import (
    ACCOUNT,
    AGENT,
    APP,
    AUTH,
    DELEGATED,
    IP,
    OBJECT_ID,
    OPERATION,
    SHARE,
    TENANT,
    UPN,
    Key,
    ReadStats,
    Request,
)

IDENTITY_TYPES = frozenset({"OAuth", "Kerberos", "DelegationSas"})
MAX_OPERATIONS = 50  # distinct operation names kept per caller; a caller never needs more to be found


def key_signed(key: Key) -> bool:
    """Would this request fail once Shared Key is disallowed? AccountKey, and any SAS not shown delegated."""
    auth = key[AUTH]
    return auth == "AccountKey" or (auth == "SAS" and not key[DELEGATED])


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

    def add(self, key: Key, count: int, first: datetime, last: datetime) -> None:
        self.count += count
        if key_signed(key):
            self.key_signed += count
        if self.first is None or first < self.first:
            self.first = first
        if self.last is None or last > self.last:
            self.last = last
        self.auth_types[key[AUTH]] += count
        if key[OPERATION] in self.operations or len(self.operations) < MAX_OPERATIONS:
            self.operations[key[OPERATION]] += count
        if len(self.shares) < MAX_OPERATIONS:
            self.shares.add(key[SHARE])

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
    """Requests folded into one counter per distinct key: memory follows callers, not records."""

    since: datetime | None = None
    until: datetime | None = None
    outside_window: int = 0
    groups: dict[Key, list[Any]] = field(default_factory=dict)  # key -> [count, first, last]

    def add_all(self, requests: Iterable[Request]) -> None:
        since, until, groups = self.since, self.until, self.groups
        outside = 0
        for when, key in requests:
            if (since is not None and when < since) or (until is not None and when >= until):
                outside += 1
                continue
            group = groups.get(key)
            if group is None:
                groups[key] = [1, when, when]
            else:
                group[0] += 1
                if when < group[1]:
                    group[1] = when
                elif when > group[2]:
                    group[2] = when
        self.outside_window += outside

    def merge(self, groups: dict[Key, list[Any]], outside: int) -> None:
        """Fold another reader's counters into these (parallel reading)."""
        self.outside_window += outside
        mine = self.groups
        for key, (count, first, last) in groups.items():
            group = mine.get(key)
            if group is None:
                mine[key] = [count, first, last]
            else:
                group[0] += count
                group[1] = min(group[1], first)
                group[2] = max(group[2], last)

    # --- results --------------------------------------------------------------------------------------

    def fold(self) -> tuple[dict[tuple[str, str], Counter[str]], dict[tuple[str, str, str], Caller],
                            dict[tuple[str, str], Caller], dict[tuple[str, str], dict[str, str]]]:
        """Per share counts, non-identity callers, identity callers (and their tenant/app/UPN)."""
        by_share: dict[tuple[str, str], Counter[str]] = {}
        callers: dict[tuple[str, str, str], Caller] = {}
        identities: dict[tuple[str, str], Caller] = {}
        details: dict[tuple[str, str], dict[str, str]] = {}
        for key, (count, first, last) in self.groups.items():
            by_share.setdefault((key[ACCOUNT], key[SHARE]), Counter())[key[AUTH]] += count
            if key[AUTH] in IDENTITY_TYPES and key[OBJECT_ID]:
                ident = (key[ACCOUNT], key[OBJECT_ID])
                if ident not in identities:
                    identities[ident] = Caller(key[ACCOUNT])
                    details[ident] = {"tenant_id": key[TENANT], "app_id": key[APP], "upn": key[UPN]}
                identities[ident].add(key, count, first, last)
            else:
                ckey = (key[ACCOUNT], key[IP], key[AGENT])
                if ckey not in callers:
                    callers[ckey] = Caller(key[ACCOUNT])
                callers[ckey].add(key, count, first, last)
        return by_share, callers, identities, details

    def to_dict(self, stats: ReadStats) -> dict[str, Any]:
        by_share, callers, identities, details = self.fold()
        accounts: dict[str, Any] = {}
        for account in sorted({acct for acct, _ in by_share}):
            shares = {share or "(account)": dict(counts.most_common())
                      for (acct, share), counts in sorted(by_share.items()) if acct == account}
            totals: Counter[str] = Counter()
            for (acct, _), counts in by_share.items():
                if acct == account:
                    totals.update(counts)
            mine = [{"caller_ip": ip, "user_agent": agent, **c.summary()}
                    for (acct, ip, agent), c in sorted(callers.items(), key=lambda kv: -kv[1].count)
                    if acct == account]
            ids = [{"object_id": oid, **details[(acct, oid)], **c.summary()}
                   for (acct, oid), c in sorted(identities.items(), key=lambda kv: -kv[1].count)
                   if acct == account]
            signed = sum(c["key_signed_requests"] for c in mine)
            accounts[account] = {
                "ready": signed == 0,
                "key_signed_requests": signed,
                "requests_by_authentication_type": dict(totals.most_common()),
                "shares": shares,
                "non_identity_callers": mine,
                "identity_callers": ids,
            }
        firsts = [g[1] for g in self.groups.values()]
        lasts = [g[2] for g in self.groups.values()]
        in_window = sum(g[0] for g in self.groups.values())
        ready, verdict = _verdict(accounts, stats)
        return {
            "ready": ready,
            "verdict": verdict,
            "window": {"since": _iso(self.since), "until": _iso(self.until),
                       "first_request": _iso(min(firsts, default=None)),
                       "last_request": _iso(max(lasts, default=None))},
            "input": {"files": stats.files, "records": stats.records, "in_window": in_window,
                      "outside_window": self.outside_window, "skipped_non_request_lines": stats.skipped,
                      "malformed": stats.malformed, "malformed_examples": stats.examples,
                      "unreadable": stats.unreadable},
            "accounts": accounts,
        }


def _verdict(accounts: dict[str, Any], stats: ReadStats) -> tuple[bool, str]:
    if stats.unreadable:
        return False, (f"not ready: {len(stats.unreadable)} log file(s) could not be read, so the window "
                       "is not fully seen")
    if not accounts:
        return False, ("unknown: no storage requests in the window; collect logs over a period of "
                       "normal use")
    offenders = []
    for account, info in accounts.items():
        users = sum(1 for c in info["non_identity_callers"] if c["key_signed_requests"])
        if users:
            offenders.append(f"{account} ({users} caller{'s' if users != 1 else ''})")
    if offenders:
        return False, (f"not ready: key-signed requests in the window on {', '.join(offenders)}; "
                       "move those callers first")
    note = f" ({stats.malformed} malformed line(s) were skipped)" if stats.malformed else ""
    return True, "ready: no key-signed request (Shared Key or SAS signed with a key) in the window" + note


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
