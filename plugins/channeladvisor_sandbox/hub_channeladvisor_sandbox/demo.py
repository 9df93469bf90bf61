"""``hub demo``: the whole ChannelAdvisor story against the embedded sandbox.

It starts the sandbox in-process, seeds a small account, and then runs the very commands a
merchant would, printing each one before its output. Its database is ``hub-demo.db`` in the
current directory (recreated on every run); nothing else is left behind.
"""

from __future__ import annotations

import csv
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from hub_channeladvisor_sandbox import (
    DEMO_APPLICATION_ID,
    DEMO_PROFILE_ID,
    DEMO_REFRESH_TOKEN,
    DEMO_SHARED_SECRET,
    Sandbox,
)
from hub_core.redaction import Redactor

DEMO_DB = "hub-demo.db"
CONNECTION = "demo-shop"
#: The shipments the story repairs (ids are hub-N in recording order; the database is new).
REPAIRED, MISTAKE = "hub-3", "hub-4"

#: (SKU, title, quantity in ChannelAdvisor, price in ChannelAdvisor); all but the gift card
#: exist in ChannelAdvisor. The apostrophe SKU shows the quoting of OData filters.
PRODUCTS = [
    ("TSHIRT-S", "Trail T-shirt, small", 10, 19.99),
    ("TSHIRT-M", "Trail T-shirt, medium", 10, 19.99),
    ("TSHIRT-L", "Trail T-shirt, large", 10, 19.99),
    ("MUG-12OZ", "Camp mug, 12 oz", 40, 12.50),
    ("CAP-BLUE", "Cap, blue", 25, 15.00),
    ("O'NEIL-SCARF", "O'Neil wool scarf", 6, 34.00),
]
#: The hub's catalog: the merchant's own numbers, which the hub pushes.
CATALOG = [
    ("TSHIRT-S", "Trail T-shirt, small", 14, "19.99"),
    ("TSHIRT-M", "Trail T-shirt, medium", 8, "19.99"),
    ("TSHIRT-L", "Trail T-shirt, large", 5, "21.99"),
    ("MUG-12OZ", "Camp mug, 12 oz", 40, "12.50"),
    ("CAP-BLUE", "Cap, blue", 30, "14.00"),
    ("O'NEIL-SCARF", "O'Neil wool scarf", 6, "34.00"),
    ("GIFT-CARD-25", "Gift card, 25", 999, "25.00"),
]


def _order(
    site_order_id: str,
    carrier: str,
    klass: str,
    items: list[tuple[str, int]],
    *,
    days_ago: float = 1,
    payment: str = "Cleared",
) -> dict[str, Any]:
    created = datetime.now(UTC) - timedelta(days=days_ago)
    return {
        "SiteName": "Amazon Seller Central - US",
        "SiteOrderID": site_order_id,
        "CreatedDateUtc": created.isoformat(),
        "ImportDateUtc": (created + timedelta(minutes=12)).isoformat(),
        "CheckoutStatus": "Completed",
        "PaymentStatus": payment,
        "ShippingStatus": "Unshipped",
        "RequestedShippingCarrier": carrier,
        "RequestedShippingClass": klass,
        "ShippingFirstName": "Jane",
        "ShippingLastName": "Doe",
        "ShippingAddressLine1": "1 Main St",
        "ShippingCity": "Raleigh",
        "ShippingStateOrProvince": "NC",
        "ShippingPostalCode": "27601",
        "ShippingCountry": "US",
        "Items": [{"Sku": sku, "Quantity": qty, "UnitPrice": 19.99} for sku, qty in items],
    }


ORDERS = [
    _order("114-0000001-0000001", "UPS", "Ground", [("TSHIRT-M", 2), ("MUG-12OZ", 1)]),
    _order("114-0000002-0000002", "USPS", "Priority Mail", [("CAP-BLUE", 1)]),
    _order("114-0000003-0000003", "FedEx", "Home Delivery", [("O'NEIL-SCARF", 1)]),
    _order("114-0000004-0000004", "UPS", "Ground", [("TSHIRT-S", 1)], payment="Failed"),
    _order("114-0000005-0000005", "UPS", "Ground", [("TSHIRT-L", 1)], days_ago=20),
]


