"""systemd's readiness protocol (``sd_notify``), by hand: one datagram per message to ``$NOTIFY_SOCKET``.

Written out rather than depending on a library: the protocol is a single ``sendto`` of ``KEY=value`` lines
to a unix datagram socket whose name starts with ``/`` (a path) or ``@`` (Linux abstract namespace).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if raw.startswith("@"):
            self.address = b"\0" + raw[1:].encode()
        elif raw.startswith("/"):
            self.address = raw
        # WATCHDOG_USEC applies only to the process systemd started (WATCHDOG_PID), not to children.
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self.watchdog_interval: float | None = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 1e6

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` as one message; False (never an exception) when there is no socket or it fails."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never block: a listener that stopped reading (full queue) must not stall the agent.
                sock.sendto("\n".join(lines).encode(), socket.MSG_DONTWAIT, self.address)
        except OSError:
            return False  # a vanished or stuck manager must not take the agent down
        return True
