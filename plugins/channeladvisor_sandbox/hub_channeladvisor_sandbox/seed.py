"""Deterministic generators of products and orders (same seed, same data; dates are relative
to "now" at seeding time).

Generated orders mix what an importer must cope with: mostly ready-to-ship orders, plus
unpaid/unchecked-out ones, pending shipments, already shipped and canceled ones; requested
shipping pairs from the account's carrier list, some unknown to it, some with only the
carrier or only the class; some imported days after they were created; and, on request,
orders with more than 20 lines (to exercise the expand cap).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from typing import Any

from .constants import SITES

_ADJECTIVES = [
    "Trail",
    "Classic",
    "Urban",
    "Compact",
    "Deluxe",
    "Rugged",
    "Vintage",
    "Modern",
    "Eco",
    "Pro",
    "Mini",
    "Ultra",
    "Soft",
    "Bright",
    "Heavy",
    "Duty",
    "Travel",
    "Kids",
    "Premium",
    "Essential",
]
_NOUNS = [
    "Shoe",
    "Backpack",
    "Lamp",
    "Grinder",
    "Kettle",
    "Jacket",
    "Mug",
    "Blender",
    "Tent",
    "Bottle",
    "Speaker",
    "Charger",
    "Notebook",
    "Wallet",
    "Scarf",
    "Headphones",
    "Skillet",
    "Pillow",
    "Watch",
    "Drill",
]
_COLORS = ["Black", "White", "Blue", "Red", "Green", "Grey", "Navy", "Olive", "Sand", "Teal"]
_BRANDS = ["Acme", "Northwind", "Contoso", "Fabrikam", "Tailspin", "Wingtip", "Litware", "Adatum"]
_FIRST = [
    "Jane",
    "John",
    "Maria",
    "Wei",
    "Aisha",
    "Carlos",
    "Emma",
    "Noah",
    "Olivia",
    "Liam",
    "Sofia",
    "Yuki",
]
_LAST = [
    "Doe",
    "Smith",
    "Garcia",
    "Chen",
    "Khan",
    "Rossi",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Lopez",
    "Sato",
]
_CITIES = [
    ("Raleigh", "NC", "27601"),
    ("Austin", "TX", "73301"),
    ("Portland", "OR", "97201"),
    ("Denver", "CO", "80202"),
    ("Boston", "MA", "02108"),
    ("Tampa", "FL", "33602"),
]

# (weight, CheckoutStatus, PaymentStatus, ShippingStatus)
_STATUS_MIX: list[tuple[int, str, str, str]] = [
    (70, "Completed", "Cleared", "Unshipped"),
    (8, "Completed", "Submitted", "Unshipped"),
    (3, "CompletedOffline", "Deposited", "Unshipped"),
    (5, "NotVisited", "NotYetSubmitted", "Unshipped"),
    (5, "Completed", "Cleared", "PendingShipment"),
    (5, "Completed", "Cleared", "Shipped"),
    (4, "Completed", "Cleared", "Canceled"),
]


def _weighted(rng: random.Random, table: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    total = sum(row[0] for row in table)
    pick = rng.uniform(0, total)
    for row in table:
        pick -= row[0]
        if pick <= 0:
            return row
    return table[-1]


def generate_products(
    rng: random.Random,
    count: int,
    *,
    profile_id: int,
    start_index: int = 1,
    sku_prefix: str = "SKU-",
) -> list[dict[str, Any]]:
    """`count` product seed dicts with SKUs `<prefix><index:06d>` from `start_index` on."""
    products = []
    for index in range(start_index, start_index + count):
        price = round(rng.uniform(4, 200), 0) - 0.01
        dcs = [
            {
                "DistributionCenterID": 0,
                "AvailableQuantity": rng.randint(0, 100),
                "OpenAllocatedQuantity": rng.choice((0, 0, 0, 1, 2)),
                "PendingCheckoutQuantity": rng.choice((0, 0, 1)),
                "PendingPaymentQuantity": rng.choice((0, 0, 1)),
                "PendingShipmentQuantity": rng.choice((0, 0, 1, 2, 3)),
            }
        ]
        if rng.random() < 0.3:
            dcs.append({"DistributionCenterID": 1, "AvailableQuantity": rng.randint(0, 20)})
        if rng.random() < 0.2:
            dcs.append({"DistributionCenterID": 2, "AvailableQuantity": rng.randint(0, 50)})
        title = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}, {rng.choice(_COLORS)}"
        products.append(
            {
                "Sku": f"{sku_prefix}{index:06d}",
                "ProfileID": profile_id,
                "Title": title,
                "Brand": rng.choice(_BRANDS),
                "Manufacturer": rng.choice(_BRANDS),
                "MPN": f"MPN-{rng.randint(10000, 99999)}",
                "UPC": f"{rng.randint(0, 10**12 - 1):012d}",
                "Condition": "New",
                "Weight": round(rng.uniform(0.1, 12), 2),
                "Cost": round(price * 0.55, 2),
                "BuyItNowPrice": price,
                "RetailPrice": round(price * 1.2, 2) if rng.random() < 0.8 else None,
                "WarehouseLocation": f"A{rng.randint(1, 40)}-{rng.randint(1, 9)}",
                "DCQuantities": dcs,
            }
        )
    return products


def _site_order_id(rng: random.Random, site_id: int) -> str:
    if site_id == 640:
        middle, last = rng.randint(0, 9999999), rng.randint(0, 9999999)
        return f"{rng.randint(100, 999)}-{middle:07d}-{last:07d}"
    if site_id == 1:
        return f"{rng.randint(10, 99)}-{rng.randint(10000, 99999)}-{rng.randint(10000, 99999)}"
    if site_id == 1118:
        return str(rng.randint(10**12, 10**13 - 1))
    return f"CD{rng.randint(10**7, 10**8 - 1)}"


def _requested_shipping(
    rng: random.Random, carriers: dict[str, list[str]]
) -> tuple[str | None, str | None]:
    roll = rng.random()
    pairs = [(c, k) for c, classes in carriers.items() for k in classes]
    if roll < 0.85 and pairs:
        return rng.choice(pairs)
    if roll < 0.90:
        return "Marketplace", "Expedited"  # not in the account's list
    if roll < 0.95:
        return rng.choice(list(carriers) or ["UPS"]), None  # carrier only
    return None, "Standard"  # class only


def generate_orders(
    rng: random.Random,
    count: int,
    *,
    products: Sequence[dict[str, Any]],
    carriers: dict[str, list[str]],
    profile_id: int,
    now: dt.datetime,
    max_items: int = 3,
    big_orders: int = 0,
    days: int = 30,
    exported_by: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """`count` order seed dicts whose lines use `products` (rows with ID, Sku, Title, price).

    The first `big_orders` orders get 21-30 lines, the rest 1..`max_items`.
    """
    if not products:
        raise ValueError("generating orders needs products")
    pool = list(products)
    orders = []
    for n in range(count):
        lines = rng.randint(21, 30) if n < big_orders else rng.randint(1, max(1, max_items))
        if lines <= len(products):
            chosen = rng.sample(pool, lines)
        else:
            chosen = [rng.choice(pool) for _ in range(lines)]
        _, checkout, payment, shipping = _weighted(rng, _STATUS_MIX)
        site_id, site_name = _weighted(
            rng, [(55, SITES[0]), (25, SITES[1]), (15, SITES[2]), (5, SITES[3])]
        )[1]
        created = now - dt.timedelta(seconds=rng.uniform(600, days * 86400))
        imported = created + dt.timedelta(minutes=rng.uniform(2, 30))
        if rng.random() < 0.05:
            imported += dt.timedelta(days=rng.uniform(2, 5))  # a delayed import
        imported = min(imported, now)
        carrier, shipping_class = _requested_shipping(rng, carriers)
        city, state, postal = rng.choice(_CITIES)
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        items = []
        for product in chosen:
            quantity = 1 if rng.random() < 0.8 else rng.randint(2, 4)
            price = product.get("BuyItNowPrice")
            items.append(
                {
                    "Sku": product["Sku"],
                    "ProductID": product["ID"],
                    "Title": product.get("Title"),
                    "Quantity": quantity,
                    "UnitPrice": price if price is not None else 10.0,
                    "TaxPrice": round((price or 10.0) * quantity * 0.07, 2),
                    "ShippingPrice": 0.0 if rng.random() < 0.6 else 5.99,
                }
            )
        orders.append(
            {
                "ProfileID": profile_id,
                "SiteID": site_id,
                "SiteName": site_name,
                "SiteOrderID": _site_order_id(rng, site_id),
                "CreatedDateUtc": created.isoformat(),
                "ImportDateUtc": imported.isoformat(),
                "CheckoutStatus": checkout,
                "PaymentStatus": payment,
                "ShippingStatus": shipping,
                "RequestedShippingCarrier": carrier,
                "RequestedShippingClass": shipping_class,
                "BuyerEmailAddress": f"{first.lower()}.{last.lower()}{rng.randint(1, 999)}"
                "@marketplace.example",
                "ShippingFirstName": first,
                "ShippingLastName": last,
                "ShippingAddressLine1": f"{rng.randint(1, 9999)} Main St",
                "ShippingCity": city,
                "ShippingStateOrProvince": state,
                "ShippingPostalCode": postal,
                "ShippingCountry": "US",
                "Items": items,
                "exported_by": list(exported_by),
            }
        )
    return orders
