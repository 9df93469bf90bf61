"""One retry engine governs plain requests, the token refresh and ``$batch`` parts alike.

Each outcome sequence is met by the three paths in turn (a ``GET``, the token endpoint, the
one part of a ``$batch``); every path must send as often, wait the same seconds (the backoff's
jitter comes from one seeded generator), note the same retries and end with the same words.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from typing import Any

import pytest
import requests

from hub_channeladvisor.client import auth, limiter
from hub_channeladvisor.client import retry as retry_module
from hub_channeladvisor.client.api import ChannelAdvisorClient
from hub_channeladvisor.client.auth import REFRESH_FAILED
from hub_channeladvisor.client.batch import BatchPart
from hub_channeladvisor.client.outcomes import UNKNOWN_OUTCOME, BackoffPolicy
from hub_channeladvisor.client.retry import REFRESHED_AGAIN
from hub_core.errors import AuthError, ChannelError, RateLimited

DOWN = {"Message": "down"}
DENIED = {"error": {"code": "", "message": "Authorization has been denied for this request."}}
OK = "ok"


@dataclasses.dataclass
class Seen:
    """What one path did with an outcome sequence."""

    sends: int
    waits: list[float]
    notes: list[str]
    ok: bool
    #: The final message: the failed record's, or the error's (without a path's own prefix).
    message: str = ""
    error: type[BaseException] | None = None


def _policy() -> BackoffPolicy:
    # The same jitter on every path: equal waits prove one backoff.
    return BackoffPolicy(rng=random.Random(20261203))


def _notes(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The retry notes without the request line: ``HTTP 503; retry 1 in 0.8 s``."""
    return [
        r.getMessage().split(": ", 1)[1] for r in caplog.records if "; retry " in r.getMessage()
    ]


def _plain(ca: Any, conn: Any, h: Any, outcomes: list[Any]) -> tuple[int, Any]:
    """``GET Products(1)`` through ``HttpClient.request``."""
    route = ca.m.get(f"{h.API}/Products(1)", [_mock(o, {"json": {"ID": 1}}) for o in outcomes])
    client = ChannelAdvisorClient(conn(), policy=_policy())
    try:
        result: Any = client.http.request("GET", client.url("Products(1)"))
    except ChannelError as exc:
        result = exc
    return route.call_count, result


def _token(ca: Any, conn: Any, h: Any, outcomes: list[Any]) -> tuple[int, Any]:
    """The token refresh of an expired access token."""
    issued = {"json": {"access_token": h.FRESH, "expires_in": 3600}}
    route = ca.token(*[_mock(o, issued) for o in outcomes])
    client = ChannelAdvisorClient(conn(expires_at=time.time() - 5), policy=_policy())
    try:
        result: Any = client.auth.token()
    except ChannelError as exc:
        result = exc
    return route.call_count, result


def _batch(ca: Any, conn: Any, h: Any, outcomes: list[Any]) -> tuple[int, Any]:
    """The one part of a ``$batch``."""
    replies = list(outcomes)

    def handler(parts: list[dict[str, Any]]) -> Any:
        outcome = replies.pop(0) if len(replies) > 1 else replies[0]
        if isinstance(outcome, type):
            return {"exc": outcome()}
        if outcome == OK:
            return [{"status": 200, "body": {"ID": 1}}]
        status, headers, body = outcome
        return [{"status": status, "headers": headers, "body": body}]

    ca.batch(handler)
    client = ChannelAdvisorClient(conn(), policy=_policy())
    try:
        result: Any = client.run_batch([BatchPart("GET", client.url("Products(1)"))])[0]
    except ChannelError as exc:
        result = exc
    return len(ca.batches), result


def _mock(outcome: Any, success: dict[str, Any]) -> dict[str, Any]:
    """An outcome as a requests-mock answer (the last one repeats)."""
    if isinstance(outcome, type):
        return {"exc": outcome}
    if outcome == OK:
        return success
    status, headers, body = outcome
    return {"status_code": status, "headers": headers, "json": body}


PATHS = {"plain": _plain, "token": _token, "batch": _batch}


