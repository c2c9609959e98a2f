"""Scripted misbehaviour: status answers, delays, dropped connections and hangs, per target.

Rules come from the config file and can be replaced at run time through the control endpoint. A rule
with ``count`` hits that many matching requests and then retires; ``rate`` samples requests with a
seeded generator so a run can be repeated. Rules are checked in order; the first that fires wins.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from dataclasses import dataclass

from aiohttp import web

from keyless.emulator import request_keys as keys
from keyless.emulator.config import FaultRule
from keyless.emulator.errors import StorageError


class DropConnection(Exception):
    """Raised to close the client's connection without any answer."""


@dataclass
class _Armed:
    rule: FaultRule
    remaining: int | None
    fired: int = 0


class FaultInjector:
    def __init__(self, rules: list[FaultRule] | tuple[FaultRule, ...] = (), seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)  # noqa: S311 - sampling faults, not security
        self._armed: list[_Armed] = []
        self.replace(list(rules))

    def replace(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._armed = [_Armed(rule, rule.count) for rule in rules]

    def describe(self) -> list[dict[str, object]]:
        with self._lock:
            return [
                {"target": a.rule.target, "action": a.rule.action, "status": a.rule.status,
                 "remaining": a.remaining, "fired": a.fired}
                for a in self._armed
            ]

    def _pick(self, target: str, method: str) -> FaultRule | None:
        with self._lock:
            for armed in self._armed:
                rule = armed.rule
                if rule.target != target or (rule.method and rule.method != method):
                    continue
                if armed.remaining == 0:
                    continue
                if rule.rate < 1.0 and self._random.random() >= rule.rate:
                    continue
                if armed.remaining is not None:
                    armed.remaining -= 1
                armed.fired += 1
                return rule
        return None

    async def apply(self, request: web.Request, target: str) -> web.StreamResponse | None:
        """None: serve normally. A response: send it instead. Raises DropConnection or StorageError."""
        rule = self._pick(target, request.method)
        if rule is None:
            return None
        request[keys.FAULT] = rule.action
        if rule.action == "delay":
            await asyncio.sleep(rule.seconds)
            return None
        if rule.action == "timeout":
            await asyncio.sleep(rule.seconds)
            raise DropConnection
        if rule.action == "drop":
            raise DropConnection
        headers = {}
        if rule.retry_after is not None:
            headers["Retry-After"] = str(int(rule.retry_after)) if rule.retry_after.is_integer() \
                else str(rule.retry_after)
        if target == "files":
            code = rule.code or ("ServerBusy" if rule.status == 503 else "InternalError")
            raise StorageError(rule.status, code, headers=headers)
        # Identity endpoints answer JSON errors, as IMDS does.
        body = {"error": rule.code or _IMDS_ERRORS.get(rule.status, "unknown_error"),
                "error_description": f"Injected fault: HTTP {rule.status}"}
        return web.Response(status=rule.status, text=json.dumps(body), content_type="application/json",
                            headers=headers)


_IMDS_ERRORS = {
    404: "not_found",
    410: "gone",
    429: "too_many_requests",
    500: "unknown_error",
    503: "service_unavailable",
}
