"""What ``azfilesauth`` 1.0.11 prints, byte for byte: ``list`` text and JSON, ``clear``/``set`` messages.

The layouts are copied on purpose from Microsoft's AzFilesAuthenticator 1.0.11 (``configure.ac:2``):
``src/azfilesauth.cpp:985-1052`` (``smb_list_credential``) and ``src/azfilesauthmanager.py:166-208``. Scripts
written for the real tool, and Microsoft's own ``azfilesrefresh`` (which reads ``(epoch: N)`` out of
``ticket_end_time`` with a regex, ``src/azfilesrefresh.py.in:68-95``), parse exactly these strings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from keyless.smb.ccache import TicketInfo

# The azfilesauth release whose command line, output and C ABI keyless reproduces. ``azfilesauthmanager
# --version`` and ``extern_smb_version()`` print it, so version checks written for the real tool pass.
AZFILESAUTH_VERSION = "1.0.11"

# stdout lines of the real library and manager on failure (src/azfilesauth.cpp, src/azfilesauthmanager.py:
# 177-194); scripts grep for them, so keyless prints them too, and its precise cause on stderr.
SET_ERROR = "Error getting Kerberos service ticket, check /var/log/syslog for more information."
INSERT_ERROR = "Error inserting credential, check /var/log/syslog for more information."
CLEAR_ERROR = "Error clearing credential, check /var/log/syslog for more information."
LIB_ERROR = "[-] Error calling AzAuthenticatorLib: {rc}"
CLEAR_RESULT = "azfilesauthmanager clear: {rc}"


def format_time(epoch: int) -> str:
    """``12/02/26 19:25:02 UTC (epoch: 1796239502)``: local time, as ``strftime("%m/%d/%y %H:%M:%S %Z")``.

    A zero time (no renew-till) is ``N/A (epoch: 0)``, as the real tool prints it.
    """
    if not epoch:
        return "N/A (epoch: 0)"
    return f"{time.strftime('%m/%d/%y %H:%M:%S %Z', time.localtime(epoch))} (epoch: {epoch})"


def format_list_text(tickets: Sequence[TicketInfo]) -> str:
    """``azfilesauthmanager list``: one block per ticket, ``end time:`` padded to line up (3 spaces)."""
    lines: list[str] = []
    for i, t in enumerate(tickets, 1):
        lines += [
            f"Credential {i}:",
            f"  Server: {t.server}",
            f"  Client: {t.client}",
            f"  Realm: {t.realm}",
            f"  Ticket flags: {t.ticket_flags}",
            f"  Ticket start time: {format_time(t.ticket_start_time)}",
            f"  Ticket end time:   {format_time(t.ticket_end_time)}",
            f"  Ticket renew till: {format_time(t.ticket_renew_till)}",
        ]
    return "".join(line + "\n" for line in lines)


def format_list_json(tickets: Sequence[TicketInfo] | None) -> str:
    """``azfilesauthmanager list --json``, including its two empty forms.

    The real library writes the array by hand: ``[`` newline, the objects joined by ``,`` newline, newline
    ``]``, so a cache without cifs tickets prints ``[``, an empty line and ``]``; a missing cache prints
    ``[]`` (src/azfilesauth.cpp:971-973,1042-1052). ``None`` means the cache does not exist.
    """
    if tickets is None:
        return "[]\n"
    objects = []
    for t in tickets:
        # Non-ASCII stays as it is, as the real library writes the bytes; quotes and backslashes are
        # escaped (the real library would print invalid JSON for them, which no script can want).
        fields = [
            ("server", json.dumps(t.server, ensure_ascii=False)),
            ("client", json.dumps(t.client, ensure_ascii=False)),
            ("realm", json.dumps(t.realm, ensure_ascii=False)),
            ("ticket_flags", str(t.ticket_flags)),
            ("ticket_start_time", json.dumps(format_time(t.ticket_start_time), ensure_ascii=False)),
            ("ticket_end_time", json.dumps(format_time(t.ticket_end_time), ensure_ascii=False)),
            ("ticket_renew_till", json.dumps(format_time(t.ticket_renew_till), ensure_ascii=False)),
        ]
        body = ",\n".join(f'    "{key}": {value}' for key, value in fields)
        objects.append("  {\n" + body + "\n  }")
    return "[\n" + ",\n".join(objects) + "\n]\n"


# The manager's usage text, printed verbatim by the manager and by the library's argument checks.
USAGE = """Usage:
    azfilesauthmanager list [--json]
    azfilesauthmanager set <file_endpoint_uri> <oauth_token>
    azfilesauthmanager set <file_endpoint_uri> --system
    azfilesauthmanager set <file_endpoint_uri> --imds-client-id <client_id>
    azfilesauthmanager set <file_endpoint_uri> --workload-identity --tenant-id <tenant_id> --client-id <client_id> --token-file <token_file> [--authority-host <authority_host>] [--resource <resource>]
    azfilesauthmanager clear <file_endpoint_uri>
    azfilesauthmanager --version
"""  # noqa: E501 - printed verbatim