def _meet(
    path: str,
    outcomes: list[Any],
    ca: Any,
    conn: Any,
    h: Any,
    waits: list[float],
    caplog: pytest.LogCaptureFixture,
) -> Seen:
    # A fresh process for each path: no token store, no limiter pause left by another.
    auth.reset_token_stores()
    limiter.reset_registry()
    waits.clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        sends, result = PATHS[path](ca, conn, h, outcomes)
    seen = Seen(sends, list(waits), _notes(caplog), ok=False)
    if isinstance(result, BaseException):
        seen.error = type(result)
        seen.message = str(result).removeprefix(REFRESH_FAILED)
    elif isinstance(result, str):
        seen.ok = True
    else:
        seen.ok = result.ok
        seen.message = "" if result.ok else result.message
    return seen


SEQUENCES = {
    "503-then-ok": [(503, {}, DOWN), OK],
    "500-502-then-ok": [(500, {}, DOWN), (502, {}, DOWN), OK],
    "429-retry-after-then-ok": [(429, {"Retry-After": "3"}, DOWN), OK],
    "connect-timeout-then-ok": [requests.exceptions.ConnectTimeout, OK],
    "reset-twice-then-ok": [requests.exceptions.ConnectionError] * 2 + [OK],
}


@pytest.mark.parametrize("outcomes", list(SEQUENCES.values()), ids=list(SEQUENCES))
def test_a_transient_sequence_is_retried_alike_on_every_path(
    outcomes: list[Any], ca: Any, conn: Any, h: Any, waits: list[float], caplog: Any
) -> None:
    seen = {path: _meet(path, outcomes, ca, conn, h, waits, caplog) for path in PATHS}
    plain = seen["plain"]
    assert plain.ok and plain.sends == len(outcomes)
    assert len(plain.waits) == len(plain.notes) == len(outcomes) - 1
    for path in ("token", "batch"):
        assert seen[path].ok, path
        assert seen[path].sends == plain.sends, path
        assert seen[path].waits == pytest.approx(plain.waits, abs=0.05), path
    # The batch's note counts the parts; the failure and the retry number are the same.
    assert seen["token"].notes == plain.notes
    assert [n.split("; ", 1)[1] for n in seen["batch"].notes] == [
        n.split("; ", 1)[1] for n in plain.notes
    ]


def test_a_retry_after_is_waited_exactly_on_every_path(
    ca: Any, conn: Any, h: Any, waits: list[float], caplog: Any
) -> None:
    outcomes = SEQUENCES["429-retry-after-then-ok"]
    for path in PATHS:
        assert _meet(path, outcomes, ca, conn, h, waits, caplog).waits == [
            pytest.approx(3.0, abs=0.05)
        ], path


def test_the_attempts_run_out_alike_on_every_path(
    ca: Any, conn: Any, h: Any, waits: list[float], caplog: Any
) -> None:
    seen = {path: _meet(path, [(503, {}, DOWN)], ca, conn, h, waits, caplog) for path in PATHS}
    for path, one in seen.items():
        assert (one.ok, one.sends, len(one.waits)) == (False, 5, 4), path
        assert one.message.startswith(
            "ChannelAdvisor is unavailable (HTTP 503): down; gave up after 5 attempts"
        ), path
        assert one.waits == pytest.approx(seen["plain"].waits, abs=0.05), path
    # A request and the token refresh fail the operation; a part fails alone.
    assert seen["plain"].error is not None and seen["token"].error is not None
    assert seen["batch"].error is None
    assert seen["batch"].message.endswith("it will be sent again next time")


def test_a_rate_limit_runs_out_alike_on_every_path(
    ca: Any, conn: Any, h: Any, waits: list[float], caplog: Any
) -> None:
    throttled = [(429, {"Retry-After": "2"}, DOWN)]
    seen = {path: _meet(path, throttled, ca, conn, h, waits, caplog) for path in PATHS}
    for path, one in seen.items():
        assert one.sends == 5 and one.waits == [pytest.approx(2.0, abs=0.05)] * 4, path
    assert seen["plain"].error is RateLimited
    assert "rate limit (HTTP 429) after 5 attempts" in seen["plain"].message
    assert "rate limit (HTTP 429) after 5 attempts" in seen["token"].message


