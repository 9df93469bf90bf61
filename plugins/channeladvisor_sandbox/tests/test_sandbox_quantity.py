"""UpdateQuantity semantics per UpdateType and DC, DistributionCenters, Profiles."""

from __future__ import annotations

from typing import Any

import pytest

from hub_channeladvisor_sandbox import DEMO_PROFILE_ID, OTHER_PROFILE_ID, Sandbox
from hub_channeladvisor_sandbox.testing import SandboxApi


@pytest.fixture
def widget(ca_sandbox: Sandbox) -> int:
    """A product with 10 available in DC 0 (open 1, checkout 2, payment 3, shipment 4),
    5 in DC 1 and 7 in the externally managed DC 2."""
    return ca_sandbox.create_product(
        {
            "Sku": "WIDGET",
            "DCQuantities": [
                {
                    "DistributionCenterID": 0,
                    "AvailableQuantity": 10,
                    "OpenAllocatedQuantity": 1,
                    "PendingCheckoutQuantity": 2,
                    "PendingPaymentQuantity": 3,
                    "PendingShipmentQuantity": 4,
                },
                {"DistributionCenterID": 1, "AvailableQuantity": 5},
                {"DistributionCenterID": 2, "AvailableQuantity": 7},
            ],
        }
    )


def update(api: SandboxApi, pid: int, kind: str, *updates: tuple[int, int], **extra: Any) -> Any:
    body = {
        "Value": {
            "UpdateType": kind,
            "Updates": [{"DistributionCenterID": dc, "Quantity": q} for dc, q in updates],
            **extra,
        }
    }
    return api.post(f"Products({pid})/UpdateQuantity", json=body)


def dc_available(sandbox: Sandbox, pid: int) -> dict[int, int]:
    product = sandbox.get_product(pid)
    assert product is not None
    return {d["DistributionCenterID"]: d["AvailableQuantity"] for d in product["DCQuantities"]}


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("Absolute", 20, 20),
        ("Relative", 3, 13),
        ("Relative", -15, 0),  # never below zero
        ("Available", 20, 19),  # minus open 1
        ("InStock", 20, 14),  # minus open, checkout, payment (1+2+3)
        ("UnShipped", 20, 10),  # minus open, checkout, payment, shipment (1+2+3+4)
        ("UnShipped", 5, 0),
    ],
)
def test_update_types(
    ca_sandbox: Sandbox, ca_api: SandboxApi, widget: int, kind: str, value: int, expected: int
) -> None:
    response = update(ca_api, widget, kind, (0, value))
    assert response.status_code == 204, response.text
    assert dc_available(ca_sandbox, widget) == {0: expected, 1: 5, 2: 7}
    product = ca_sandbox.get_product(widget)
    assert product is not None
    assert product["TotalAvailableQuantity"] == expected + 5 + 7
    assert product["PendingShipmentQuantity"] == 4
    assert product["QuantityUpdateDateUtc"] == product["UpdateDateUtc"]


def test_several_dcs_in_one_call_and_totals(
    ca_sandbox: Sandbox, ca_api: SandboxApi, widget: int
) -> None:
    assert update(ca_api, widget, "Absolute", (0, 3), (1, 9)).status_code == 204
    assert dc_available(ca_sandbox, widget) == {0: 3, 1: 9, 2: 7}
    body = ca_api.get(f"Products({widget})", **{"$select": "TotalAvailableQuantity"}).json()
    assert body["TotalAvailableQuantity"] == 19


def test_complete_dc_list_zeroes_the_other_seller_dcs(
    ca_sandbox: Sandbox, ca_api: SandboxApi, widget: int
) -> None:
    assert update(ca_api, widget, "Absolute", (1, 4), CompleteDCList=True).status_code == 204
    assert dc_available(ca_sandbox, widget) == {0: 0, 1: 4, 2: 7}


