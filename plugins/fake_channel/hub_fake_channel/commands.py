"""``hub fake ...``: look after a fake channel's store from the command line.

``hub fake seed STORE`` makes a channel to play with (deterministic SKUs ``FAKE-0001``...,
orders shipped by ``UPS - Ground`` or ``USPS - Priority``); ``show`` prints what the channel
holds and what the hub sent it; ``fail`` / ``clear-failures`` arm and disarm failure switches;
``delete-product`` removes a product as a merchant would on the channel, to see ``broken``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from hub_fake_channel.store import (
    FAILURE_KINDS,
    OPERATIONS,
    FakeStore,
    FakeStoreError,
    insert_order,
    insert_product,
)

#: Shipping texts of seeded orders, in turn (what shipping mappings must equal).
SEED_SHIPPING_TEXTS = ("UPS - Ground", "USPS - Priority")
_SEED_SKU = re.compile(r"^FAKE-(\d+)$")

store_argument = click.argument(
    "store", type=click.Path(dir_okay=False, path_type=Path), metavar="STORE"
)


def _fail_cleanly(exc: FakeStoreError) -> click.ClickException:
    return click.ClickException(str(exc))


def seed(store: FakeStore, products: int, orders: int) -> dict[str, list[str]]:
    """Add ``products`` products and ``orders`` orders to ``store`` (created if missing).

    Deterministic: product ``n`` has SKU ``FAKE-nnnn`` (numbering continues after the highest
    ``FAKE-`` SKU already there), quantity ``n * 7 % 20 + 1`` and price ``(n % 20 + 4).99``;
    order ``k`` has one or two lines of seeded SKUs, created ``k`` hours ago, shipped by
    ``UPS - Ground`` (odd orders) or ``USPS - Priority`` (even ones).

    :return: the new product ids and order ids.
    """
    now = datetime.now(UTC).replace(microsecond=0)
    added: dict[str, list[str]] = {"products": [], "orders": []}
    with store.transaction() as state:
        numbers = [
            int(m.group(1)) for p in state["products"].values() if (m := _SEED_SKU.match(p["sku"]))
        ]
        start = max(numbers, default=0) + 1
        for n in range(start, start + products):
            added["products"].append(
                insert_product(
                    state,
                    f"FAKE-{n:04d}",
                    title=f"Fake product {n}",
                    quantity=n * 7 % 20 + 1,
                    price=f"{n % 20 + 4}.99",
                )
            )
        skus = sorted(
            {p["sku"] for p in state["products"].values() if _SEED_SKU.match(p["sku"])}
        ) or ["FAKE-0001"]
        base = len(state["orders"])
        for k in range(base + 1, base + orders + 1):
            lines = [
                {"sku": skus[(k - 1 + i) % len(skus)], "quantity": 1 + (k + i) % 3}
                for i in range(1 + (k % 2 == 0))
            ]
            added["orders"].append(
                insert_order(
                    state,
                    lines,
                    created_at=now - timedelta(hours=k - base),
                    shipping_text=SEED_SHIPPING_TEXTS[(k - 1) % 2],
                )
            )
    return added


def _span(ids: list[str]) -> str:
    if not ids:
        return "none"
    return ids[0] if len(ids) == 1 else f"{ids[0]}..{ids[-1]}"


@click.group(name="fake")
def fake() -> None:
    """The fake channel: a local, file-backed channel for demos and tests."""


@fake.command(name="seed")
@store_argument
@click.option(
    "--products",
    "product_count",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Products to add (SKUs FAKE-0001...).",
)
@click.option(
    "--orders",
    "order_count",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Orders to add, created within the last day.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new ids as JSON.")
def seed_command(store: Path, product_count: int, order_count: int, as_json: bool) -> None:
    """Create STORE, or add to it: products FAKE-0001... and open orders.

    \b
    Example:
      hub fake seed shop.json --products 20 --orders 5
      hub connections add demo --channel fake --set store=shop.json
    """
    fake_store = FakeStore(store.absolute())
    try:
        added = seed(fake_store, product_count, order_count)
    except FakeStoreError as exc:
        raise _fail_cleanly(exc) from None
    if as_json:
        click.echo(json.dumps({"store": str(fake_store.path), **added}, indent=2))
        return
    click.echo(
        f"{fake_store.path}: added {len(added['products'])} products "
        f"({_span(added['products'])}) and {len(added['orders'])} orders "
        f"({_span(added['orders'])})."
    )
    click.echo(
        f"Connect it with: hub connections add NAME --channel fake --set store={fake_store.path}",
        err=True,
    )


@fake.command(name="show")
@store_argument
@click.option("--json", "as_json", is_flag=True, help="Print the whole store as JSON.")
def show_command(store: Path, as_json: bool) -> None:
    """Show what the channel STORE holds and what the hub sent it."""
    fake_store = FakeStore(store.absolute())
    if not fake_store.exists():
        raise click.ClickException(f"{fake_store.path} does not exist; see 'hub fake seed'.")
    try:
        state = fake_store.snapshot()
    except FakeStoreError as exc:
        raise _fail_cleanly(exc) from None
    if as_json:
        click.echo(json.dumps(state, indent=2))
        return
    click.echo(f"Products ({len(state['products'])}):")
    for p in state["products"].values():
        click.echo(
            f"  {p['id']}  {p['sku']:<12} qty {p['quantity']:>4}  {p['price']:>8}  {p['title']}"
        )
    click.echo(f"Orders ({len(state['orders'])}):")
    for o in state["orders"].values():
        flags = [f for f in ("acknowledged", "cancelled") if o.get(f)]
        lines = ", ".join(f"{ln['sku']} x{ln['quantity']}" for ln in o["lines"])
        click.echo(
            f"  {o['id']}  {o['status']:<8} {o['shipping_text']:<16} {o['shipping_status']:<16}"
            f" {lines}" + (f"  [{', '.join(flags)}]" if flags else "")
        )
    click.echo(f"Shipments received ({len(state['shipments'])}):")
    for s in state["shipments"].values():
        click.echo(
            f"  {s['shipment_id']}  order {s['channel_order_id']}  {s['carrier']} "
            f"{s['shipping_class']}  {s['tracking']}  received {s['received']}x"
        )
    click.echo(f"Listing updates received: {len(state['updates'])}")
    calls: dict[str, Any] = state["calls"]
    click.echo("Calls: " + (", ".join(f"{k} {v}" for k, v in calls.items()) or "none"))
    if state["failures"]:
        click.echo(f"Failure switches armed: {len(state['failures'])}")


@fake.command(name="fail")
@store_argument
@click.argument("operation", type=click.Choice(OPERATIONS))
@click.option("--ref", default=None, help="Fail only this SKU, order id or shipment id.")
@click.option(
    "--times",
    type=click.IntRange(min=1),
    default=None,
    help="Fail this many calls, then succeed (default: always; transient: once).",
)
@click.option(
    "--kind",
    type=click.Choice(FAILURE_KINDS),
    default="error",
    show_default=True,
    help="error: refused; transient: fails then succeeds; lost: applied, answer lost.",
)
def fail_command(
    store: Path, operation: str, ref: str | None, times: int | None, kind: str
) -> None:
    """Make the channel STORE fail OPERATION (the whole call, or one record with --ref)."""
    fake_store = FakeStore(store.absolute())
    try:
        fake_store.fail(operation, ref=ref, times=times, kind=kind)  # type: ignore[arg-type]
    except FakeStoreError as exc:
        raise _fail_cleanly(exc) from None
    target = f"{ref} in {operation}" if ref else operation
    click.echo(f"{fake_store.path}: {target} will fail ({kind}).")


@fake.command(name="clear-failures")
@store_argument
def clear_failures_command(store: Path) -> None:
    """Disarm every failure switch of the channel STORE."""
    fake_store = FakeStore(store.absolute())
    try:
        fake_store.clear_failures()
    except FakeStoreError as exc:
        raise _fail_cleanly(exc) from None
    click.echo(f"{fake_store.path}: no failure switches armed.")


@fake.command(name="delete-product")
@store_argument
@click.argument("product_id")
def delete_product_command(store: Path, product_id: str) -> None:
    """Delete PRODUCT_ID from the channel STORE (the next listings sync marks it broken)."""
    fake_store = FakeStore(store.absolute())
    try:
        fake_store.delete_product(product_id)
    except FakeStoreError as exc:
        raise _fail_cleanly(exc) from None
    click.echo(f"{fake_store.path}: deleted {product_id}.")
