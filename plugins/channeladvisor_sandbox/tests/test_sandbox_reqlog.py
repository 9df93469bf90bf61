"""The request log keeps what clients sent: each request's JSON body, batch parts included,
bounded to the most recent entries."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from hub_channeladvisor_sandbox import DEMO_REFRESH_TOKEN, AdminError, Sandbox
from hub_channeladvisor_sandbox.reqlog import MAX_BODY_BYTES, RequestLog
from hub_channeladvisor_sandbox.testing import SandboxApi, fetch_access_token

QTY = {"Value": {"UpdateType": "Absolute", "Updates": [{"DistributionCenterID": 0, "Quantity": 3}]}}


def entries(sandbox: Sandbox) -> list[dict[str, Any]]:
    return sandbox.request_log()["entries"]  # type: ignore[no-any-return]


def test_each_request_logs_its_parsed_body(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    pid = catalog["CG0001"]
    ca_api.get(f"Products({pid})")
    ca_api.patch(f"Products({pid})", {"BuyItNowPrice": 12.75})
    ca_api.post(f"Products({pid})/UpdateQuantity", json=QTY)
    not_json = ca_api.request("PATCH", f"Products({pid})", data=b"price=1")
    assert not_json.status_code == 400
    logged = [(e["method"], e["body"], e["body_size"]) for e in entries(ca_sandbox)]
    assert logged == [
        ("GET", None, 0),
        ("PATCH", {"BuyItNowPrice": 12.75}, len(json.dumps({"BuyItNowPrice": 12.75}))),
        ("POST", QTY, len(json.dumps(QTY))),
        ("PATCH", None, 7),
    ]


def test_batch_parts_log_their_own_bodies(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    pid = catalog["MUG-1"]
    response = ca_api.batch(
        [
            ("POST", f"Products({pid})/UpdateQuantity", QTY),
            ("PATCH", f"Products({pid})", {"RetailPrice": 4.5}),
            ("GET", f"Products({pid})", None),
        ]
    )
    assert response.status_code == 200
    log = entries(ca_sandbox)
    [envelope] = [e for e in log if not e["in_batch"]]
    parts = [e for e in log if e["in_batch"]]
    # The envelope is multipart, not JSON: its parts carry the bodies.
    assert envelope["body"] is None and envelope["body_size"] > 0
    assert [(e["method"], e["body"]) for e in parts] == [
        ("POST", QTY),
        ("PATCH", {"RetailPrice": 4.5}),
        ("GET", None),
    ]
    assert all(e["batch_seq"] == envelope["seq"] for e in parts)


def test_refused_requests_log_their_body_too(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    pid = catalog["CG0001"]
    ca_sandbox.fail_next("400", pattern=f"Products({pid})")
    ca_api.patch(f"Products({pid})", {"RetailPrice": 1.0})
    ca_sandbox.configure(rate_limit_per_minute=1)  # the next request is over the limit
    ca_api.patch(f"Products({pid})", {"RetailPrice": 2.0})
    assert [(e["status"], e["body"]) for e in entries(ca_sandbox)] == [
        (400, {"RetailPrice": 1.0}),
        (429, {"RetailPrice": 2.0}),
    ]


def test_token_requests_keep_no_body(ca_sandbox: Sandbox) -> None:
    assert fetch_access_token(ca_sandbox.base_url).status_code == 200
    [entry] = entries(ca_sandbox)
    assert entry["path"] == "/oauth2/token"
    assert entry["body"] is None and entry["body_size"] > 0
    assert DEMO_REFRESH_TOKEN not in json.dumps(ca_sandbox.request_log())


def test_only_the_most_recent_bodies_are_kept(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    pid = catalog["CG0001"]
    ca_sandbox.configure(max_logged_bodies=2)
    for price in (1.0, 2.0, 3.0):
        ca_api.patch(f"Products({pid})", {"RetailPrice": price})
    log = ca_sandbox.request_log()
    assert [e["body"] for e in log["entries"]] == [
        None,
        {"RetailPrice": 2.0},
        {"RetailPrice": 3.0},
    ]
    assert all(e["body_size"] > 0 for e in log["entries"])  # the size stays
    assert log["bodies_dropped"] == 1

    ca_sandbox.configure(max_logged_bodies=0)  # shrinking drops the kept ones at once
    ca_api.patch(f"Products({pid})", {"RetailPrice": 4.0})
    log = ca_sandbox.request_log()
    assert [e["body"] for e in log["entries"]] == [None] * 4
    assert log["bodies_dropped"] == 3
    assert ca_sandbox.config()["max_logged_bodies"] == 0
    ca_sandbox.reset_log()
    assert ca_sandbox.request_log()["bodies_dropped"] == 0
    with pytest.raises(AdminError):
        ca_sandbox.configure(max_logged_bodies=-1)


def test_the_bound_is_a_constructor_argument_and_an_admin_setting() -> None:
    with Sandbox(max_logged_bodies=1) as sandbox:
        assert sandbox.max_logged_bodies == 1 and sandbox.log.max_bodies == 1
        admin = f"{sandbox.base_url}/_sandbox"
        config = requests.post(f"{admin}/config", json={"max_logged_bodies": 5}, timeout=5)
        assert config.status_code == 200 and config.json()["max_logged_bodies"] == 5
        assert sandbox.log.max_bodies == 5
        bad = requests.post(f"{admin}/config", json={"max_logged_bodies": "x"}, timeout=5)
        assert bad.status_code == 400
        api = SandboxApi(sandbox)
        api.post("Orders(1)/Ship", json={"Value": {}})
        [entry] = requests.get(f"{admin}/log", timeout=5).json()["entries"]
        assert entry["body"] == {"Value": {}}


def test_big_or_broken_bodies_are_not_parsed() -> None:
    log = RequestLog()
    assert log.parse_body(b'{"a": [1, 2]}') == {"a": [1, 2]}
    assert log.parse_body(b"") is None and log.parse_body(None) is None
    assert log.parse_body(b'{"a": ') is None
    assert log.parse_body(b"\xff\xfe\x00") is None
    assert log.parse_body(b"[" * 30_000 + b"]" * 30_000) is None  # too deep to parse
    big = json.dumps({"a": "x" * MAX_BODY_BYTES}).encode()
    assert log.parse_body(big) is None
    assert RequestLog(max_bodies=0).parse_body(b"{}") is None