class Story:
    """Runs hub commands in this process and prints them like a terminal session."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.codes: list[tuple[str, int]] = []

    def say(self, text: str) -> None:
        click.secho(f"\n# {text}", fg="cyan", bold=True)

    def hub(self, *args: str, expect: int = 0) -> int:
        from hub_core.cli import HubCommandError, cli

        # Even sandbox credentials are not echoed: the demo shows the habit it asks for.
        shown = Redactor().text(" ".join(_quote(a) for a in args))
        click.secho(f"$ hub {shown}", bold=True)
        try:
            code = cli.main(
                args=["--database-url", self.database_url, *args],
                prog_name="hub",
                standalone_mode=False,
            )
            code = int(code or 0)
        except HubCommandError as exc:
            exc.show()
            code = exc.exit_code
        except click.ClickException as exc:
            exc.show()
            code = exc.exit_code
        self.codes.append((shown, code))
        if code:
            click.secho(f"  (exit code {code})", fg="yellow")
        if code != expect:
            raise click.ClickException(
                f"the demo expected exit code {expect} from 'hub {shown}', got {code}"
            )
        return code


def _quote(arg: str) -> str:
    return f'"{arg}"' if (" " in arg or "'" in arg) else arg


@click.command("demo")
@click.option("--pause", type=float, default=0.0, help="Seconds to wait between steps.")
def demo_command(pause: float) -> None:
    """The whole story against the embedded ChannelAdvisor sandbox (database: hub-demo.db)."""
    started = time.monotonic()
    db_file = Path(DEMO_DB)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{db_file}{suffix}").unlink(missing_ok=True)
    story = Story(f"sqlite:///{db_file}")
    with Sandbox(seed=7) as sandbox, tempfile.TemporaryDirectory() as tmp:
        base_url = sandbox.url
        sandbox.seed_products(
            [
                {"Sku": sku, "Title": title, "Quantity": qty, "BuyItNowPrice": price}
                for sku, title, qty, price in PRODUCTS
            ]
        )
        order_ids = sandbox.seed_orders(ORDERS)
        catalog = Path(tmp) / "catalog.csv"
        with catalog.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["sku", "title", "quantity", "price"])
            writer.writerows(CATALOG)
        click.secho(
            f"ChannelAdvisor sandbox at {base_url}: {len(PRODUCTS)} products, "
            f"{len(ORDERS)} orders in profile {DEMO_PROFILE_ID}.",
            fg="green",
        )

        def step(text: str) -> None:
            if pause:
                time.sleep(pause)
            story.say(text)

        step("Connect ChannelAdvisor (tokens from the developer console; secrets never shown).")
        story.hub(
            "connections", "add", CONNECTION, "--channel", "channeladvisor",
            "--set", "access_token=expired-at-start",
            "--set", f"refresh_token={DEMO_REFRESH_TOKEN}",
            "--set", f"profile_id={DEMO_PROFILE_ID}",
            "--set", f"application_id={DEMO_APPLICATION_ID}",
            "--set", f"shared_secret={DEMO_SHARED_SECRET}",
            "--set", f"base_url={base_url}",
        )  # fmt: skip
        story.hub("connections", "test", CONNECTION)
        story.hub("connections", "show", CONNECTION)

        step(
            "Import the catalog and link each SKU to the EXISTING ChannelAdvisor product "
            "(GIFT-CARD-25 is not there: a state of its listing, not a failure)."
        )
        story.hub("catalog", "import", str(catalog))
        story.hub("listings", "link", CONNECTION)

        step("Push quantity and price: first what would be sent, then send it.")
        story.hub("listings", "sync", CONNECTION, "--dry-run")
        story.hub("listings", "sync", CONNECTION)
        story.hub("catalog", "set", "MUG-12OZ", "--quantity", "35")
        story.hub("listings", "sync", CONNECTION)
        story.hub("listings", "sync", CONNECTION)

        step("A product is deleted in ChannelAdvisor: the next sync marks it broken.")
        cap = sandbox.find_products("CAP-BLUE")[0]
        sandbox.delete_product(int(cap["ID"]))
        click.echo(f"(deleted product {cap['ID']} CAP-BLUE in the sandbox)")
        story.hub("catalog", "set", "CAP-BLUE", "--quantity", "28")
        story.hub("listings", "sync", CONNECTION, expect=4)
        story.hub("listings", "list", CONNECTION, "--status", "broken")
        sandbox.create_product({"Sku": "CAP-BLUE", "Title": "Cap, blue", "Quantity": 0})
        click.echo("(CAP-BLUE re-created in the sandbox; relink fixes the listing)")
        story.hub("listings", "relink", CONNECTION, "--sku", "CAP-BLUE")
        story.hub("listings", "sync", CONNECTION)

        step("Publishing new products is not supported for ChannelAdvisor.")
        story.hub("listings", "publish", CONNECTION, "--sku", "GIFT-CARD-25", expect=3)

        step("So keep the gift card off this connection: never looked up, linked or synced.")
        story.hub("listings", "exclude", CONNECTION, "--sku", "GIFT-CARD-25")
        story.hub("listings", "list", CONNECTION, "--status", "excluded")
        story.hub("listings", "link", CONNECTION)

        step("Orders need shipping mappings first.")
        story.hub("orders", "get", CONNECTION, expect=2)
        story.hub("shipping-mappings", "add", CONNECTION,
                  "--channel-text", "UPS - Ground", "--policy", "standard")  # fmt: skip
        story.hub("shipping-mappings", "add", CONNECTION,
                  "--channel-text", "USPS - Priority Mail", "--policy", "priority")  # fmt: skip
        story.hub("orders", "get", CONNECTION)
        story.hub("orders", "list", "--connection", CONNECTION)

        step("The FedEx order is held until its shipping method is mapped.")
        story.hub("shipping-mappings", "add", CONNECTION,
                  "--channel-text", "FedEx - Home Delivery", "--policy", "standard")  # fmt: skip
        story.hub("orders", "get", CONNECTION)

        step("Ship one order partially and another fully, then send tracking back.")
        first, second = str(order_ids[0]), str(order_ids[1])
        story.hub("orders", "ship", CONNECTION, first, "--tracking", "1Z999AA10123456784",
                  "--carrier", "UPS", "--class", "Ground", "--item", "TSHIRT-M=1")  # fmt: skip
        story.hub("orders", "ship", CONNECTION, second, "--tracking", "9400111899223197428490",
                  "--carrier", "USPS", "--class", "Priority Mail")  # fmt: skip
        story.hub("orders", "sync", CONNECTION)
        story.hub("orders", "sync", CONNECTION)
        story.hub("orders", "show", CONNECTION, first)

        step("A carrier ChannelAdvisor does not know is refused; correct it and send it again.")
        third = str(order_ids[2])
        story.hub("orders", "ship", CONNECTION, third, "--tracking", "794612345678",
                  "--carrier", "Fed Ex", "--class", "Home Delivery")  # fmt: skip
        story.hub("orders", "sync", CONNECTION, expect=4)
        story.hub("shipments", "list", CONNECTION, "--status", "failed")
        story.hub("shipments", "edit", CONNECTION, REPAIRED, "--carrier", "FedEx")
        story.hub("orders", "sync", CONNECTION)

        step("A shipment recorded by mistake is cancelled before it is sent.")
        story.hub("orders", "ship", CONNECTION, first, "--tracking", "1Z-WRONG-BOX",
                  "--carrier", "UPS", "--class", "Ground", "--item", "MUG-12OZ=1")  # fmt: skip
        story.hub("shipments", "cancel", CONNECTION, MISTAKE)
        story.hub("shipments", "list", CONNECTION)
        story.hub("orders", "sync", CONNECTION)

        step("Why was an order not imported? (the most common support question)")
        story.hub("orders", "explain", CONNECTION, str(order_ids[3]))
        story.hub("orders", "explain", CONNECTION, ORDERS[4]["SiteOrderID"])

        step("Every operation was recorded.")
        story.hub("runs", "list", "--connection", CONNECTION)

        log = sandbox.request_log(entries=False)
        shipped = [sandbox.get_order(i) for i in order_ids[:3]]
    elapsed = time.monotonic() - started
    story.say("Summary")
    click.echo(f"  hub commands run:      {len(story.codes)}")
    click.echo(
        f"  sandbox requests:      {log['total']} ({log['batches']} batches "
        f"carrying {log['batch_parts']} parts)"
    )
    click.echo(f"  rate-budget units:     {log['total_units']}; 429s: {log['status_429']}")
    for order in shipped:
        if order:
            click.echo(
                f"  order {order['ID']}: ShippingStatus {order['ShippingStatus']}, "
                f"{len(order.get('Fulfillments', []))} fulfillment(s) in ChannelAdvisor"
            )
    click.echo(f"  took:                  {elapsed:.1f} s")
    click.echo(f"  database:              {db_file.resolve()}")
    click.echo(f"  explore it:            hub --database-url sqlite:///{db_file} orders list")
