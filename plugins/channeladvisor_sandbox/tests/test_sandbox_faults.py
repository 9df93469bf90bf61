"""Injected faults (each kind, patterns, counts, messages, batch parts, determinism) and
latency."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import pytest
import requests

from hub_channeladvisor_sandbox import DEMO_REFRESH_TOKEN, FaultConfig, FaultRule, Sandbox
from hub_channeladvisor_sandbox.testing import SandboxApi, fetch_access_token

SHIP = {
    "Value": {
        "ShippingCarrier": "UPS",
        "ShippingClass": "Ground",
        "DeliveryStatus": "Complete",
        "SellerFulfillmentID": "HUB-1",
    }
}


@pytest.fixture
def order_id(ca_sandbox: Sandbox) -> int:
    return ca_sandbox.seed_orders([{"Items": [{"Sku": "A", "Quantity": 1}]}])[0]


def last_entry(sandbox: Sandbox) -> dict[str, Any]:
    return sandbox.request_log()["entries"][-1]


def test_500_once_then_normal(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    pid = catalog["CG0001"]
    ca_sandbox.fail_next("500", pattern=f"Products({pid})")
    failed = ca_api.patch(f"Products({pid})", {"RetailPrice": 5.0})
    assert failed.status_code == 500
    assert failed.json() == {"Message": "An error has occurred."}
    assert ca_sandbox.get_product(pid)["RetailPrice"] is None  # type: ignore[index]
    entry = last_entry(ca_sandbox)
    assert (entry["status"], entry["fault"], entry["applied"]) == (500, "500", False)
    assert ca_api.patch(f"Products({pid})", {"RetailPrice": 5.0}).status_code == 204
    assert ca_sandbox.get_product(pid)["RetailPrice"] == 5.0  # type: ignore[index]


def test_503_is_plain_text(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    ca_sandbox.fail_next("503", 2)
    responses = [ca_api.get("Profiles") for _ in range(3)]
    assert [r.status_code for r in responses] == [503, 503, 200]
    assert responses[0].text == "Service Unavailable"
    assert ca_sandbox.request_log()["faults"] == {"503": 2}


def test_429_fault_with_and_without_retry_after(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    ca_sandbox.fail_next("429")
    first = ca_api.get("Profiles")
    assert first.status_code == 429 and first.headers["Retry-After"] == "1"
    assert first.json() == {"Message": "Too Many Requests"}
    ca_sandbox.configure(retry_after=False)
    ca_sandbox.fail_next("429")
    assert "Retry-After" not in ca_api.get("Profiles").headers


def test_401_rejects_a_valid_token_once(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    ca_sandbox.fail_next("401", pattern="Orders")
    assert ca_api.get("Profiles").status_code == 200  # pattern does not match
    rejected = ca_api.get("Orders")
    assert rejected.status_code == 401
    assert rejected.json()["error"]["message"] == "Authorization has been denied for this request."
    assert ca_api.get("Orders").status_code == 200  # the same token works again


def test_reset_closes_without_answer_and_applies_nothing(
    ca_sandbox: Sandbox, ca_api: SandboxApi, order_id: int
) -> None:
    ca_sandbox.fail_next("reset", pattern="Ship")
    with pytest.raises(requests.ConnectionError):
        ca_api.post(f"Orders({order_id})/Ship", json=SHIP)
    assert ca_sandbox.get_order(order_id)["ShippingStatus"] == "Unshipped"  # type: ignore[index]
    entry = last_entry(ca_sandbox)
    assert (entry["status"], entry["fault"], entry["applied"]) == (0, "reset", False)
    assert ca_api.post(f"Orders({order_id})/Ship", json=SHIP).status_code == 204


def test_lost_response_applies_then_drops(
    ca_sandbox: Sandbox, ca_api: SandboxApi, order_id: int
) -> None:
    ca_sandbox.fail_next("lost_response", pattern="/Ship")
    with pytest.raises(requests.ConnectionError):
        ca_api.post(f"Orders({order_id})/Ship", json=SHIP)
    order = ca_sandbox.get_order(order_id)
    assert order is not None and order["ShippingStatus"] == "Shipped"
    entry = last_entry(ca_sandbox)
    assert (entry["status"], entry["fault"], entry["applied"]) == (0, "lost_response", True)
    # What a careful client does next: read the fulfillments before retrying.
    found = ca_api.get(
        "Fulfillments", **{"$filter": f"OrderID eq {order_id} and SellerFulfillmentID eq 'HUB-1'"}
    ).json()["value"]
    assert len(found) == 1
    assert ca_api.post(f"Orders({order_id})/Ship", json=SHIP).status_code == 400


def test_timeout_applies_and_answers_after_the_client_gave_up(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    pid = catalog["CG0001"]
    ca_sandbox.fail_next("timeout", pattern="Products(", delay_s=2.0)
    with pytest.raises(requests.Timeout):
        ca_api.request("PATCH", f"Products({pid})", json={"RetailPrice": 7.0}, timeout=0.3)
    assert ca_sandbox.get_product(pid)["RetailPrice"] == 7.0  # type: ignore[index]
    assert ca_sandbox.request_log()["faults"] == {"timeout": 1}
    assert ca_api.get(f"Products({pid})").status_code == 200


def test_only_batch_envelopes(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    ca_sandbox.fail_next("503", pattern="$batch")
    assert ca_api.get("Profiles").status_code == 200
    assert ca_api.batch([("GET", "Profiles", None)]).status_code == 503
    assert ca_api.batch([("GET", "Profiles", None)]).status_code == 200


def test_status_faults_inside_batch_parts(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    pid = catalog["CG0001"]
    ca_sandbox.fail_next("500", pattern="UpdateQuantity", scope="batch")
    # Connection faults never hit parts: this rule only hits top-level requests.
    ca_sandbox.add_fault("reset", pattern="UpdateQuantity")
    qty = {
        "Value": {"UpdateType": "Absolute", "Updates": [{"DistributionCenterID": 0, "Quantity": 4}]}
    }
    response = ca_api.batch([("POST", f"Products({pid})/UpdateQuantity", qty)] * 2)
    assert [r["status"] for r in response.json()["responses"]] == [500, 204]
    with pytest.raises(requests.ConnectionError):
        ca_api.post(f"Products({pid})/UpdateQuantity", json=qty)


def available(sandbox: Sandbox, product_id: int) -> int:
    product = sandbox.get_product(product_id)
    assert product is not None
    return sum(dc["AvailableQuantity"] for dc in product["DCQuantities"])


QTY = {"Value": {"UpdateType": "Absolute", "Updates": [{"DistributionCenterID": 0, "Quantity": 4}]}}


def test_400_refuses_one_orders_ship_with_its_message(
    ca_sandbox: Sandbox, ca_api: SandboxApi
) -> None:
    refused, accepted = ca_sandbox.seed_orders(
        [{"Items": [{"Sku": "A", "Quantity": 1}]}, {"Items": [{"Sku": "B", "Quantity": 1}]}]
    )
    message = f"Order {refused} cannot be shipped."
    ca_sandbox.add_fault("400", pattern=f"Orders({refused})/Ship", method="POST", message=message)
    for _ in range(2):  # no count: it keeps refusing
        response = ca_api.post(f"Orders({refused})/Ship", json=SHIP)
        assert response.status_code == 400
        assert response.json() == {"error": {"code": "", "message": message}}
        assert response.headers["Content-Type"].startswith("application/json")
    assert ca_sandbox.get_order(refused)["ShippingStatus"] == "Unshipped"  # type: ignore[index]
    entry = last_entry(ca_sandbox)
    assert (entry["status"], entry["fault"], entry["applied"]) == (400, "400", False)
    # The same order can still be read, and other orders still ship.
    assert ca_api.get(f"Orders({refused})").status_code == 200
    assert ca_api.post(f"Orders({accepted})/Ship", json=SHIP).status_code == 204
    ca_sandbox.clear_faults()
    assert ca_api.post(f"Orders({refused})/Ship", json=SHIP).status_code == 204


def test_404_default_message_names_the_fault_and_count_spends_it(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    pid = catalog["CG0001"]
    ca_sandbox.fail_next("404", 2, pattern=f"Products({pid})", method="PATCH")
    assert ca_api.get(f"Products({pid})").status_code == 200  # method does not match
    missing = ca_api.patch(f"Products({pid})", {"RetailPrice": 5.0})
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {
            "code": "",
            "message": f"Sandbox fault 404 injected into PATCH /v1/Products({pid}).",
        }
    }
    assert ca_api.patch(f"Products({pid})", {"RetailPrice": 5.0}).status_code == 404
    assert ca_sandbox.get_product(pid)["RetailPrice"] is None  # type: ignore[index]
    assert ca_api.patch(f"Products({pid})", {"RetailPrice": 5.0}).status_code == 204
    assert ca_sandbox.request_log()["faults"] == {"404": 2}


def test_400_inside_batch_parts_refuses_one_record(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    refused, accepted = catalog["CG0001"], catalog["MUG-1"]
    ca_sandbox.add_fault("400", pattern=f"Products({refused})", message="No.")
    response = ca_api.batch(
        [
            ("POST", f"Products({refused})/UpdateQuantity", QTY),
            ("PATCH", f"Products({refused})", {"RetailPrice": 1.0}),
            ("POST", f"Products({accepted})/UpdateQuantity", QTY),
        ]
    )
    assert response.status_code == 200
    parts = response.json()["responses"]
    assert [p["status"] for p in parts] == [400, 400, 204]
    assert parts[0]["body"] == {"error": {"code": "", "message": "No."}}
    refused_product = ca_sandbox.get_product(refused)
    assert refused_product is not None and refused_product["RetailPrice"] is None
    assert available(ca_sandbox, accepted) == 4
    inner = [e for e in ca_sandbox.request_log()["entries"] if e["in_batch"]]
    assert [(e["status"], e["fault"], e["applied"]) for e in inner] == [
        (400, "400", False),
        (400, "400", False),
        (204, None, True),
    ]


def test_400_on_a_batch_envelope_applies_no_part(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    pid = catalog["CG0001"]
    ca_sandbox.fail_next("400", pattern="$batch", scope="top")
    refused = ca_api.batch([("POST", f"Products({pid})/UpdateQuantity", QTY)])
    assert refused.status_code == 400
    message = refused.json()["error"]["message"]
    assert message == "Sandbox fault 400 injected into POST /v1/$batch."
    assert ca_sandbox.request_log()["batch_parts"] == 0
    assert available(ca_sandbox, pid) == 0


def test_400_at_a_rate_is_deterministic() -> None:
    def statuses() -> list[int]:
        with Sandbox(seed=5, faults=FaultConfig.from_rates({"400": 0.4})) as sandbox:
            api = SandboxApi(sandbox)
            return [api.get("Profiles").status_code for _ in range(20)]

    first = statuses()
    assert first == statuses() and set(first) == {200, 400}


def test_message_overrides_other_status_kinds(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    ca_sandbox.fail_next("500", message="Database timeout.")
    assert ca_api.get("Profiles").json() == {"Message": "Database timeout."}
    ca_sandbox.fail_next("503", message="Down for maintenance")
    assert ca_api.get("Profiles").text == "Down for maintenance"


def test_message_validation() -> None:
    assert FaultRule.from_dict({"kind": "404", "message": "gone"}).message == "gone"
    assert FaultRule("400").to_dict()["message"] is None
    with pytest.raises(ValueError, match="takes no message"):
        FaultRule("reset", message="x")
    with pytest.raises(ValueError, match="string"):
        FaultRule("400", message=5)  # type: ignore[arg-type]


def test_token_endpoint_faults(ca_sandbox: Sandbox) -> None:
    ca_sandbox.fail_next("503", pattern="oauth2/token")
    assert fetch_access_token(ca_sandbox.base_url).status_code == 503
    assert fetch_access_token(ca_sandbox.base_url).status_code == 200


@pytest.mark.parametrize("kind", ["reset", "503"])
def test_a_faulted_token_call_leaves_nothing_of_its_form_to_be_read_as_a_request(
    ca_sandbox: Sandbox, kind: str, capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The form of a token call the sandbox refuses or drops is read first: left in the
    connection's buffer, it was parsed as a next request, and the "Bad request syntax" error
    logged it, refresh token included."""
    ca_sandbox.fail_next(kind, pattern="oauth2/token")
    with pytest.raises(requests.ConnectionError) if kind == "reset" else nullcontext():
        fetch_access_token(ca_sandbox.base_url)
    assert fetch_access_token(ca_sandbox.base_url).status_code == 200
    ca_sandbox.stop()  # every handler thread done: whatever it logs is logged
    logged = capfd.readouterr().err + caplog.text
    assert "Bad request syntax" not in logged
    assert DEMO_REFRESH_TOKEN not in logged


