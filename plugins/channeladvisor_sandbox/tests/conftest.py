"""Fixtures of the sandbox's own tests: the public ones from `sandbox.testing`, plus seeds."""

from __future__ import annotations

from typing import Any

import pytest

from hub_channeladvisor_sandbox import DEMO_PROFILE_ID, OTHER_PROFILE_ID, Sandbox
from hub_channeladvisor_sandbox.testing import ca_api, ca_sandbox

__all__ = ["ca_api", "ca_sandbox"]


@pytest.fixture
def catalog(ca_sandbox: Sandbox) -> dict[str, int]:
    """A small catalog in both profiles; returns SKU -> product ID (demo profile)."""
    products: list[dict[str, Any]] = [
        {
            "Sku": "AL-85590-SHOE",
            "Title": "Trail Shoe",
            "UPC": "012345678905",
            "BuyItNowPrice": 79.99,
            "RetailPrice": 89.99,
            "Quantity": 14,
        },
        {"Sku": "CG0001", "Title": "Coffee Grinder", "BuyItNowPrice": 24.5},
        {"Sku": "O'NEIL-CAP", "Title": "Cap", "BuyItNowPrice": 12.0, "Quantity": 3},
        {"Sku": "lower-sku", "Title": "Lower", "BuyItNowPrice": 5.0, "Quantity": 0},
        {
            "Sku": "MUG-1",
            "Title": "Mug",
            "BuyItNowPrice": 9.0,
            "Quantity": 40,
            "Labels": ["Sale"],
            "Attributes": {"Color": "Red"},
        },
    ]
    for product in products:
        product["CreateDateUtc"] = "2024-05-02T13:41:07.517Z"
    ids = ca_sandbox.seed_products(products)
    # The same SKU in the other profile: a client that forgets ProfileID finds two.
    ca_sandbox.seed_products(
        [
            {"Sku": "AL-85590-SHOE", "ProfileID": OTHER_PROFILE_ID, "Quantity": 1},
            {"Sku": "OTHER-ONLY", "ProfileID": OTHER_PROFILE_ID},
        ]
    )
    assert all(ca_sandbox.get_product(i)["ProfileID"] == DEMO_PROFILE_ID for i in ids)
    return {p["Sku"]: i for p, i in zip(products, ids, strict=True)}
