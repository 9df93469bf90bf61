"""Server lifecycle, the CLI command, persistence to a state file, and scale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from hub_channeladvisor_sandbox import (
    DEMO_APPLICATION_ID,
    DEMO_PROFILE_ID,
    DEMO_REFRESH_TOKEN,
    DEMO_SHARED_SECRET,
    OTHER_PROFILE_ID,
    Sandbox,
)
from hub_channeladvisor_sandbox import cli as cli_module
from hub_channeladvisor_sandbox.testing import SandboxApi


def test_context_manager_starts_and_stops() -> None:
    with Sandbox() as sandbox:
        url = sandbox.url
        assert url is not None and url.startswith("http://127.0.0.1:")
        assert requests.get(f"{url}/_sandbox/health", timeout=5).json()["ok"] is True
    assert sandbox.url is None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/_sandbox/health", timeout=2)
    with pytest.raises(RuntimeError):
        _ = sandbox.base_url


def test_start_twice_is_an_error(ca_sandbox: Sandbox) -> None:
    with pytest.raises(RuntimeError):
        ca_sandbox.start()


def test_constants() -> None:
    assert len(str(DEMO_PROFILE_ID)) == 8 and len(str(OTHER_PROFILE_ID)) == 8
    assert DEMO_PROFILE_ID != OTHER_PROFILE_ID
    assert all(
        isinstance(v, str) and v
        for v in (DEMO_APPLICATION_ID, DEMO_SHARED_SECRET, DEMO_REFRESH_TOKEN)
    )


def test_cli_seeds_serves_and_prints_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    started: list[Sandbox] = []

    class RecordingSandbox(Sandbox):
        def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
            started.append(self)
            return super().start(host, port)

    def look_then_interrupt() -> None:
        """Stands in for the wait loop: looks at the live server, then presses Ctrl-C."""
        sandbox = started[0]
        state = requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()
        seen["counts"] = state["counts"]
        seen["skus"] = [(p["Sku"], p["ProfileID"]) for p in state["products"]]
        seen["config"] = sandbox.config()
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module, "Sandbox", RecordingSandbox)
    monkeypatch.setattr(cli_module, "_serve_until_interrupted", look_then_interrupt)
    result = CliRunner().invoke(
        cli_module.channeladvisor,
        [
            "sandbox",
            "--port",
            "0",
            "--products",
            "12",
            "--orders",
            "4",
            "--seed",
            "3",
            "--rate-limit",
            "100",
            "--latency-ms",
            "1",
            "--token-ttl",
            "60",
        ],
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "listening on http://127.0.0.1:" in out
    assert DEMO_APPLICATION_ID in out and DEMO_REFRESH_TOKEN in out and str(DEMO_PROFILE_ID) in out
    assert DEMO_SHARED_SECRET in out and "sandbox-only" in out
    assert seen["counts"]["products"] == 22 and seen["counts"]["orders"] == 4
    # Some SKUs exist in both profiles.
    assert ("SKU-000001", DEMO_PROFILE_ID) in seen["skus"]
    assert ("SKU-000001", OTHER_PROFILE_ID) in seen["skus"]
    assert seen["config"]["rate_limit_per_minute"] == 100
    assert seen["config"]["token_ttl"] == 60
    assert started[0].url is None  # stopped after Ctrl-C
    assert cli_module.sandbox_command.name == "sandbox"


def test_state_file_keeps_everything(tmp_path: Path) -> None:
    path = str(tmp_path / "sandbox.db")
    sandbox = Sandbox(state_file=path)
    assert sandbox.loaded_from_file is False
    [pid] = sandbox.seed_products([{"Sku": "KEEP-1", "Quantity": 4, "BuyItNowPrice": 5.0}])
    [order_id] = sandbox.seed_orders([{"Items": [{"Sku": "KEEP-1", "Quantity": 2}]}])
    sandbox.set_carriers({"UPS": ["Ground"], "Local": ["Bike"]})
    sandbox.add_application("app2", "s2")
    sandbox.add_refresh_token("r2", "app2", [DEMO_PROFILE_ID])
    with sandbox:
        api = SandboxApi(sandbox)
        assert api.patch(f"Products({pid})", {"BuyItNowPrice": 6.5}).status_code == 204
        ship = {
            "Value": {
                "ShippingCarrier": "Local",
                "ShippingClass": "Bike",
                "DeliveryStatus": "Complete",
                "SellerFulfillmentID": "K1",
                "Items": [
                    {
                        "OrderItemID": sandbox.get_order(order_id)["Items"][0]["ID"],  # type: ignore[index]
                        "Quantity": 1,
                    }
                ],
            }
        }
        assert api.post(f"Orders({order_id})/Ship", json=ship).status_code == 204
        assert api.post(f"Orders({order_id})/Export").status_code == 204
        [gone] = sandbox.seed_products([{"Sku": "GONE"}])
        assert api.delete(f"Products({gone})").status_code == 204
    sandbox.close()

    again = Sandbox(state_file=path)
    assert again.loaded_from_file is True
    product = again.get_product(pid)
    assert product is not None and product["BuyItNowPrice"] == 6.5
    assert product["TotalAvailableQuantity"] == 4
    assert again.get_product(gone) is None
    order = again.get_order(order_id)
    assert order is not None
    assert order["ShippingStatus"] == "PartiallyShipped"
    assert order["exported_by"] == [DEMO_APPLICATION_ID]
    assert [
        f["SellerFulfillmentID"] for f in order["Fulfillments"] if f["DeliveryStatus"] == "Complete"
    ] == ["K1"]
    assert again.carriers() == {"UPS": ["Ground"], "Local": ["Bike"]}
    assert "r2" in [t["refresh_token"] for t in again.credentials.summary()["refresh_tokens"]]
    assert again.seed_products([{"Sku": "NEW"}])[0] > gone  # ids keep increasing
    with again:
        api = SandboxApi(again)
        body = api.get("Products", **{"$filter": "Sku eq 'keep-1'"}).json()
        assert [p["ID"] for p in body["value"]] == [pid]
        rest = {
            "Value": {
                "ShippingCarrier": "Local",
                "ShippingClass": "Bike",
                "DeliveryStatus": "Complete",
            }
        }
        assert api.post(f"Orders({order_id})/Ship", json=rest).status_code == 204
    again.close()


def test_100k_products_and_10k_orders(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    ca_sandbox.seed_products(count=100_000)
    ca_sandbox.seed_orders(count=10_000, big_orders=10)
    for n in (1, 50_000, 100_000):
        body = ca_api.get(
            "Products",
            **{
                "$filter": f"Sku eq 'SKU-{n:06d}' and ProfileID eq {DEMO_PROFILE_ID}",
                "$select": "ID,Sku",
            },
        ).json()
        assert [p["Sku"] for p in body["value"]] == [f"SKU-{n:06d}"]
    first = ca_api.get(
        "Products",
        **{"$filter": f"ProfileID eq {DEMO_PROFILE_ID}", "$select": "ID,Sku", "$count": "true"},
    ).json()
    assert first["@odata.count"] == 100_000 and len(first["value"]) == 100
    page = ca_api.session.get(first["@odata.nextLink"], timeout=10).json()
    assert page["value"][0]["Sku"] == "SKU-000101"
    orders = ca_api.get(
        "Orders", exported="false", **{"$count": "true", "$expand": "Items,Fulfillments"}
    ).json()
    assert orders["@odata.count"] == 10_000 and len(orders["value"]) == 20
    log = ca_sandbox.request_log(entries=False)
    assert log["counts"] == {"GET /v1/Products": 5, "GET /v1/Orders": 1}


def test_switching_the_state_file_at_run_time_writes_everything(tmp_path: Path) -> None:
    sandbox = Sandbox()
    ids = sandbox.seed_products(count=3)
    sandbox.seed_orders(count=2)
    path = str(tmp_path / "later.db")
    sandbox.configure(state_file=path)
    assert sandbox.config()["state_file"] == path
    sandbox.close()
    again = Sandbox(state_file=path)
    assert again.loaded_from_file
    assert [again.get_product(i)["Sku"] for i in ids] == [  # type: ignore[index]
        "SKU-000001",
        "SKU-000002",
        "SKU-000003",
    ]
    assert again.state(include=())["counts"]["orders"] == 2
    again.close()