def test_rates_are_deterministic_from_the_seed() -> None:
    def statuses(seed: int) -> list[int]:
        config = FaultConfig([FaultRule("500", rate=0.3), FaultRule("503", rate=0.2)])
        with Sandbox(seed=seed, faults=config) as sandbox:
            api = SandboxApi(sandbox)
            return [api.get("Profiles").status_code for _ in range(25)]

    first = statuses(11)
    assert first == statuses(11)
    assert first != statuses(12)
    assert {500, 503, 200} <= set(first)


def test_fault_config_forms() -> None:
    config = FaultConfig.from_dict({"rates": {"500": 0.1, "reset": 0.05}, "pattern": "Ship"})
    assert [(r.kind, r.rate, r.pattern) for r in config.rules] == [
        ("500", 0.1, "Ship"),
        ("reset", 0.05, "Ship"),
    ]
    with pytest.raises(ValueError):
        FaultRule("teapot")
    with pytest.raises(ValueError):
        FaultRule("500", rate=2)


def test_latency_and_jitter_are_seeded() -> None:
    first = Sandbox(seed=3, latency_ms=10, latency_jitter_ms=5)
    second = Sandbox(seed=3, latency_ms=10, latency_jitter_ms=5)
    a = [first.next_latency() for _ in range(5)]
    assert a == [second.next_latency() for _ in range(5)]
    assert all(0.010 <= x <= 0.015 for x in a) and len(set(a)) == 5
    assert Sandbox().next_latency() == 0.0


def test_stop_releases_requests_held_by_a_fault(ca_sandbox: Sandbox) -> None:
    ca_sandbox.fail_next("timeout", delay_s=30)
    api = SandboxApi(ca_sandbox)
    with pytest.raises(requests.Timeout):
        api.request("GET", "Profiles", timeout=0.2)
    ca_sandbox.stop()  # must not wait 30 s for the held response
    assert ca_sandbox.url is None
