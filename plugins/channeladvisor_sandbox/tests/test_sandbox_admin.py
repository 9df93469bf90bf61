"""The admin surface under /_sandbox/ and its Python twin."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from hub_channeladvisor_sandbox import (
    DEMO_APPLICATION_ID,
    DEMO_PROFILE_ID,
    DEMO_REFRESH_TOKEN,
    AdminError,
    Sandbox,
)
from hub_channeladvisor_sandbox.testing import SandboxApi, fetch_access_token


class Admin:
    def __init__(self, sandbox: Sandbox) -> None:
        self.base = f"{sandbox.base_url}/_sandbox"

    def get(self, path: str, **params: Any) -> Any:
        response = requests.get(f"{self.base}/{path}", params=params, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: Any = None, status: int | None = None) -> Any:
        response = requests.post(f"{self.base}/{path}", json=body, timeout=10)
        if status is not None:
            assert response.status_code == status, response.text
        else:
            assert response.status_code in (200, 201), response.text
        return response.json()


@pytest.fixture
def admin(ca_sandbox: Sandbox) -> Admin:
    return Admin(ca_sandbox)


def test_health_and_state(admin: Admin, catalog: dict[str, int]) -> None:
    assert admin.get("health")["ok"] is True
    state = admin.get("state")
    assert state["counts"] == {"products": 7, "orders": 0, "fulfillments": 0}
    product = next(
        p
        for p in state["products"]
        if p["Sku"] == "AL-85590-SHOE" and p["ProfileID"] == DEMO_PROFILE_ID
    )
    assert product["BuyItNowPrice"] == 79.99 and product["TotalAvailableQuantity"] == 14
    assert product["DCQuantities"][0]["PendingShipmentQuantity"] == 0
    assert set(state) >= {"products", "orders", "carriers", "distribution_centers", "profiles"}
    assert set(admin.get("state", include="carriers")) == {"counts", "carriers"}


def test_seed_products_by_count_list_and_single(admin: Admin, ca_sandbox: Sandbox) -> None:
    generated = admin.post("products", {"count": 3, "sku_prefix": "GEN-"}, status=201)
    assert generated["count"] == 3
    listed = admin.post("products", [{"Sku": "L1", "BuyItNowPrice": 3.5}], status=201)
    assert listed["count"] == 1
    single = admin.post("products", {"Sku": "S1", "Quantity": 2}, status=201)
    assert ca_sandbox.get_product(single["ids"][0])["TotalAvailableQuantity"] == 2  # type: ignore[index]
    skus = [p["Sku"] for p in admin.get("state", include="products")["products"]]
    assert skus == ["GEN-000001", "GEN-000002", "GEN-000003", "L1", "S1"]
    bad = requests.post(f"{admin.base}/products", json=[{"Sku": "X", "Colour": 1}], timeout=5)
    assert bad.status_code == 400 and "Colour" in bad.json()["error"]
    assert (
        requests.post(f"{admin.base}/products", json=[{"Title": "no sku"}], timeout=5).status_code
        == 400
    )


def test_get_and_delete_product(admin: Admin, ca_sandbox: Sandbox, catalog: dict[str, int]) -> None:
    pid = catalog["MUG-1"]
    product = admin.get(f"products/{pid}")
    assert product["Labels"] == ["Sale"] and product["Attributes"] == {"Color": "Red"}
    deleted = requests.delete(f"{admin.base}/products/{pid}", timeout=5)
    assert deleted.status_code == 200
    assert requests.get(f"{admin.base}/products/{pid}", timeout=5).status_code == 404
    assert requests.delete(f"{admin.base}/products/{pid}", timeout=5).status_code == 404
    api = SandboxApi(ca_sandbox)
    assert api.get(f"Products({pid})").status_code == 404


def test_seed_orders_and_read_them(admin: Admin, ca_sandbox: Sandbox) -> None:
    created = admin.post(
        "orders", {"count": 5, "big_orders": 1, "exported_by": ["x-app"]}, status=201
    )
    assert created["count"] == 5
    order = admin.get(f"orders/{created['ids'][0]}")
    assert len(order["Items"]) > 20
    assert order["exported_by"] == ["x-app"]
    assert order["Fulfillments"][0]["Items"]
    one = admin.post("orders", {"Items": [{"Sku": "SKU-000001"}]}, status=201)
    assert admin.get(f"orders/{one['ids'][0]}")["Items"][0]["ProductID"] is not None
    assert requests.post(f"{admin.base}/orders", json={"Items": []}, timeout=5).status_code == 400
    assert requests.get(f"{admin.base}/orders/1", timeout=5).status_code == 404
    state = admin.get("state", include="orders")
    assert len(state["orders"]) == 6


def test_carriers(admin: Admin) -> None:
    assert "UPS" in admin.get("carriers")
    replaced = admin.post("carriers", {"carriers": [{"Carrier": "DPD", "Classes": ["Next Day"]}]})
    assert replaced == {"DPD": ["Next Day"]}
    merged = admin.post("carriers", {"carriers": {"DPD": ["Classic"]}, "replace": False})
    assert merged == {"DPD": ["Next Day", "Classic"]}


def test_log_and_reset(admin: Admin, ca_api: SandboxApi) -> None:
    ca_api.get("Profiles")
    ca_api.get("Products(1)")
    log = admin.get("log")
    assert log["counts"] == {"GET /v1/Profiles": 1, "GET /v1/Products({id})": 1}
    first = log["entries"][0]
    assert {
        "method",
        "path",
        "query",
        "status",
        "profile_id",
        "application_id",
        "in_batch",
        "units",
        "fault",
        "throttled",
    } <= set(first)
    assert first["application_id"] == DEMO_APPLICATION_ID
    assert first["profile_id"] == DEMO_PROFILE_ID
    assert "entries" not in admin.get("log", entries="0")
    assert len(admin.get("log", since=str(first["seq"]))["entries"]) == 1
    admin.post("log/reset")
    assert admin.get("log")["total"] == 0


def test_config_round_trip(admin: Admin, ca_sandbox: Sandbox) -> None:
    config = admin.post(
        "config",
        {
            "orders_page_size": 7,
            "latency_ms": 1,
            "retry_after": False,
            "faults": {"rules": [{"kind": "503", "count": 1}]},
        },
    )
    assert config["orders_page_size"] == 7 and config["retry_after"] is False
    assert ca_sandbox.orders_page_size == 7
    assert config["faults"]["rules"][0]["kind"] == "503"
    bad = requests.post(f"{admin.base}/config", json={"rate_limit_per_minute": 0}, timeout=5)
    assert bad.status_code == 400
    unknown = requests.post(f"{admin.base}/config", json={"nope": 1}, timeout=5)
    assert unknown.status_code == 400 and "nope" in unknown.json()["error"]


def test_faults_routes(admin: Admin, ca_api: SandboxApi) -> None:
    admin.post("faults", {"rules": [{"kind": "500", "pattern": "Profiles", "count": 1}]})
    admin.post("faults", {"add": {"kind": "503", "pattern": "DistributionCenters", "count": 1}})
    assert ca_api.get("Profiles").status_code == 500
    assert ca_api.get("DistributionCenters").status_code == 503
    rules = admin.get("faults")["rules"]
    assert [(r["kind"], r["injected"], r["count"]) for r in rules] == [("500", 1, 0), ("503", 1, 0)]
    assert requests.delete(f"{admin.base}/faults", timeout=5).json() == {"rules": []}
    bad = requests.post(f"{admin.base}/faults", json={"rules": [{"kind": "418"}]}, timeout=5)
    assert bad.status_code == 400


def test_faults_route_takes_client_errors_with_a_message(admin: Admin, ca_api: SandboxApi) -> None:
    rule = {"kind": "400", "pattern": "Profiles", "method": "GET", "message": "Bad profile."}
    rules = admin.post("faults", {"add": rule})["rules"]
    assert rules[0]["message"] == "Bad profile." and rules[0]["kind"] == "400"
    admin.post("faults", {"rules": [{"kind": "404", "pattern": "Orders", "count": 1}]})
    assert ca_api.get("Orders").json()["error"]["message"].startswith("Sandbox fault 404")
    assert ca_api.get("Orders").status_code == 200
    bad = requests.post(
        f"{admin.base}/faults", json={"add": {"kind": "timeout", "message": "x"}}, timeout=5
    )
    assert bad.status_code == 400 and "message" in bad.json()["error"]


def test_token_routes(admin: Admin, ca_sandbox: Sandbox) -> None:
    token = admin.post("tokens/issue")["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{ca_sandbox.base_url}/v1/Profiles"
    assert requests.get(url, headers=headers, timeout=5).status_code == 200
    assert admin.post("tokens/expire")["expired"] >= 1
    assert requests.get(url, headers=headers, timeout=5).status_code == 401
    admin.post("tokens/revoke", {"refresh_token": DEMO_REFRESH_TOKEN})
    assert fetch_access_token(ca_sandbox.base_url).status_code == 400
    assert (
        requests.post(
            f"{admin.base}/tokens/revoke", json={"refresh_token": "zz"}, timeout=5
        ).status_code
        == 404
    )


def test_applications_and_refresh_tokens(admin: Admin, ca_sandbox: Sandbox) -> None:
    admin.post("applications", {"application_id": "app2", "shared_secret": "s2"})
    admin.post(
        "refresh_tokens",
        {"refresh_token": "r2", "application_id": "app2", "profile_ids": [DEMO_PROFILE_ID]},
    )
    response = fetch_access_token(
        ca_sandbox.base_url, application_id="app2", shared_secret="s2", refresh_token="r2"
    )
    assert response.status_code == 200
    summary = admin.get("credentials")
    assert "app2" in summary["applications"] and "s2" not in str(summary)
    bad = requests.post(
        f"{admin.base}/refresh_tokens",
        json={"refresh_token": "r3", "application_id": "nope", "profile_ids": [1]},
        timeout=5,
    )
    assert bad.status_code == 400


def test_reset_and_unknown_routes(
    admin: Admin, ca_sandbox: Sandbox, catalog: dict[str, int]
) -> None:
    admin.post("reset")
    assert admin.get("state")["counts"]["products"] == 0
    assert requests.get(f"{admin.base}/nope", timeout=5).status_code == 404
    assert requests.put(f"{admin.base}/reset", timeout=5).status_code == 405


def test_python_admin_errors(ca_sandbox: Sandbox) -> None:
    with pytest.raises(AdminError):
        ca_sandbox.configure(max_in_flight=0)
    with pytest.raises(AdminError):
        ca_sandbox.seed_products([{"Sku": "A", "ProfileID": 1}])
    with pytest.raises(AdminError):
        ca_sandbox.seed_orders([{"Items": [{"Sku": "A"}], "ShippingStatus": "PartiallyShipped"}])
    with pytest.raises(AdminError):
        ca_sandbox.issue_access_token("unknown")
    with pytest.raises(AdminError):
        ca_sandbox.seed_products()
