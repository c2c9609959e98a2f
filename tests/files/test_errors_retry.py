from __future__ import annotations

import base64
import json

from keyless import protocol as p
from keyless.backoff import parse_retry_after
from keyless.files import errors as fe
from keyless.files.retry import AccessWait, RetryPolicy


def _jwt(claims: dict[str, str]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJub25lIn0.{body}.c2ln"


def _req(**kw: object) -> fe.RequestInfo:
    base = dict(
        method="PUT",
        url="https://acct.file.core.windows.net/share/d",
        account="acct",
        share="share",
        operation="create directory",
        action=p.ACTION_WRITE,
        backup_intent=True,
        identity=fe.describe_identity(fe.token_identity(_jwt({"oid": "OID-1", "appid": "APP-1"}))),
    )
    base.update(kw)
    return fe.RequestInfo(**base)  # type: ignore[arg-type]


def _body(code: str, extra: str = "") -> bytes:
    msg = "<Message>m\nRequestId:x</Message>"
    return f"<?xml version='1.0'?><Error><Code>{code}</Code>{msg}{extra}</Error>".encode()


def test_403_names_identity_action_role_scope_and_propagation() -> None:
    err = fe.from_response(
        403, {"x-ms-error-code": p.E_PERMISSION_MISMATCH}, _body(p.E_PERMISSION_MISMATCH), _req()
    )
    assert isinstance(err, fe.PermissionDenied)
    text = str(err)
    assert "OID-1" in text and "APP-1" in text
    assert p.ACTION_WRITE in text and p.ACTION_WRITE_BACKUP in text
    assert "Storage File Data Privileged Contributor" in text
    assert "Storage File Data Privileged Reader" not in text  # cannot write
    assert "fileshares/share" in text and "5-30 minutes" in text


def test_400_missing_intent_header() -> None:
    err = fe.from_response(
        400,
        {"x-ms-error-code": p.E_MISSING_HEADER},
        _body(p.E_MISSING_HEADER, "<HeaderName>x-ms-file-request-intent</HeaderName>"),
        _req(),
    )
    assert isinstance(err, fe.MissingIntentHeader)
    assert "x-ms-file-request-intent: backup" in str(err)


def test_typed_404_409() -> None:
    assert isinstance(
        fe.from_response(404, {"x-ms-error-code": "ShareNotFound"}, b"", _req()), fe.ShareNotFound
    )
    assert isinstance(fe.from_response(404, {}, _body("ParentNotFound"), _req()), fe.ParentNotFound)
    assert isinstance(
        fe.from_response(409, {"x-ms-error-code": "DirectoryNotEmpty"}, b"", _req()), fe.DirectoryNotEmpty
    )
    assert isinstance(
        fe.from_response(409, {"x-ms-error-code": "ResourceAlreadyExists"}, b"", _req()), fe.AlreadyExists
    )
    assert isinstance(fe.from_response(503, {"x-ms-error-code": "ServerBusy"}, b"", _req()), fe.ServiceError)


def test_reader_role_suggested_for_reads() -> None:
    err = fe.from_response(403, {}, b"", _req(method="GET", action=p.ACTION_READ))
    assert "Storage File Data Privileged Reader" in str(err)


def test_retry_policy() -> None:
    policy = RetryPolicy(total=3, backoff_factor=1.0)
    assert policy.status_delay(503, 0, idempotent=False) is not None
    assert policy.status_delay(500, 0, idempotent=False) is None
    assert policy.status_delay(500, 0, idempotent=True) is not None
    assert policy.status_delay(403, 0, idempotent=True) is None
    assert policy.status_delay(503, 3, idempotent=True) is None
    assert policy.connection_delay(0, idempotent=False, sent=False) is not None
    assert policy.connection_delay(0, idempotent=False, sent=True) is None
    for attempt in range(5):
        assert 0 < policy.delay(attempt) <= min(30.0, 2**attempt)
    assert policy.delay(0, retry_after=7) == 7
    assert policy.delay(0, retry_after=10_000) == policy.retry_after_max
    assert RetryPolicy(respect_retry_after_header=False).delay(0, retry_after=7) <= 0.4
    assert parse_retry_after("3", now=0.0) == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("nonsense", now=0.0) is None
    assert parse_retry_after("nan", now=0.0) is None


def test_access_wait_polls_gently_until_the_deadline() -> None:
    wait = AccessWait(seconds=100.0)
    assert [wait.delay(n, 1000.0) for n in range(7)] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert wait.delay(3, 5.0) == 5.0  # never past the deadline
    assert wait.delay(0, 0.0) is None


def test_not_found_exists_and_permission_errors_are_the_builtin_os_errors() -> None:
    req = _req(method="PUT", action=p.ACTION_WRITE)
    assert isinstance(fe.from_response(404, {}, b"", req), FileNotFoundError)
    assert isinstance(
        fe.from_response(409, {"x-ms-error-code": "ResourceAlreadyExists"}, b"", req), FileExistsError
    )
    assert isinstance(fe.from_response(403, {}, b"", req), PermissionError)
    assert isinstance(
        fe.from_response(403, {"x-ms-error-code": "KeyBasedAuthenticationNotPermitted"}, b"", req),
        PermissionError,
    )
    # Still FilesErrors, with their message, and picklable across worker processes.
    err = fe.from_response(404, {}, b"", req)
    assert isinstance(err, fe.FilesError) and str(err).startswith("create directory")
    import pickle

    again = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes
    assert type(again) is type(err) and str(again) == str(err)


def test_library_messages_name_no_command_line_flags() -> None:
    """The library is used without the CLI too: its remedies name concepts; the CLI adds its flags."""
    import re

    remedies = [cls.remedy for cls in _all_subclasses(fe.FilesError)]
    remedies += [fe.AuthenticationFailed.remedy_not_refreshed, fe.permission_remedy(_req())]
    for text in remedies:
        assert not re.search(r"(^|\s)--?[a-z]", text), text


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_all_subclasses(sub)]
    return out
