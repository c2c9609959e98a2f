"""The agent's parts in-process: refresh window, back-off, state file, sd_notify, one pass of the loop."""

from __future__ import annotations

import json
import random
import socket
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from keyless.cli.agent_cmd import agent_command, unit_text
from keyless.smb import state
from keyless.smb.agent import Agent, Outcome, Policy
from keyless.smb.errors import RoleMissing
from keyless.smb.sdnotify import Notifier


def test_window_and_backoff() -> None:
    policy = Policy()
    assert policy.window(24 * 3600) == 6 * 3600  # a quarter of a day's ticket
    assert policy.window(3600) == 900
    assert policy.window(20) == 10  # short test tickets: half their lifetime, not six minutes
    rng = random.Random(1)
    delays = [policy.backoff(n, rng) for n in range(1, 10)]
    assert 2.5 <= delays[0] <= 5 and all(d <= 300 for d in delays) and delays[-1] >= 150


def reg(account: str, kind: str = "system") -> state.Registration:
    return state.Registration(uri=f"https://{account}.file.core.windows.net/", account=account,
                              server=f"cifs/{account}", ccache="FILE:/tmp/x", source=state.Source(kind))


def test_state_register_unregister_private(tmp_path: Path) -> None:
    path = tmp_path / "d" / "agent.json"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: state.register(path, reg(f"acct{i}")), range(16)))
    assert len(state.load_registrations(path)) == 16
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert state.unregister(path, "cifs/acct3", "FILE:/tmp/x")
    assert not state.unregister(path, "cifs/acct3", "FILE:/tmp/x")
    assert len(json.loads(path.read_text())["endpoints"]) == 15
    assert state.state_path(None, {"KEYLESS_AGENT_STATE": "/x/y.json"}) == Path("/x/y.json")
    assert state.state_path(None, {}) == state.DEFAULT_STATE_PATH


def test_notifier_sends_and_never_blocks(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "n.sock"))
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "n.sock"), "WATCHDOG_USEC": "2000000"})
    assert notifier.notify("READY=1") and listener.recv(100) == b"READY=1"
    assert notifier.watchdog_interval == 2.0
    for _ in range(10000):  # nobody reads: the queue fills, sends fail, nothing blocks
        notifier.notify("WATCHDOG=1")
    listener.close()
    assert not Notifier({}).notify("READY=1")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_failing_endpoint_never_stops_the_others(tmp_path: Path) -> None:
    path = tmp_path / "agent.json"
    for r in (reg("good"), reg("bad"), reg("hand", kind="manual")):
        state.register(path, r)
    clock = FakeClock()
    calls: list[str] = []

    def refresher(r: state.Registration) -> Outcome:
        calls.append(r.account)
        if r.account == "bad":
            raise RoleMissing("no role", remedy="assign it")
        if r.account == "good":
            return Outcome(clock.now, clock.now + 20, refreshed=True)
        raise AssertionError("a manual token is never refreshed")

    agent = Agent(path, policy=Policy(backoff_base=1, backoff_max=4), clock=clock, rng=random.Random(0),
                  refresher=refresher, notifier=Notifier({}))

    def one_pass() -> None:
        agent.launch_due()
        for future in list(agent.inflight.values()):
            future.exception()  # waits for it
        agent.collect()
        agent.write_status(force=True)

    agent.reload()
    one_pass()
    assert sorted(calls) == ["bad", "good"]
    key_good, key_bad = reg("good").key, reg("bad").key
    assert agent.due[key_good] == clock.now + 10  # refresh with half of a 20 s ticket left
    assert 1000.5 <= agent.due[key_bad] <= 1001  # first retry: back-off base with jitter
    for _ in range(6):
        clock.now = agent.due[key_bad]
        one_pass()
    assert agent.status.endpoints[key_bad].failures == 7
    assert agent.due[key_bad] - clock.now <= 4  # capped
    status = state.load_status(path)
    assert status.endpoints[key_bad].last_error == {"cause": "role_missing", "message": "no role",
                                                    "remedy": "assign it", "at": clock.now}
    assert status.endpoints[reg("hand").key].note is not None and "hand" not in calls


def test_status_and_unit_cli(tmp_path: Path) -> None:
    path = tmp_path / "agent.json"
    state.register(path, reg("hand", kind="manual"))
    out = CliRunner().invoke(agent_command, ["status", "--json", "--state", str(path)])
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.output)["endpoints"]
    assert row["refreshable"] is False and json.loads(out.output)["agent"]["running"] is False
    unit = CliRunner().invoke(agent_command, ["install-unit", "--print"])
    assert unit.exit_code == 0
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line in unit.output
    assert "ExecStart=/opt/k agent run" in unit_text("/opt/k")


@pytest.mark.parametrize("dest", ["file"])
def test_log_file_from_config(tmp_path: Path, dest: str) -> None:
    from keyless.cli.agent_cmd import _log_handler

    config = tmp_path / "config.yaml"
    config.write_text(f"LOG_DESTINATION: {dest}\nLOG_FILE_PATH: {tmp_path / 'logs' / 'a.log'}\n")
    handler = _log_handler(None, str(config))
    handler.close()
    assert stat.S_IMODE((tmp_path / "logs" / "a.log").stat().st_mode) == 0o600
