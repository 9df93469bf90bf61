"""Requests per minute per profile, and requests in flight per application."""

from __future__ import annotations

import threading
import time

import requests

from hub_channeladvisor_sandbox import DEMO_PROFILE_ID, OTHER_PROFILE_ID, Sandbox
from hub_channeladvisor_sandbox.testing import SandboxApi

TOO_MANY = {"Message": "Too Many Requests"}


def test_the_eleventh_request_in_a_minute_gets_429(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    ca_sandbox.configure(rate_limit_per_minute=10)
    statuses = [ca_api.get("Profiles").status_code for _ in range(10)]
    assert statuses == [200] * 10
    refused = ca_api.get("Profiles")
    assert refused.status_code == 429
    assert refused.json() == TOO_MANY
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    log = ca_sandbox.request_log()
    assert log["throttled_rate"] == 1 and log["status_429"] == 1
    assert log["total_units"] == 10  # the refused request spent nothing


def test_429_without_retry_after_when_switched_off(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    ca_sandbox.configure(rate_limit_per_minute=1, retry_after=False)
    assert ca_api.get("Profiles").status_code == 200
    refused = ca_api.get("Profiles")
    assert refused.status_code == 429
    assert "Retry-After" not in refused.headers


def test_each_profile_has_its_own_budget(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    ca_sandbox.configure(rate_limit_per_minute=2)
    other_id = ca_sandbox.find_products("OTHER-ONLY")[0]["ID"]
    demo_id = catalog["CG0001"]
    other_filter = {"$filter": f"ProfileID eq {OTHER_PROFILE_ID}"}
    # Entity URLs spend their entity's profile, filters the pinned ProfileID.
    assert ca_api.get(f"Products({other_id})").status_code == 200
    assert ca_api.get("Products", **other_filter).status_code == 200
    assert ca_api.get("Products", **other_filter).status_code == 429
    assert ca_api.get(f"Products({demo_id})").status_code == 200
    assert ca_api.get("Products").status_code == 200  # unscoped: the primary profile
    assert ca_api.get(f"Products({demo_id})").status_code == 429
    units = ca_sandbox.request_log()["units_by_profile"]
    assert units == {str(OTHER_PROFILE_ID): 2, str(DEMO_PROFILE_ID): 2}


def test_batch_counts_one_plus_its_parts(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    ca_sandbox.configure(rate_limit_per_minute=10)
    pid = catalog["CG0001"]
    parts = [("PATCH", f"Products({pid})", {"RetailPrice": float(n)}) for n in range(12)]
    response = ca_api.batch(parts)
    assert response.status_code == 200
    statuses = [r["status"] for r in response.json()["responses"]]
    assert statuses == [204] * 9 + [429] * 3
    throttled = response.json()["responses"][-1]
    assert throttled["body"] == TOO_MANY and "retry-after" in throttled["headers"]
    # The refused parts were not applied: the last price written is the 9th.
    assert ca_sandbox.get_product(pid)["RetailPrice"] == 8.0  # type: ignore[index]
    log = ca_sandbox.request_log()
    assert log["total_units"] == 10 and log["throttled_rate"] == 3
    # Budget spent: the next batch is refused as a whole.
    assert ca_api.batch(parts[:1]).status_code == 429


def test_refused_writes_are_not_applied(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    ca_sandbox.configure(rate_limit_per_minute=1)
    pid = catalog["CG0001"]
    assert ca_api.get("Profiles").status_code == 200
    assert ca_api.patch(f"Products({pid})", {"RetailPrice": 1.0}).status_code == 429
    assert ca_sandbox.get_product(pid)["RetailPrice"] is None  # type: ignore[index]
    entry = ca_sandbox.request_log()["entries"][-1]
    assert (entry["status"], entry["throttled"], entry["applied"]) == (429, "rate", False)


def test_the_window_slides(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    ca_sandbox.configure(rate_limit_per_minute=2, rate_window_seconds=0.3)
    assert [ca_api.get("Profiles").status_code for _ in range(3)] == [200, 200, 429]
    time.sleep(0.35)
    assert ca_api.get("Profiles").status_code == 200


def fire(url: str, token: str, count: int) -> list[requests.Response]:
    barrier = threading.Barrier(count)
    results: list[requests.Response] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait()
        response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        with lock:
            results.append(response)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_six_concurrent_requests_with_five_in_flight_gives_one_429(
    ca_sandbox: Sandbox,
) -> None:
    ca_sandbox.configure(latency_ms=600)
    token = ca_sandbox.issue_access_token()
    results = fire(f"{ca_sandbox.base_url}/v1/Profiles", token, 6)
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] * 5 + [429]
    refused = next(r for r in results if r.status_code == 429)
    assert refused.json() == TOO_MANY and refused.headers["Retry-After"] == "1"
    log = ca_sandbox.request_log()
    assert log["max_in_flight"] == 5
    assert log["throttled_in_flight"] == 1
    assert log["max_concurrent_attempts"] == 6


def test_in_flight_is_counted_per_application(ca_sandbox: Sandbox) -> None:
    ca_sandbox.configure(max_in_flight=1, latency_ms=400)
    ca_sandbox.add_application("second-app", "s2")
    ca_sandbox.add_refresh_token("second-refresh", "second-app", [DEMO_PROFILE_ID])
    tokens = [ca_sandbox.issue_access_token(), ca_sandbox.issue_access_token("second-refresh")]
    url = f"{ca_sandbox.base_url}/v1/Profiles"
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def one(token: str) -> None:
        barrier.wait()
        response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=one, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200, 200]
    by_app = ca_sandbox.request_log()["max_in_flight_by_application"]
    assert by_app == {"hub-sandbox-demo-application": 1, "second-app": 1}