def test_a_dc_without_a_record_gets_one(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    pid = ca_sandbox.create_product({"Sku": "NO-QTY"})
    assert ca_sandbox.get_product(pid)["TotalAvailableQuantity"] is None  # type: ignore[index]
    assert update(ca_api, pid, "UnShipped", (0, 6)).status_code == 204
    assert dc_available(ca_sandbox, pid) == {0: 6}


def error_message(response: Any) -> str:
    assert response.status_code == 400, response.text
    return response.json()["error"]["message"]


def test_externally_managed_dc_refuses_updates(
    ca_sandbox: Sandbox, ca_api: SandboxApi, widget: int
) -> None:
    message = error_message(update(ca_api, widget, "Absolute", (0, 1), (2, 1)))
    assert "externally managed" in message and "Amazon FBA US" in message
    # Nothing applied: the call is validated as a whole.
    assert dc_available(ca_sandbox, widget) == {0: 10, 1: 5, 2: 7}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (
            {
                "Value": {
                    "UpdateType": "Absolute",
                    "Updates": [{"DistributionCenterID": 3, "Quantity": 1}],
                }
            },
            "does not exist",
        ),
        (
            {
                "Value": {
                    "UpdateType": "Absolute",
                    "Updates": [{"DistributionCenterID": 99, "Quantity": 1}],
                }
            },
            "does not exist",
        ),
        (
            {
                "Value": {
                    "UpdateType": "absolute",
                    "Updates": [{"DistributionCenterID": 0, "Quantity": 1}],
                }
            },
            "UpdateType",
        ),
        (
            {
                "Value": {
                    "UpdateType": "Unconfirmed",
                    "Updates": [{"DistributionCenterID": 0, "Quantity": 1}],
                }
            },
            "not supported",
        ),
        ({"Value": {"UpdateType": "Absolute", "Updates": []}}, "Updates"),
        (
            {
                "Value": {
                    "UpdateType": "Absolute",
                    "Updates": [{"DistributionCenterID": 0, "Quantity": -1}],
                }
            },
            "negative",
        ),
        (
            {
                "Value": {
                    "UpdateType": "Absolute",
                    "Updates": [{"DistributionCenterID": 0, "Quantity": "5"}],
                }
            },
            "integer",
        ),
        (
            {
                "Value": {
                    "UpdateType": "Absolute",
                    "Updates": [{"DistributionCenterID": 0, "Qty": 5}],
                }
            },
            "Qty",
        ),
        ({"UpdateType": "Absolute"}, "UpdateType"),
        ({}, "Value"),
    ],
)
def test_update_quantity_validation(
    ca_api: SandboxApi, widget: int, body: dict[str, Any], needle: str
) -> None:
    response = ca_api.post(f"Products({widget})/UpdateQuantity", json=body)
    assert needle in error_message(response)


def test_update_quantity_of_a_missing_product_is_404(ca_api: SandboxApi) -> None:
    response = update(ca_api, 123, "Absolute", (0, 1))
    assert response.status_code == 404


def test_distribution_centers(ca_api: SandboxApi) -> None:
    body = ca_api.get("DistributionCenters").json()
    by_id = {dc["ID"]: dc for dc in body["value"]}
    assert set(by_id) == {0, 1, 2, 3}
    assert by_id[2]["Type"] == "ExternallyManaged" and by_id[2]["IsExternallyManaged"] is True
    assert by_id[3]["IsDeleted"] is True and by_id[3]["DeletedDateUtc"].endswith("Z")
    live = ca_api.get("DistributionCenters", **{"$filter": "IsDeleted eq false"}).json()
    assert [dc["ID"] for dc in live["value"]] == [0, 1, 2]
    assert ca_api.get("DistributionCenters(0)").json()["Code"] == "MAIN"
    assert ca_api.get("DistributionCenters(42)").status_code == 404


def test_profiles(ca_api: SandboxApi) -> None:
    body = ca_api.get("Profiles").json()
    assert body["@odata.context"].endswith("$metadata#Profiles")
    assert [p["ID"] for p in body["value"]] == [DEMO_PROFILE_ID, OTHER_PROFILE_ID]
    one = ca_api.get(f"Profiles({DEMO_PROFILE_ID})").json()
    assert one["DefaultDistributionCenterID"] == 0 and one["CurrencyCode"] == "USD"
    assert len(str(one["ID"])) == 8
