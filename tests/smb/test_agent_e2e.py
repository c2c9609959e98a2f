"""``keyless agent`` as a real process against a real emulator process, with 16-second tickets.

One scenario, in the order a bad day goes: tickets refreshed on time; one account loses its role (the
other stays fresh, the agent keeps going); the role comes back; a new endpoint is registered and SIGHUP
picks it up; the emulator is killed and restarted on the same ports (refreshes resume); SIGTERM ends it
with 0. systemd's NOTIFY_SOCKET hears READY=1 and STOPPING=1. No file is world-readable, no log line
holds a token.
"""

from __future__ import annotations

import json
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keyless.smb import state
from keyless.testing import EmulatorProcess, start_emulator
from smb.smb_world import (
    AGENT,
    agent,
    emulator_args,
    keyless,
    krb5_env,
    roles,
    server,
    ticket_ends,
    uri,
    world,
)

LIFETIME = 16  # window = min(max(360, 4), 8) = 8 s: a refresh every ~8 s
ACCOUNTS = ("devaccount", "otheracct", "thirdacct")


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def endpoint_status(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    done = agent(["status", "--json"], env)
    assert done.returncode == 0, done.stderr
    return {row["server"]: row for row in json.loads(done.stdout)["endpoints"]}


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.1)
    yield sock
    sock.close()


def messages(sock: socket.socket) -> list[str]:
    out: list[str] = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            return out


def test_agent_keeps_tickets_fresh_through_a_bad_day(tmp_path: Path, notify: socket.socket) -> None:
    emu: EmulatorProcess = start_emulator(tmp_path, world(f"{LIFETIME}s", ACCOUNTS), name="agent-emu")
    state_file = tmp_path / "state" / "agent.json"
    log_file = tmp_path / "log" / "agent.log"
    cache = f"FILE:{tmp_path / 'krb5cc'}"
    env = krb5_env(tmp_path, KEYLESS_AGENT_STATE=str(state_file))
    proc: subprocess.Popen[bytes] | None = None
    try:
        for account in ACCOUNTS[:2]:
            done = keyless(["smb", "set", uri(account), "--system", *emulator_args(emu), "--ccache", cache],
                           env)
            assert done.returncode == 0, done.stderr
        first = ticket_ends(cache)

        proc = subprocess.Popen(
            [*AGENT, "run", "--log-file", str(log_file), "--poll", "1", "--backoff-base", "0.5",
             "--backoff-max", "2"],
            env={**env, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for("READY=1", lambda: any("READY=1" in m for m in messages(notify)), 10)

        # 1. refreshed on time: both end times advance, and neither ticket ever runs out meanwhile
        def advanced(servers: list[str], since: dict[str, int], margin: int = 0) -> bool:
            now = ticket_ends(cache)
            assert all(now.get(s, 0) > time.time() for s in servers if s in since), now
            return all(now.get(s, 0) > since.get(s, 0) + margin for s in servers)

        both = [server(a) for a in ACCOUNTS[:2]]
        wait_for("the first refresh of both", lambda: advanced(both, first), LIFETIME)

        # 2. otheracct loses its role: it fails and backs off, devaccount stays fresh, the agent lives
        emu.set_roles(roles(ACCOUNTS, without=("otheracct",)))
        mark = ticket_ends(cache)
        wait_for("otheracct's refusal in the status",
                 lambda: (endpoint_status(env)[server("otheracct")]["last_error"] or {}).get("cause")
                 == "role_missing", LIFETIME)
        wait_for("devaccount refreshed meanwhile", lambda: ticket_ends(cache)[server("devaccount")]
                 > mark[server("devaccount")], LIFETIME)
        assert proc.poll() is None
        row = endpoint_status(env)[server("otheracct")]
        assert row["failures"] >= 1 and "SMB MI Admin" in row["last_error"]["remedy"]

        # 3. the role comes back: the back-off (at most 2 s) ends in a fresh ticket
        emu.set_roles(roles(ACCOUNTS))
        wait_for("otheracct recovered", lambda: endpoint_status(env)[server("otheracct")]["failures"] == 0
                 and ticket_ends(cache).get(server("otheracct"), 0) > time.time() + LIFETIME / 2, 8)

        # 4. a new registration (no ticket yet) is picked up on SIGHUP and refreshed at once
        emu_json = str(Path(emu.info["data_dir"]) / "emulator.json")
        state.register(state_file, state.Registration(
            uri=uri("thirdacct"), account="thirdacct", server=server("thirdacct"), ccache=cache,
            source=state.Source("system"), emulator=emu_json, registered_at=time.time()))
        proc.send_signal(signal.SIGHUP)
        wait_for("thirdacct's ticket", lambda: server("thirdacct") in ticket_ends(cache), 8)

        # 5. the emulator is killed and restarted on the same ports: refreshes fail, then resume
        ports = (int(emu.files_url.rsplit(":", 1)[1]), int(emu.imds_url.rsplit(":", 1)[1]))
        emu.kill()
        down_at = time.time()
        time.sleep(LIFETIME / 2 + 0.5)  # long enough for every endpoint's refresh to fall due
        emu.start(port=ports[0], imds_port=ports[1])
        up_at = time.time()
        wait_for("all three refreshed after the restart",
                 lambda: all(end > up_at + LIFETIME - 3 for end in ticket_ends(cache).values())
                 and len(ticket_ends(cache)) == 3, 10)
        log_text = log_file.read_text()
        # IMDS lives in the same process: the outage shows as the token source being unreachable
        assert "failed (token_unavailable" in log_text and "not reachable" in log_text, log_text[-2000:]
        assert proc.poll() is None and down_at < up_at

        # 6. SIGTERM: exit 0, STOPPING=1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, proc.stderr.read() if proc.stderr else b""
        assert any("STOPPING=1" in m for m in messages(notify))
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        emu.__exit__(None, None, None)

    # Nothing world-readable, no token anywhere it writes (a JWT starts with "eyJ").
    for path in (state_file, state.status_path(state_file), log_file, tmp_path / "krb5cc"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    for path in (state_file, state.status_path(state_file), log_file):
        assert "eyJ" not in path.read_text(), path
    assert "refreshed " + server("devaccount") in log_file.read_text()
