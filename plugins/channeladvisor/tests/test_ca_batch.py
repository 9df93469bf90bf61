"""The batcher: request format, per-part statuses, retries of failed-transient parts only."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from hub_channeladvisor.client.api import ChannelAdvisorClient
from hub_channeladvisor.client.batch import BatchPart, build_body
from hub_channeladvisor.client.outcomes import Action
from hub_core.errors import ChannelError


def gets(n: int, h: Any) -> list[BatchPart]:
    return [BatchPart("GET", f"{h.API}/Products({i})", key=i) for i in range(1, n + 1)]


def test_body_is_multipart_with_absolute_urls_and_content_ids(h) -> None:
    parts = [
        BatchPart("GET", f"{h.API}/Products?$filter=Sku%20eq%20'A''B'&$select=ID,Sku"),
        BatchPart(
            "POST", f"{h.API}/Products(7)/UpdateQuantity", {"Value": {"UpdateType": "Absolute"}}
        ),
    ]
    assert build_body(parts, "b1") == (
        "--b1\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "Content-ID: 1\r\n"
        "\r\n"
        f"GET {h.API}/Products?$filter=Sku%20eq%20'A''B'&$select=ID,Sku HTTP/1.1\r\n"
        "\r\n"
        "\r\n"
        "--b1\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "Content-ID: 2\r\n"
        "\r\n"
        f"POST {h.API}/Products(7)/UpdateQuantity HTTP/1.1\r\n"
        "Content-Type: application/json\r\n"
        "\r\n"
        '{"Value":{"UpdateType":"Absolute"}}\r\n'
        "--b1--\r\n"
    )


def test_batch_request_headers(ca, conn, h) -> None:
    route = ca.batch(lambda parts: [{"status": 200, "body": {"ID": 1}}] * len(parts))
    results = ChannelAdvisorClient(conn()).run_batch(gets(2, h))
    assert [r.ok for r in results] == [True, True]
    request = route.last_request
    assert request.url == f"{h.API}/$batch"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"].startswith("multipart/mixed; boundary=batch_")
    assert request.headers["Authorization"] == f"Bearer {h.ACCESS}"
    assert [p["url"] for p in ca.batches[0]] == [f"{h.API}/Products(1)", f"{h.API}/Products(2)"]


def test_at_most_100_parts_per_batch(ca, conn, h) -> None:
    ca.batch(lambda parts: [{"status": 200, "body": {}}] * len(parts))
    client = ChannelAdvisorClient(conn())
    results = client.run_batch(gets(250, h))
    # Sent in parallel (any order); the results come back in the parts' order.
    assert sorted((len(b) for b in ca.batches), reverse=True) == [100, 100, 50]
    assert [r.part.key for r in results] == list(range(1, 251))
    assert client.batcher.round_trips == 3


def test_parts_failing_individually_only_the_transient_ones_are_resent(ca, conn, h, waits) -> None:
    answers = {
        "Products(1)": [{"status": 200, "body": {"ID": 1}}],
        "Products(2)": [{"status": 500, "body": {"error": {"message": "boom"}}}, {"status": 204}],
        "Products(3)": [{"status": 400, "body": {"error": {"code": "", "message": "bad value"}}}],
        "Products(4)": [{"status": 404, "body": {"error": {"message": "gone"}}}],
        "Products(5)": [{"status": 406}, {"status": 200, "body": {}}],
    }

    def handler(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [answers[p["url"].rsplit("/", 1)[1]].pop(0) for p in parts]

    ca.batch(handler)
    results = ChannelAdvisorClient(conn()).run_batch(gets(5, h))
    assert [r.status for r in results] == [200, 204, 400, 404, 200]
    assert [r.ok for r in results] == [True, True, False, False, True]
    assert results[2].message == "ChannelAdvisor refused the request (HTTP 400): bad value"
    assert [[p["url"].rsplit("/", 1)[1] for p in b] for b in ca.batches] == [
        ["Products(1)", "Products(2)", "Products(3)", "Products(4)", "Products(5)"],
        ["Products(2)", "Products(5)"],
    ]
    assert len(waits) == 1 and 0.5 <= waits[0] <= 1.0
    assert [r.attempts for r in results] == [1, 2, 1, 1, 2]


def test_a_relative_quantity_part_is_not_resent_after_a_server_error(ca, conn, h) -> None:
    replies = [[{"status": 500}, {"status": 500}], [{"status": 204}]]
    ca.batch(lambda parts: replies.pop(0))
    parts = [
        BatchPart("POST", f"{h.API}/Products(1)/UpdateQuantity", {"Value": {}}, idempotent=False),
        BatchPart("PATCH", f"{h.API}/Products(2)", {"BuyItNowPrice": 1}),
    ]
    results = ChannelAdvisorClient(conn()).run_batch(parts)
    assert results[0].resolution.action is Action.RECORD_FAILURE
    assert "not sent again (sending it twice would apply it twice)" in results[0].message
    assert results[1].ok
    # The idempotent PATCH is resent, alone.
    assert [[p["method"] for p in b] for b in ca.batches] == [["POST", "PATCH"], ["PATCH"]]


def test_a_throttled_part_waits_for_retry_after(ca, conn, h, waits) -> None:
    replies = [
        [{"status": 200, "body": {}}, {"status": 429, "headers": {"Retry-After": "5"}}],
        [{"status": 200, "body": {}}],
    ]
    ca.batch(lambda parts: replies.pop(0))
    results = ChannelAdvisorClient(conn()).run_batch(gets(2, h))
    assert [r.ok for r in results] == [True, True]
    assert waits == [pytest.approx(5.0, abs=0.05)]


def test_an_unauthorized_part_refreshes_once(ca, conn, h) -> None:
    token = ca.token()
    denied = {"error": {"code": "", "message": "Authorization has been denied for this request."}}
    replies = [
        [{"status": 200, "body": {}}, {"status": 401, "body": denied}],
        [{"status": 200, "body": {}}],
    ]
    route = ca.batch(lambda parts: replies.pop(0))
    results = ChannelAdvisorClient(conn()).run_batch(gets(2, h))
    assert [r.ok for r in results] == [True, True]
    assert token.call_count == 1
    assert route.request_history[1].headers["Authorization"] == f"Bearer {h.FRESH}"


def test_an_envelope_server_error_resends_the_whole_batch(ca, conn, h, waits) -> None:
    replies: list[Any] = [
        {"envelope_status": 503, "body": {"Message": "busy"}},
        [{"status": 200, "body": {}}] * 3,
    ]
    ca.batch(lambda parts: replies.pop(0))
    results = ChannelAdvisorClient(conn()).run_batch(gets(3, h))
    assert all(r.ok for r in results)
    assert [len(b) for b in ca.batches] == [3, 3] and len(waits) == 1


def test_timeouts_make_batches_smaller(ca, conn, h) -> None:
    calls = {"n": 0}

    def handler(parts: list[dict[str, Any]]) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            return {"exc": requests.exceptions.ReadTimeout("slow")}
        return [{"status": 200, "body": {}}] * len(parts)

    ca.batch(handler)
    client = ChannelAdvisorClient(conn())
    results = client.run_batch(gets(100, h))
    assert all(r.ok for r in results)
    assert [len(b) for b in ca.batches] == [100, 50, 50]
    assert client.batcher.size == 50


def test_a_part_left_out_of_the_answer_is_resent(ca, conn, h) -> None:
    # The first answer lists only part 1; the batcher sends part 2 again.
    only_first = {"responses": [{"id": "1", "status": 200, "headers": {}, "body": {}}]}
    route = ca.m.post(f"{h.API}/$batch", [{"json": only_first}, {"json": only_first}])
    results = ChannelAdvisorClient(conn()).run_batch(gets(2, h))
    assert all(r.ok for r in results)
    assert [len(h.parse_batch(r)) for r in route.request_history] == [2, 1]


def test_parts_give_up_after_the_attempts(ca, conn, h, waits) -> None:
    ca.batch(lambda parts: [{"status": 503}] * len(parts))
    results = ChannelAdvisorClient(conn()).run_batch(gets(2, h))
    assert [r.attempts for r in results] == [5, 5]
    assert len(ca.batches) == 5 and len(waits) == 4
    assert results[0].message.endswith("gave up after 5 attempts, it will be sent again next time")


def test_a_malformed_batch_fails_the_operation(ca, conn, h) -> None:
    ca.batch(lambda parts: {"envelope_status": 400, "body": {"error": {"message": "bad batch"}}})
    with pytest.raises(ChannelError) as caught:
        ChannelAdvisorClient(conn()).run_batch(gets(2, h))
    assert "ChannelAdvisor refused a batch request" in str(caught.value)
    assert "bad batch" in str(caught.value)


def test_sporadic_failures_over_a_long_run_do_not_use_the_budget_up(ca, conn, h, waits) -> None:
    failed_once: set[str] = set()

    def handler(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        replies = []
        for part in parts:
            # The last part of every batch fails once.
            if part is parts[-1] and part["url"] not in failed_once:
                failed_once.add(part["url"])
                replies.append({"status": 503})
            else:
                replies.append({"status": 200, "body": {}})
        return replies

    ca.batch(handler)
    results = ChannelAdvisorClient(conn()).run_batch(gets(600, h))
    assert all(r.ok for r in results)
    assert len(waits) >= 6 and all(0.5 <= w <= 1.0 for w in waits)


def test_parts_refused_again_after_a_refresh_fail_the_operation(ca, conn, h) -> None:
    from hub_core.errors import AuthError

    token = ca.token()
    ca.batch(lambda parts: [{"status": 401}] * len(parts))
    with pytest.raises(AuthError):
        ChannelAdvisorClient(conn()).run_batch(gets(2, h))
    assert token.call_count == 1 and len(ca.batches) == 2