def test_a_final_failure_is_not_retried_and_reads_alike_on_every_path(
    ca: Any, conn: Any, h: Any, waits: list[float], caplog: Any
) -> None:
    gone = [(404, {}, {"error": {"message": "No such thing"}})]
    seen = {path: _meet(path, gone, ca, conn, h, waits, caplog) for path in PATHS}
    for path, one in seen.items():
        assert (one.sends, one.waits, one.notes) == (1, [], []), path
        assert one.message == "ChannelAdvisor has no such record (HTTP 404): No such thing", path
    # The token endpoint has no record to miss: the refresh fails the operation.
    assert seen["token"].error is AuthError and seen["plain"].error is None


def test_a_write_whose_answer_was_lost_is_not_resent_alike(ca: Any, conn: Any, h: Any) -> None:
    ca.m.post(f"{h.API}/Orders(1)/Ship", [{"status_code": 500}])
    ca.batch(lambda parts: [{"status": 500}])
    client = ChannelAdvisorClient(conn(), policy=_policy())
    url = client.url("Orders(1)/Ship")
    plain = client.http.request("POST", url, json_body={}, idempotent=False)
    (part,) = client.run_batch([BatchPart("POST", url, {}, idempotent=False)])
    assert plain.resolution is part.resolution is UNKNOWN_OUTCOME
    assert plain.message == part.message
    assert len(ca.sent("POST", "Ship")) == 1 and len(ca.batches) == 1


def test_a_refresh_that_does_not_help_fails_alike(ca: Any, conn: Any, h: Any) -> None:
    token = ca.token()
    ca.m.get(f"{h.API}/Products(1)", status_code=401, json=DENIED)
    ca.batch(lambda parts: [{"status": 401, "body": DENIED}])
    errors = []
    for send in (
        lambda c: c.http.request("GET", c.url("Products(1)")),
        lambda c: c.run_batch([BatchPart("GET", c.url("Products(1)"))]),
    ):
        with pytest.raises(AuthError) as caught:
            send(ChannelAdvisorClient(conn(), policy=_policy()))
        errors.append(caught.value.message)
    assert errors == [REFRESHED_AGAIN, REFRESHED_AGAIN]
    # Each path refreshed once and sent twice.
    assert token.call_count == 2
    assert len(ca.sent("GET", "Products(1)")) == 2 and len(ca.batches) == 2


def test_every_path_runs_through_the_one_engine(
    ca: Any, conn: Any, h: Any, waits: list[float], caplog: Any, monkeypatch: Any
) -> None:
    runs: list[str] = []
    run = retry_module.RetryEngine.run

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        runs.append(self.line)
        return run(self, *args, **kwargs)

    monkeypatch.setattr(retry_module.RetryEngine, "run", counted)
    for path in PATHS:
        _meet(path, [OK], ca, conn, h, waits, caplog)
    assert runs == [
        "GET /v1/Products(1)",
        "token refresh POST /oauth2/token",
        "POST /v1/$batch",
    ]


@pytest.mark.parametrize("path", ["plain", "batch"])
def test_a_send_refused_for_its_token_counts_as_an_attempt(
    path: str, ca: Any, conn: Any, h: Any, waits: list[float], caplog: Any
) -> None:
    token = ca.token()
    seen = _meet(path, [(401, {}, DENIED), (503, {}, DOWN)], ca, conn, h, waits, caplog)
    # Every send counts: one refused for its token, four unavailable (three waits).
    assert (seen.sends, len(seen.waits), token.call_count) == (5, 3, 1)
    assert "gave up after 5 attempts" in seen.message


@pytest.mark.parametrize("path", ["plain", "batch"])
def test_a_refresh_that_helped_allows_a_later_one(
    path: str, ca: Any, conn: Any, h: Any, waits: list[float], caplog: Any
) -> None:
    token = ca.token()
    refused = (401, {}, DENIED)
    seen = _meet(path, [refused, (503, {}, DOWN), refused, OK], ca, conn, h, waits, caplog)
    # Only a refresh followed at once by another refusal fails the operation.
    assert seen.ok and (seen.sends, len(seen.waits), token.call_count) == (4, 1, 2)
