"""How one Files request is sent, in layers:

1. the retry layer (:meth:`Pipeline.send`): resends after dropped connections and transient statuses as the
   :class:`~keyless.files.retry.RetryPolicy` says, and polls a 403 while a new role assignment propagates
   (:class:`~keyless.files.retry.AccessWait`); it sleeps on the injected clock;
2. the auth step (:meth:`Pipeline._send_authenticated`): the credential authorizes the headers and the
   request is sent; a 401 makes the credential refresh, and the request is resent once with the new token
   (straight-line code, not a generator: it runs for every request);
3. a single send (:meth:`Pipeline.send_single`) through the transport, which is pure I/O. The destination
   check (:mod:`keyless.files.destinations`) comes first, before the credential is asked for anything.

Turning a failed reply into a typed error is the caller's job, in one place (``ShareClient.send``): this
module returns the last reply and says whether a fresh token was tried.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate

from keyless import protocol as p
from keyless.backoff import parse_retry_after
from keyless.clock import Clock
from keyless.files.auth import Authorizer
from keyless.files.destinations import Destinations
from keyless.files.errors import is_permission_refusal
from keyless.files.retry import AccessWait, RetryPolicy
from keyless.files.transport import Body, HttpTransport, Response, SendError, Sink


@dataclass(slots=True)
class Request:
    """One operation's request; the common headers are added for each attempt (the date moves on). Never
    changed once made (not frozen: a frozen dataclass sets each field through ``object.__setattr__``, and
    one is made per request)."""

    method: str
    url: str  # with the query string
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Body | None = None
    idempotent: bool = True
    client_request_id: str = ""  # one id for every attempt, so logs tie them together
    content_length: int | None = None  # of ``body`` when it is chunks (they have no len() of their own)
    sink: Sink | None = None  # reads a 2xx reply's body into the caller's buffer (streaming transports)


@dataclass(slots=True)
class Result:
    response: Response
    refreshed: bool  # a 401 made the credential refresh, and the request was resent with the new token


_WITH_BODY = frozenset({"PUT", "POST"})


class Pipeline:
    def __init__(
        self,
        transport: HttpTransport,
        destinations: Destinations,
        auth: Authorizer,
        retry: RetryPolicy,
        access_wait: AccessWait,
        clock: Clock,
    ) -> None:
        self.transport = transport
        self.destinations = destinations
        self.auth = auth
        self.retry = retry
        self.access_wait = access_wait
        self.clock = clock
        self.streams = bool(getattr(transport, "streams_bodies", False))
        self._date_cache: tuple[int, str] = (-1, "")

    def send(self, request: Request) -> Result:
        """The last reply (2xx, or the failure the retries could not cure). Raises :class:`SendError`
        when the last attempt got no reply."""
        budget: list[bool] = []  # one token refresh per operation, however many retries it takes
        retries = polls = 0
        access_deadline: float | None = None
        while True:
            try:
                response = self._send_authenticated(request, budget)
            except SendError as exc:
                delay = self.retry.connection_delay(retries, idempotent=request.idempotent, sent=exc.sent)
                if delay is None:
                    raise
                self.clock.sleep(delay)
                retries += 1
                continue
            status = response.status
            if 200 <= status < 300:
                return Result(response, bool(budget))
            retry_after = parse_retry_after(response.header("retry-after"), self.clock.now())
            delay = self.retry.status_delay(
                status, retries, idempotent=request.idempotent, retry_after=retry_after
            )
            if delay is not None:
                self.clock.sleep(delay)
                retries += 1
                continue
            if self.access_wait.seconds > 0 and is_permission_refusal(
                status, response.headers, response.data
            ):
                now = self.clock.now()
                if access_deadline is None:
                    access_deadline = now + self.access_wait.seconds
                delay = self.access_wait.delay(polls, access_deadline - now)
                if delay is not None:
                    self.clock.sleep(delay)
                    polls += 1
                    continue
            return Result(response, bool(budget))

    def _send_authenticated(self, request: Request, budget: list[bool]) -> Response:
        # Before the credential is even asked for a token: it must not go anywhere it could leak.
        self.destinations.check(request.url)
        headers = self._common_headers(request)
        self.auth.authorize(request.method, request.url, headers)
        response = self.send_single(request, headers)
        if response.status != 401 or budget:
            return response
        # One refresh per operation, and a resend only with a token other than the refused one.
        if not self.auth.refresh(headers.get("Authorization", "")):
            return response
        budget.append(True)
        headers = self._common_headers(request)
        self.auth.authorize(request.method, request.url, headers)
        return self.send_single(request, headers)

    def _common_headers(self, request: Request) -> dict[str, str]:
        headers = dict(request.headers)
        headers[p.H_VERSION] = p.CURRENT_VERSION
        headers[p.H_DATE] = self._date()
        headers[p.H_CLIENT_REQUEST_ID] = request.client_request_id
        if request.body is not None or request.method in _WITH_BODY:
            length = request.content_length
            if length is None:
                body = request.body
                length = memoryview(body).nbytes if isinstance(body, (bytes, memoryview)) else 0
            headers["Content-Length"] = str(length)
        return headers

    def _date(self) -> str:
        # x-ms-date has a resolution of one second: format it once per second, not once per request.
        now = int(self.clock.now())
        cached = self._date_cache
        if cached[0] != now:
            cached = self._date_cache = (now, formatdate(now, usegmt=True))
        return cached[1]

    def send_single(self, request: Request, headers: dict[str, str]) -> Response:
        if request.sink is not None and self.streams:
            return self.transport.request(  # type: ignore[call-arg]
                request.method, request.url, headers, request.body, sink=request.sink
            )
        return self.transport.request(request.method, request.url, headers, request.body)
