"""The outcome table and the backoff: what each status means, which waits are chosen."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import pytest
import requests

from hub_channeladvisor import plugin
from hub_channeladvisor.client import outcomes
from hub_channeladvisor.client.outcomes import (
    Action,
    BackoffPolicy,
    Kind,
    RetriesExhausted,
    RetryBudget,
    classify_exception,
    classify_status,
)
from hub_core.channel import CatalogItem
from hub_core.errors import RateLimited

ITEM = CatalogItem(sku="A-1", title="A", quantity=3, price=Decimal("9.99"))
ROW = {"json": {"value": [{"ID": 11, "Sku": "A-1"}]}}


def link(conn: Any) -> Any:
    return plugin.hub_link_listings(connection=conn(), items=[ITEM])


@pytest.mark.parametrize(
    ("status", "action", "kind", "applied_unknown"),
    [
        pytest.param(200, Action.SUCCESS, Kind.NONE, False, id="200"),
        pytest.param(204, Action.SUCCESS, Kind.NONE, False, id="204"),
        pytest.param(400, Action.RECORD_FAILURE, Kind.RECORD, False, id="400"),
        pytest.param(401, Action.REFRESH_THEN_RETRY, Kind.CONFIG, False, id="401"),
        pytest.param(403, Action.FAIL, Kind.CONFIG, False, id="403"),
        pytest.param(404, Action.RECORD_FAILURE, Kind.RECORD, False, id="404"),
        pytest.param(406, Action.RETRY, Kind.TRANSIENT, True, id="406"),
        pytest.param(408, Action.RETRY, Kind.TRANSIENT, False, id="408"),
        pytest.param(409, Action.RECORD_FAILURE, Kind.RECORD, False, id="409"),
        pytest.param(413, Action.FAIL, Kind.SYSTEM, False, id="413"),
        pytest.param(414, Action.FAIL, Kind.SYSTEM, False, id="414"),
        pytest.param(418, Action.RECORD_FAILURE, Kind.RECORD, False, id="other-4xx"),
        pytest.param(429, Action.RATE_LIMITED, Kind.TRANSIENT, False, id="429"),
        pytest.param(500, Action.RETRY, Kind.TRANSIENT, True, id="500"),
        pytest.param(503, Action.RETRY, Kind.TRANSIENT, True, id="503"),
        pytest.param(599, Action.RETRY, Kind.TRANSIENT, True, id="other-5xx"),
    ],
)
def test_status_table(status: int, action: Action, kind: Kind, applied_unknown: bool) -> None:
    resolution = classify_status(status)
    assert (resolution.action, resolution.kind, resolution.applied_unknown) == (
        action,
        kind,
        applied_unknown,
    )


def test_denied_message_inside_a_success_means_refresh() -> None:
    body = {"error": {"code": "", "message": "Authorization has been denied for this request."}}
    assert classify_status(200, body).action is Action.REFRESH_THEN_RETRY


@pytest.mark.parametrize(
    ("exc", "action", "applied_unknown", "timeout"),
    [
        pytest.param(
            requests.exceptions.ConnectTimeout(), Action.RETRY, False, True, id="connect-timeout"
        ),
        pytest.param(
            requests.exceptions.ReadTimeout(), Action.RETRY, True, True, id="read-timeout"
        ),
        pytest.param(requests.exceptions.ConnectionError(), Action.RETRY, True, False, id="reset"),
        pytest.param(
            requests.exceptions.ChunkedEncodingError(), Action.RETRY, True, False, id="cut"
        ),
        pytest.param(requests.exceptions.InvalidURL(), Action.FAIL, False, False, id="bad-url"),
    ],
)
def test_exception_table(
    exc: Exception, action: Action, applied_unknown: bool, timeout: bool
) -> None:
    resolution = classify_exception(exc)
    assert (resolution.action, resolution.applied_unknown, resolution.timeout) == (
        action,
        applied_unknown,
        timeout,
    )


def test_error_message_reads_both_shapes_and_text() -> None:
    assert outcomes.error_message({"error": {"code": "", "message": "No product"}}) == "No product"
    assert outcomes.error_message({"Message": "Too Many Requests"}) == "Too Many Requests"
    assert outcomes.error_message({"error": "invalid_grant"}) == "invalid_grant"
    assert outcomes.error_message("Bad Request\n") == "Bad Request"


def test_exponential_waits_double_with_jitter_and_stop_at_the_caps() -> None:
    policy = BackoffPolicy(max_attempts=5, max_total_wait=10, base=1, cap=4, rng=random.Random(1))
    budget = RetryBudget(policy)
    retry = classify_status(503)
    chosen = []
    while (wait := budget.next_wait(retry)) is not None:
        chosen.append(wait)
        budget.attempts += 1
        budget.waited += wait
    # 1 -> [0.5, 1], 2 -> [1, 2], 4 -> [2, 4]; the fourth (cap 4 -> [2, 4]) would pass 10 s.
    assert len(chosen) in (3, 4)
    for wait, full in zip(chosen, [1, 2, 4, 4], strict=False):
        assert full / 2 <= wait <= full
    assert sum(chosen) <= 10


def test_retry_after_accepts_seconds_and_dates() -> None:
    assert outcomes.retry_after_seconds({"Retry-After": "7"}) == 7.0
    when = datetime.now(UTC) + timedelta(seconds=30)
    seconds = outcomes.retry_after_seconds({"retry-after": format_datetime(when, usegmt=True)})
    assert seconds is not None and 28 <= seconds <= 30
    assert outcomes.retry_after_seconds({"Retry-After": "soon"}) is None
    assert outcomes.retry_after_seconds({}) is None


def test_429_with_retry_after_waits_exactly_that(ca, conn, waits) -> None:
    ca.get(
        "Products",
        {
            "status_code": 429,
            "headers": {"Retry-After": "7"},
            "json": {"Message": "Too Many Requests"},
        },
        ROW,
    )
    assert link(conn)[0].channel_product_id == "11"
    assert waits == [pytest.approx(7.0, abs=0.05)]
    assert len(ca.sent("GET")) == 2


def test_429_without_retry_after_backs_off_exponentially(ca, conn, waits) -> None:
    ca.get("Products", {"status_code": 429}, {"status_code": 429}, ROW)
    link(conn)
    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0
    assert len(ca.sent("GET")) == 3


def test_429_pauses_the_whole_profile(ca, conn, waits) -> None:
    from hub_channeladvisor.client.api import ChannelAdvisorClient

    ca.get("Products", {"status_code": 429, "headers": {"Retry-After": "3"}}, ROW)
    connection = conn()
    client = ChannelAdvisorClient(connection)
    paused = []
    client.limiter.pause = paused.append  # type: ignore[method-assign]
    client.lookup_skus(["A-1"])
    assert paused == [3.0]


def test_5xx_then_success(ca, conn, waits) -> None:
    ca.get("Products", {"status_code": 500}, {"status_code": 503}, ROW)
    assert link(conn)[0].channel_product_id == "11"
    assert len(ca.sent("GET")) == 3 and len(waits) == 2


def test_connection_errors_are_retried(ca, conn, waits) -> None:
    ca.get(
        "Products",
        {"exc": requests.exceptions.ConnectTimeout},
        {"exc": requests.exceptions.ConnectionError},
        ROW,
    )
    assert link(conn)[0].channel_product_id == "11"
    assert len(waits) == 2


def test_5xx_until_the_attempts_run_out(ca, conn, waits) -> None:
    ca.get("Products", {"status_code": 503, "json": {"Message": "down"}})
    with pytest.raises(RetriesExhausted) as caught:
        link(conn)
    assert len(ca.sent("GET")) == 5 and len(waits) == 4
    assert str(caught.value).startswith(
        "ChannelAdvisor is unavailable (HTTP 503): down; gave up after 5 attempts"
    )


def test_rate_limit_until_the_attempts_run_out(ca, conn, waits) -> None:
    ca.get("Products", {"status_code": 429, "headers": {"Retry-After": "2"}})
    with pytest.raises(RateLimited) as caught:
        link(conn)
    assert waits == [pytest.approx(2.0, abs=0.05)] * 4
    assert "rate limit (HTTP 429) after 5 attempts" in str(caught.value)


def test_a_retry_after_longer_than_the_total_wait_gives_up_at_once(ca, conn, waits) -> None:
    ca.get("Products", {"status_code": 429, "headers": {"Retry-After": "600"}})
    with pytest.raises(RateLimited):
        link(conn)
    assert waits == [] and len(ca.sent("GET")) == 1


def test_403_fails_the_operation_with_the_fix(ca, conn) -> None:
    from hub_core.errors import AuthError

    ca.get("Products", {"status_code": 403})
    with pytest.raises(AuthError) as caught:
        link(conn)
    assert "reconnect with an authorization that may write" in str(caught.value)
    assert len(ca.sent("GET")) == 1
