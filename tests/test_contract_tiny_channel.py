"""Tiny Shop (``tests/tiny_channel.py``), a channel written from the README guide alone, passes
the contract suite, registered by a fixture rather than an entry point."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner

from hub_core.cli import cli
from hub_core.plugins import Registry, get_plugin_manager
from hub_core.testing import (
    ChannelContract,
    ChannelHarness,
    ChannelProduct,
    FailureKind,
    ReceivedShipment,
    ReceivedUpdate,
)


def _load_tiny_channel() -> ModuleType:
    """Import ``tiny_channel.py`` next to this file (tests/ is not a package)."""
    name = "hub_test_tiny_channel"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("tiny_channel.py")
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


tiny = _load_tiny_channel()
_shop_numbers = itertools.count(1)

#: HTTP-like answers for the harness's failure kinds.
STATUS = {"transient": 503, "rate_limited": 429, "error": 400}


class TinyHarness(ChannelHarness):
    """A fresh in-memory Tiny Shop per test."""

    channel = tiny.NAME
    retries_in_call = True
    shipping_text = "Tiny Post - Standard"
    other_shipping_text = "Tiny Post - Express"
    carrier = "Tiny Post"
    shipping_class = "Standard"

    shop: Any  # a tiny_channel.TinyShop

    def plugin(self) -> object:
        """The module itself: Tiny Shop has no entry point."""
        return tiny

    def start(self) -> None:
        """Open a new shop on the service."""
        shop_id = f"shop-{next(_shop_numbers)}"
        self.shop = tiny.TinyShop(shop_id, token=f"token-{shop_id}-good")
        tiny.SHOPS[shop_id] = self.shop

    def stop(self) -> None:
        """Close the shop."""
        tiny.SHOPS.pop(self.shop.shop_id, None)

    def connection_values(self) -> dict[str, str]:
        return {"shop": self.shop.shop_id, "token": self.shop.token}

    def bad_credentials(self) -> dict[str, str]:
        return {"token": "revoked-token-1234"}

    def settings_accepting_ineligible_status(self) -> dict[str, str]:
        return {"order_statuses": "paid,pending"}

    def add_product(self, sku: str, quantity: int, price: Decimal) -> str:
        product_id = self.shop.new_id()
        self.shop.products[product_id] = {
            "id": product_id,
            "sku": sku,
            "quantity": quantity,
            "price": Decimal(price),
        }
        return product_id

    def delete_product(self, sku: str) -> None:
        [product_id] = [p["id"] for p in self.shop.products.values() if p["sku"] == sku]
        del self.shop.products[product_id]

    def add_order(
        self,
        lines: Sequence[tuple[str, int]],
        shipping_text: str,
        *,
        status_eligible: bool = True,
        age_days: int = 0,
    ) -> str:
        order_id = self.shop.new_id()
        self.shop.orders[order_id] = {
            "id": order_id,
            "status": "paid" if status_eligible else "pending",
            "created_at": datetime.now(UTC) - timedelta(days=age_days, minutes=1),
            "shipping_text": shipping_text,
            "acknowledged": False,
            "lines": [
                {"id": f"{order_id}-{n}", "sku": sku, "quantity": quantity, "shipped": 0}
                for n, (sku, quantity) in enumerate(lines, start=1)
            ],
        }
        return order_id

    def cancel_order(self, channel_order_id: str) -> None:
        self.shop.cancel(channel_order_id)

    def fail(
        self,
        operation: str,
        *,
        kind: FailureKind = "transient",
        ref: str | None = None,
        times: int | None = 1,
    ) -> None:
        self.shop.fail(operation, STATUS[kind], ref, times)

    def clear_failures(self) -> None:
        self.shop.faults.clear()

    def armed_failures(self) -> int:
        return len(self.shop.faults)

    def product(self, sku: str) -> ChannelProduct | None:
        for product in self.shop.products.values():
            if product["sku"] == sku:
                return ChannelProduct(sku, int(product["quantity"]), Decimal(product["price"]))
        return None

    def received_updates(self) -> list[ReceivedUpdate]:
        return [ReceivedUpdate(sku, values) for sku, values in self.shop.received_updates]

    def received_shipments(self) -> list[ReceivedShipment]:
        received = []
        for shipment in self.shop.received_shipments:
            order = self.shop.orders[shipment["order_id"]]
            skus = {line["id"]: line["sku"] for line in order["lines"]}
            lines: dict[str, int] = {}
            for line_id, quantity in shipment["lines"].items():
                lines[skus[line_id]] = lines.get(skus[line_id], 0) + quantity
            received.append(ReceivedShipment(shipment["order_id"], shipment["tracking"], lines))
        return received

    def acknowledged_orders(self) -> set[str]:
        return {order_id for order_id, o in self.shop.orders.items() if o["acknowledged"]}


class TestTinyContract(ChannelContract):
    harness_class = TinyHarness


@pytest.fixture
def tiny_registry() -> Registry:
    """Tiny Shop registered for one test, the way a test registers a throw-away plugin."""
    return Registry(get_plugin_manager(load_entrypoints=False, plugins=[(tiny, "tiny")]))


def test_tiny_channel_is_listed(tiny_registry: Registry, tmp_path: Path) -> None:
    """The first test of any plugin: the hub sees it, with what it declares."""
    result = CliRunner().invoke(
        cli,
        ["--database-url", f"sqlite:///{tmp_path / 'hub.db'}", "channels", "--json"],
        obj={"registry": tiny_registry},
    )
    assert result.exit_code == 0, result.output
    assert '"name": "tiny"' in result.stdout
    assert '"publish_listings": "not_supported"' in result.stdout
    assert '"shipping_mappings": "required"' in result.stdout
