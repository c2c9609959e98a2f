"""``wait_for_server_copy``: polls Get File Properties with growing back-off while a Copy File is pending,
and a copy that ended other than ``success`` is an error naming Azure's status description."""

from __future__ import annotations

from typing import Any

import pytest

from keyless.files import errors as fe
from keyless.files.copying import COPY_POLL_MAX_SECONDS, wait_for_server_copy


class _Reply:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)


class _Client:
    """Answers HEAD with the copy states given, in order."""

    def __init__(self, *states: dict[str, str]) -> None:
        self.states = list(states)
        self.calls: list[tuple[str, str]] = []

    def send(self, method: str, path: str, **_: Any) -> _Reply:
        self.calls.append((method, path))
        return _Reply(self.states.pop(0))


def test_waits_with_growing_back_off_until_success() -> None:
    client = _Client(*([{"x-ms-copy-status": "pending"}] * 7), {"x-ms-copy-status": "success"})
    sleeps: list[float] = []
    wait_for_server_copy(client, "d/f", "pending", source="s", sleep=sleeps.append)  # type: ignore[arg-type]
    assert client.calls == [("HEAD", "d/f")] * 8
    assert len(sleeps) == 8 and sleeps[-1] > sleeps[0]  # grows (equal jitter: each within [d/2, d])
    assert max(sleeps) <= COPY_POLL_MAX_SECONDS


def test_an_answer_that_is_not_pending_costs_no_request() -> None:
    client = _Client()
    wait_for_server_copy(client, "f", "success", source="s", sleep=pytest.fail)  # type: ignore[arg-type]
    assert client.calls == []


@pytest.mark.parametrize("status", ["failed", "aborted"])
def test_a_copy_that_did_not_finish_is_an_error_with_its_description(status: str) -> None:
    client = _Client({"x-ms-copy-status": status, "x-ms-copy-status-description": "why it ended"})
    with pytest.raises(fe.FilesError) as ended:
        wait_for_server_copy(client, "f", "pending", source="s", sleep=lambda _: None)  # type: ignore[arg-type]
    assert f"ended {status}: why it ended" in str(ended.value)
    assert ended.value.code == f"Copy{status.title()}"
