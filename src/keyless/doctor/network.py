"""Checks below HTTP: name resolution (private endpoint or not), TLS, and whether IMDS answers at all."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import urllib3

from keyless.doctor.result import CheckResult, fail, ok, warn
from keyless.protocol import IMDS_TOKEN_PATH

PRIVATELINK = ".privatelink."
Resolver = Callable[[str], tuple[str, list[str], list[str]]]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _private(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local


def classify_dns(host: str, names: Sequence[str], addresses: Sequence[str]) -> CheckResult:
    """Verdict on a resolution of ``host``: ``names`` are the canonical name and CNAME aliases seen.

    A private endpoint shows as a CNAME through ``<account>.privatelink.file.core.windows.net`` that
    resolves to a private address. A privatelink CNAME resolving to a *public* address means the private
    DNS zone is not linked to this network: traffic goes to the public endpoint, which a storage firewall
    that only allows the private endpoint will refuse.
    """
    via_privatelink = any(PRIVATELINK in n.lower() + "." for n in names)
    private = [a for a in addresses if _private(a)]
    shown = ", ".join(addresses) or "no address"
    if via_privatelink and private:
        return ok("dns", f"{host} -> {shown}: private endpoint (privatelink CNAME, private address)")
    if via_privatelink:
        return warn(
            "dns",
            f"{host} -> {shown}: has a privatelink CNAME but resolves to a public address",
            "The account has a private endpoint, but this machine resolves the public address. Link the "
            "private DNS zone privatelink.file.core.windows.net to this VNet (or add a conditional forwarder "
            "for it on your DNS server).",
        )
    if private:
        return ok(
            "dns",
            f"{host} -> {shown}: private address without a privatelink CNAME (hosts file or custom DNS)",
        )
    return ok("dns", f"{host} -> {shown}: public endpoint (no private endpoint in the DNS chain)")


def check_dns(host: str, *, is_emulator: bool = False, resolver: Resolver | None = None) -> CheckResult:
    if _is_ip(host):
        what = "the emulator's address" if is_emulator else "an IP address"
        return ok("dns", f"{host} is {what}: no name to resolve, no private-endpoint question")
    resolve = resolver or socket.gethostbyname_ex
    try:
        canonical, aliases, addresses = resolve(host)
    except OSError as exc:
        return fail(
            "dns",
            f"{host} does not resolve ({exc})",
            "Check the account name and this machine's DNS server. With a private endpoint, the private DNS "
            "zone privatelink.file.core.windows.net must be reachable from here.",
        )
    return classify_dns(host, [canonical, *aliases], addresses)


def check_tls(host: str, port: int, *, ca_cert: str | None = None, timeout: float = 5.0) -> CheckResult:
    """Connect and verify the certificate chain and name, as every request will."""
    ctx = ssl.create_default_context(cafile=ca_cert) if ca_cert else ssl.create_default_context()
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            cert = tls.getpeercert() or {}
            version = tls.version() or "TLS"
    except ssl.SSLCertVerificationError as exc:
        fix = (
            "The certificate did not verify. With the emulator, pass --emulator so its CA is trusted. "
            "Otherwise a proxy may be intercepting TLS: exempt *.file.core.windows.net from inspection, or "
            "trust the proxy's CA (SSL_CERT_FILE)."
        )
        return fail("tls", f"{host}:{port}: {exc.verify_message or exc}", fix)
    except (OSError, ssl.SSLError) as exc:
        return fail(
            "tls",
            f"cannot open a TLS connection to {host}:{port} ({type(exc).__name__}: {exc})",
            "Check that outbound port 443 to the storage account is open (NSG, firewall, proxy) and that "
            "the account's network rules allow this network.",
        )
    not_after = cert.get("notAfter")
    days = None
    if isinstance(not_after, str):
        days = (ssl.cert_time_to_seconds(not_after) - time.time()) / 86400
    issuer = _dn(cert.get("issuer"))
    detail = f"{host}:{port}: {version}, certificate verified (issuer {issuer or 'unknown'}"
    if days is not None:
        expiry = datetime.fromtimestamp(time.time() + days * 86400, tz=UTC).date().isoformat()
        detail += f", valid until {expiry})"
    else:
        detail += ")"
    if days is not None and days < 14:
        return warn("tls", detail, "The server certificate expires within 14 days.")
    return ok("tls", detail)


def _dn(value: object) -> str:
    # getpeercert() gives ((('commonName', 'x'),), ...): show the CN, or the first attribute.
    if not isinstance(value, tuple):
        return ""
    pairs = [pair for rdn in value for pair in rdn if isinstance(pair, tuple) and len(pair) == 2]
    for key, val in pairs:
        if key == "commonName":
            return str(val)
    return str(pairs[0][1]) if pairs else ""


def check_imds(host: str, *, timeout: float = 3.0) -> CheckResult:
    """Does anything answer HTTP at the IMDS address? A request *without* ``Metadata: true`` is refused
    by a healthy IMDS with 400 and never returns a token, so it is a safe probe."""
    url = f"{host.rstrip('/')}{IMDS_TOKEN_PATH}?api-version=2018-02-01&resource=https://storage.azure.com/"
    try:
        resp = urllib3.request(
            "GET", url, timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False, redirect=False
        )
    except urllib3.exceptions.HTTPError as exc:
        return fail(
            "imds",
            f"IMDS at {host} is not reachable ({type(exc).__name__})",
            "This must run on an Azure VM (or with --emulator). Make sure 169.254.169.254 is not sent "
            "through a proxy (NO_PROXY) and no firewall blocks it.",
        )
    if resp.status == 400:
        return ok("imds", f"IMDS at {host} answers (400 without the Metadata header, as it should)")
    if resp.status >= 500:
        return fail(
            "imds",
            f"IMDS at {host} answers HTTP {resp.status}",
            "IMDS is failing: retry in a minute; if it persists, restart the VM agent or redeploy the VM.",
        )
    return warn(
        "imds",
        f"IMDS at {host} answers HTTP {resp.status} to a probe without the Metadata header (expected 400)",
        "Something other than IMDS may be answering at this address (a proxy?). "
        "Set NO_PROXY=169.254.169.254.",
    )
