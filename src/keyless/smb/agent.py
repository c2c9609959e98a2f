"""``keyless agent``: keep every registered endpoint's SMB ticket fresh, for as long as it runs.

What it does differently from Microsoft's ``azfilesrefresh``:
- it refreshes what ``keyless smb set`` registered in the state file (``keyless.smb.state``), with the
  identity recorded there; workload-identity endpoints are refreshed too, and directly supplied tokens are
  reported as not refreshable. Run as ``azfilesrefresh`` it also takes the mounted ``sec=krb5`` shares
  (``discover``, ``keyless.smb.mounts``) with the identity their ``username=`` names, as Microsoft's does;
- it refreshes well before expiry (``Policy.window``), and a failure is retried with exponential back-off
  and jitter (so a fleet does not hammer IMDS in step), never ending the process;
- each refresh runs in a worker thread, so one endpoint hanging on a timeout delays no other;
- SIGHUP reloads the state file, SIGTERM / SIGINT stop it cleanly, systemd hears READY / WATCHDOG /
  STOPPING over ``$NOTIFY_SOCKET``.

Nothing it logs or writes to the status file holds a token: errors are ``SmbError`` causes and messages,
which never contain one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import select
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keyless.backoff import backoff_delay
from keyless.smb import state as st
from keyless.smb.errors import SmbError
from keyless.smb.sdnotify import Notifier

log = logging.getLogger("keyless.agent")


@dataclass(frozen=True)
class Policy:
    """When to refresh and how to back off; every number can be overridden (tests use short tickets)."""

    min_window: float = 360.0  # refresh when fewer than ~6 minutes remain (what azfilesauth does), or...
    poll: float = 60.0  # longest sleep: the status heartbeat, and a cap on any clock jump's effect
    backoff_base: float = 5.0
    backoff_max: float = 300.0

    def window(self, lifetime: float) -> float:
        """Refresh this long before the end: max(6 min, 1/4 of the lifetime), but at most half of it,
        so a 24 h ticket is renewed with 6 h to spare and a 20 s test ticket every 10 s."""
        return min(max(self.min_window, lifetime / 4), lifetime / 2)

    def backoff(self, failures: int, rng: random.Random) -> float:
        """Exponential in the number of consecutive failures, with jitter in [50 %, 100 %]."""
        return backoff_delay(max(0, failures - 1), backoff_factor=self.backoff_base,
                             backoff_max=self.backoff_max, rng=rng)


@dataclass(frozen=True)
class Outcome:
    ticket_start: float
    ticket_end: float
    refreshed: bool  # False: the cache already held a fresh enough ticket (someone ran smb set)


Refresher = Callable[[st.Registration], Outcome]
Discover = Callable[[], dict[str, st.Registration]]


class TicketRefresher:
    """Does for one registration what ``keyless smb set`` did, with the same library calls."""

    def __init__(self, policy: Policy, clock: Callable[[], float]) -> None:
        self.policy = policy
        self.clock = clock
        self._emulators: dict[str, dict[str, Any]] = {}

    def _emulator(self, path: str) -> dict[str, Any]:
        from keyless.smb.target import read_emulator

        try:
            info = read_emulator(path)
        except SmbError:
            # A stopped emulator removes emulator.json; keep using its last address, so the outage
            # shows up as "unreachable" and ends by itself when it restarts on the same ports.
            if path in self._emulators:
                return self._emulators[path]
            raise
        self._emulators[path] = info
        return info

    def cached_ticket(self, reg: st.Registration) -> tuple[float, float] | None:
        from keyless.smb.manager import list_credentials

        for ticket in list_credentials(reg.ccache):
            if ticket.server == reg.server:
                return float(ticket.ticket_start_time), float(ticket.ticket_end_time)
        return None

    def __call__(self, reg: st.Registration) -> Outcome:
        from keyless.smb.config import load_config
        from keyless.smb.manager import IdentitySpec, acquire_token, set_credential
        from keyless.smb.target import endpoint_for

        current = self.cached_ticket(reg)
        if current is not None:
            start, end = current
            if end - self.clock() > self.policy.window(end - start):
                return Outcome(start, end, refreshed=False)
        cfg = load_config(Path(reg.config) if reg.config else None)
        emu = self._emulator(reg.emulator) if reg.emulator else None
        endpoint = endpoint_for(reg.uri, emu)
        src = reg.source
        spec = IdentitySpec(src.kind, client_id=src.client_id, tenant_id=src.tenant_id,
                            token_file=src.token_file, authority_host=src.authority_host)
        ca = str(emu["ca_cert"]) if emu else None
        token = acquire_token(spec, imds_host=str(emu["imds_url"]) if emu else None, ca_certs=ca)
        result = set_credential(endpoint, token, cache_name=reg.ccache, owner_uid=cfg.user_uid,
                                ca_certs=ca, connect_timeout=cfg.connect_timeout,
                                total_timeout=cfg.total_timeout)
        cred = result.reply.credential
        return Outcome(float(cred.starttime or cred.authtime), float(cred.endtime), refreshed=True)


class Agent:
    def __init__(self, state_path: Path, *, policy: Policy | None = None,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 refresher: Refresher | None = None, notifier: Notifier | None = None,
                 workers: int = 4, discover: Discover | None = None) -> None:
        self.state_path = state_path
        # More registrations found at run time (azfilesrefresh: the mounted sec=krb5 shares), looked at
        # again every poll interval; what keyless smb set registered wins for the same ticket.
        self.discover = discover
        self._discovered: dict[str, st.Registration] = {}
        self._last_discovery = -math.inf
        self.policy = policy or Policy()
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self.refresher: Refresher = refresher or TicketRefresher(self.policy, clock)
        self.notifier = notifier or Notifier()
        self.registrations: dict[str, st.Registration] = {}
        self.status = st.AgentStatus(pid=os.getpid(), started=clock())
        self.due: dict[str, float] = {}
        self.inflight: dict[str, Future[Outcome]] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="keyless-refresh")
        self._wake_r, self._wake_w = socket.socketpair()
        for sock in (self._wake_r, self._wake_w):
            sock.setblocking(False)
        self._stop = False
        self._reload = False
        self._dirty = True
        self._last_status_write = -math.inf
        self._last_watchdog = -math.inf

    # --- state --------------------------------------------------------------------------------------
    def reload(self) -> None:
        try:
            fresh = st.load_registrations(self.state_path)
        except SmbError as exc:
            # Keep refreshing what we had: a half-edited or unreadable file must not stop the refreshes.
            log.error("could not reload %s (%s): %s", self.state_path, exc.cause, exc.message)
            return
        now = self.clock()
        if self.discover is not None:
            self._last_discovery = now
            try:
                self._discovered = self.discover()
            except SmbError as exc:
                log.error("could not look for mounts (%s): %s", exc.cause, exc.message)
            fresh = {**self._discovered, **fresh}
        for key in set(self.registrations) - set(fresh):
            log.info("no longer refreshing %s (unregistered)", key)
            self.due.pop(key, None)
            self.status.endpoints.pop(key, None)
        for key, reg in fresh.items():
            old = self.registrations.get(key)
            if old == reg:
                continue
            log.info("refreshing %s in %s with %s", reg.server, reg.ccache, reg.source.describe())
            self.status.endpoints[key] = st.EndpointStatus()
            if reg.source.kind == st.MANUAL:
                self.status.endpoints[key].note = ("a token given directly cannot be refreshed; run "
                                                   "keyless smb set with an identity option")
                self.due.pop(key, None)
            else:
                self.due[key] = now  # the refresher looks at the cache first and skips a fresh ticket
        self.registrations = fresh
        self._dirty = True
        self.notifier.notify(f"STATUS=keeping {len(self._refreshable())} endpoint(s) fresh")

    def _refreshable(self) -> list[str]:
        return [k for k, r in self.registrations.items() if r.source.kind != st.MANUAL]

    # --- one pass -----------------------------------------------------------------------------------
    def launch_due(self) -> None:
        now = self.clock()
        for key, when in list(self.due.items()):
            if when <= now and key not in self.inflight and key in self.registrations:
                self.status.endpoints.setdefault(key, st.EndpointStatus()).last_attempt = now
                future = self._pool.submit(self.refresher, self.registrations[key])
                future.add_done_callback(lambda _f: self._wake())
                self.inflight[key] = future

    def collect(self) -> None:
        for key, future in list(self.inflight.items()):
            if not future.done():
                continue
            del self.inflight[key]
            reg = self.registrations.get(key)
            if reg is None:
                continue  # unregistered while in flight
            self._record(key, reg, future)
            self._dirty = True

    def _record(self, key: str, reg: st.Registration, future: Future[Outcome]) -> None:
        now = self.clock()
        status = self.status.endpoints.setdefault(key, st.EndpointStatus())
        try:
            outcome = future.result()
        except SmbError as exc:
            self._failed(key, reg, status, exc.cause, exc.message, exc.remedy)
            return
        except Exception as exc:  # one endpoint's bug must not end the agent
            self._failed(key, reg, status, "internal_error", f"{type(exc).__name__}: {exc}")
            return
        window = self.policy.window(outcome.ticket_end - outcome.ticket_start)
        # At least a second between attempts, whatever the ticket: a service handing out tickets that
        # are already inside the window must not turn the agent into a busy loop.
        self.due[key] = max(outcome.ticket_end - window, now + 1.0)
        status.ticket_end = outcome.ticket_end
        status.next_attempt = self.due[key]
        status.failures = 0
        status.last_error = None
        if outcome.refreshed:
            status.last_success = now
            log.info("refreshed %s in %s: ticket valid for %.0f s, next refresh in %.0f s", reg.server,
                     reg.ccache, outcome.ticket_end - now, self.due[key] - now)

    def _failed(self, key: str, reg: st.Registration, status: st.EndpointStatus, cause: str,
                message: str, remedy: str = "") -> None:
        now = self.clock()
        status.failures += 1
        delay = self.policy.backoff(status.failures, self.rng)
        self.due[key] = now + delay
        status.next_attempt = self.due[key]
        status.last_error = {"cause": cause, "message": message, "remedy": remedy, "at": now}
        log.warning("refresh of %s in %s failed (%s, attempt %d): %s; retrying in %.1f s", reg.server,
                    reg.ccache, cause, status.failures, message, delay)

    def write_status(self, force: bool = False) -> None:
        now = self.clock()
        if not (force or self._dirty or now - self._last_status_write >= self.policy.poll):
            return
        self.status.heartbeat = now
        try:
            st.save_status(self.state_path, self.status)
        except SmbError as exc:
            log.error("could not write the status file (%s): %s", exc.cause, exc.message)
        self._dirty = False
        self._last_status_write = now

    def next_wait(self) -> float:
        now = self.clock()
        waits = [self.policy.poll]
        waits += [when - now for key, when in self.due.items() if key not in self.inflight]
        if self.notifier.watchdog_interval:
            waits.append(self.notifier.watchdog_interval / 2)
        return max(0.0, min(waits))

    # --- the loop -----------------------------------------------------------------------------------
    def _watchdog(self) -> None:
        """WATCHDOG=1 from the main loop only (a stuck loop must starve it), every quarter interval."""
        interval = self.notifier.watchdog_interval
        now = time.monotonic()
        if interval and now - self._last_watchdog >= interval / 4:
            self.notifier.notify("WATCHDOG=1")
            self._last_watchdog = now

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # a full buffer already means "wake up"
            self._wake_w.send(b"\0")

    def _on_signal(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
        else:
            self._stop = True

    def request_stop(self) -> None:
        self._stop = True
        self._wake()

    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGHUP, signal.SIGTERM,
                                                                   signal.SIGINT)}
        old_wakeup = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        try:
            self.reload()
            self.notifier.notify("READY=1", f"STATUS=keeping {len(self._refreshable())} endpoint(s) fresh")
            log.info("keyless agent started (pid %d, state %s)", os.getpid(), self.state_path)
            while not self._stop:
                if self._reload:
                    self._reload = False
                    log.info("SIGHUP: reloading %s", self.state_path)
                    self.reload()
                elif self.discover is not None and self.clock() - self._last_discovery >= self.policy.poll:
                    self.reload()  # mounts come and go: look again every poll interval
                self.collect()
                self.launch_due()
                self.write_status()
                self._watchdog()
                with contextlib.suppress(InterruptedError):
                    select.select([self._wake_r], [], [], self.next_wait())
                with contextlib.suppress(BlockingIOError):
                    while self._wake_r.recv(512):
                        pass
            log.info("stopping: waiting for %d refresh(es) in flight", len(self.inflight))
            self.notifier.notify("STOPPING=1")
            self._pool.shutdown(wait=True, cancel_futures=True)
            self.collect()
            self.write_status(force=True)
            log.info("keyless agent stopped")
            return 0
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._wake_r.close()
            self._wake_w.close()
