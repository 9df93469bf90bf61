"""The fake channel's state: one JSON file, shared by every process that names it.

Separate ``hub`` invocations (and tests, and the contract-suite harness) see the same channel
because everything lives in the file named by the connection's ``store`` value. Every change is
a transaction: an exclusive :func:`fcntl.flock` on a sidecar ``<store>.lock`` file, read, change,
write to a temporary file in the same directory, :func:`os.replace`. Readers take a shared lock,
so two concurrent ``hub orders get`` never see (or write) a half-written file.

The file holds what a real channel would hold (products, orders with lines) plus what a test
wants to look at afterwards (shipments and listing updates received, a call log) and the
failure switches that make the plugin fail on purpose (see :meth:`FakeStore.fail`).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

#: Operations a failure switch can name: the plugin's operation hooks, without ``hub_``.
OPERATIONS: tuple[str, ...] = (
    "test_connection",
    "link_listings",
    "sync_listings",
    "publish_listings",
    "get_orders",
    "acknowledge_orders",
    "sync_orders",
    "explain_order",
)
#: Kinds of failure: ``error`` fails every time (or ``times`` times); ``transient`` fails
#: ``times`` times (once by default) and then succeeds; ``lost`` applies the change and then
#: reports a failure, like an answer lost in transit.
FAILURE_KINDS: tuple[str, ...] = ("error", "transient", "lost")
FailureKind = Literal["error", "transient", "lost"]

FORMAT_VERSION = 1


class FakeStoreError(Exception):
    """The store file cannot be used (unreadable, not a fake channel store, bad argument)."""


def _empty() -> dict[str, Any]:
    return {
        "format": "hub-fake-channel",
        "version": FORMAT_VERSION,
        "next_ids": {"product": 1, "order": 1},
        "products": {},
        "orders": {},
        "shipments": {},
        "updates": [],
        "calls": {},
        "failures": [],
    }


def _now() -> datetime:
    return datetime.now(UTC)


def parse_time(value: datetime | str) -> datetime:
    """Return ``value`` as an aware UTC datetime (naive values are taken as UTC)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def money(value: Decimal | str | int | float) -> str:
    """Return a price as the string the store keeps (``"12.50"``).

    :raises FakeStoreError: ``value`` is not a number.
    """
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise FakeStoreError(f"Not a price: {value!r}") from None
    if not amount.is_finite():
        raise FakeStoreError(f"Not a price: {value!r}")
    return str(amount)


def match_sku(products: Iterable[Mapping[str, Any]], sku: str) -> list[dict[str, Any]]:
    """The products a channel would return for ``sku``.

    Rows whose SKU matches exactly; if there are none, rows whose SKU matches
    case-insensitively (as on real channels, where SKU filters ignore case).
    """
    rows = [dict(p) for p in products]
    exact = [p for p in rows if p["sku"] == sku]
    if exact:
        return exact
    folded = sku.casefold()
    return [p for p in rows if p["sku"].casefold() == folded]


def take_failure(state: dict[str, Any], operation: str, ref: str | None) -> dict[str, Any] | None:
    """Consume the failure switch that applies to ``operation`` on ``ref``, if any.

    ``ref=None`` asks for a whole-call switch; otherwise a switch for that record (compared
    case-insensitively). A switch with a ``times`` budget is used up by this call and removed
    when the budget reaches zero.

    :return: a copy of the switch that fired, or None.
    """
    wanted = None if ref is None else ref.casefold()
    for switch in state["failures"]:
        switch_ref = switch["ref"]
        if switch["operation"] != operation:
            continue
        if (switch_ref.casefold() if switch_ref is not None else None) != wanted:
            continue
        fired = dict(switch)
        if switch["times"] is not None:
            switch["times"] -= 1
            if switch["times"] <= 0:
                state["failures"].remove(switch)
        return fired
    return None


def count_call(state: dict[str, Any], operation: str) -> None:
    """Add one to the call log of ``operation``."""
    state["calls"][operation] = state["calls"].get(operation, 0) + 1


class FakeStore:
    """The fake channel's state in a JSON file at ``path``.

    The file is created by the first change; reading a store that does not exist yet gives an
    empty channel. Every method is a complete transaction and returns plain dicts (copies):
    change the store through its methods, never through what they return.

    >>> store = FakeStore(tmp_path / "fake.json")           # doctest: +SKIP
    >>> pid = store.add_product("FAKE-0001", quantity=5, price="9.99")
    >>> store.fail("sync_listings", ref="FAKE-0001", kind="transient")
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def __repr__(self) -> str:
        return f"FakeStore({str(self.path)!r})"

    # -- files and locks ---------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether the store file exists."""
        return self.path.is_file()

    @contextlib.contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+b") as lock:
            fcntl.flock(lock.fileno(), mode)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return _empty()
        except OSError as exc:
            raise FakeStoreError(f"Cannot read the fake channel store {self.path}: {exc}") from exc
        try:
            state = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FakeStoreError(
                f"{self.path} is not a fake channel store (invalid JSON: {exc})"
            ) from exc
        if not isinstance(state, dict) or state.get("format") != "hub-fake-channel":
            raise FakeStoreError(f"{self.path} is not a fake channel store")
        return {**_empty(), **state}

    def _write(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(state, out, indent=1, sort_keys=False)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict[str, Any]]:
        """Lock the store, yield its whole state as a dict, and save it if the block succeeds.

        An exception inside the block leaves the file untouched. Other processes and threads
        wait for the lock.
        """
        with self._locked(fcntl.LOCK_EX):
            state = self._read()
            before = copy.deepcopy(state)
            yield state
            if state != before or not self.exists():
                self._write(state)

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the whole state (under a shared lock)."""
        with self._locked(fcntl.LOCK_SH):
            return self._read()

    def create(self) -> None:
        """Create an empty store file if there is none."""
        with self.transaction():
            pass

    # -- products ----------------------------------------------------------------------------

    def add_product(
        self,
        sku: str,
        title: str = "",
        quantity: int = 0,
        price: Decimal | str | int | float = "0",
        product_id: str | None = None,
    ) -> str:
        """Add a product and return its channel product id (``P-0001`` unless given).

        SKUs need not be unique: two products with one SKU make link answer ``ambiguous``.

        :raises FakeStoreError: ``product_id`` is taken.
        """
        with self.transaction() as state:
            return insert_product(state, sku, title, quantity, price, product_id)

    def update_product(self, product_id: str, **fields: Any) -> None:
        """Change a product's ``sku``, ``title``, ``quantity`` or ``price`` on the channel side.

        :raises FakeStoreError: unknown product or field.
        """
        unknown = set(fields) - {"sku", "title", "quantity", "price"}
        if unknown:
            raise FakeStoreError(f"Unknown product fields: {', '.join(sorted(unknown))}")
        with self.transaction() as state:
            product = _product(state, product_id)
            if "price" in fields:
                fields["price"] = money(fields["price"])
            if "quantity" in fields:
                fields["quantity"] = int(fields["quantity"])
            product.update(fields)

    def delete_product(self, product_id: str) -> None:
        """Delete a product, as a merchant would in the channel's own back office.

        :raises FakeStoreError: no such product.
        """
        with self.transaction() as state:
            _product(state, product_id)
            del state["products"][product_id]

    def product(self, product_id: str) -> dict[str, Any] | None:
        """The product with this channel id, or None."""
        return self.snapshot()["products"].get(product_id)

    def product_by_sku(self, sku: str) -> dict[str, Any] | None:
        """The one product with this SKU (exact case first, then any case), or None.

        :raises LookupError: several products match; use :meth:`products_by_sku`.
        """
        found = self.products_by_sku(sku)
        if len(found) > 1:
            ids = ", ".join(p["id"] for p in found)
            raise LookupError(f"Several products have the SKU {sku!r}: {ids}")
        return found[0] if found else None

    def products_by_sku(self, sku: str) -> list[dict[str, Any]]:
        """Every product link would consider for ``sku`` (see :func:`match_sku`)."""
        return match_sku(self.snapshot()["products"].values(), sku)

    def products(self) -> list[dict[str, Any]]:
        """Every product: ``{id, sku, title, quantity, price}`` (price as a string)."""
        return list(self.snapshot()["products"].values())

    # -- orders ------------------------------------------------------------------------------

    def add_order(
        self,
        lines: Sequence[Mapping[str, Any] | tuple[Any, ...]] | None = None,
        *,
        order_id: str | None = None,
        marketplace_order_id: str | None = None,
        created_at: datetime | str | None = None,
        status: str = "open",
        checkout_status: str = "Completed",
        payment_status: str = "Cleared",
        shipping_status: str = "Unshipped",
        shipping_text: str = "UPS - Ground",
        acknowledged: bool = False,
        cancelled: bool = False,
        marketplace: str = "FakeMarket",
        currency: str = "USD",
    ) -> str:
        """Add an order (as a marketplace would) and return its channel order id (``O-0001``).

        :param lines: each a mapping ``{sku, quantity, unit_price?, title?}`` or a tuple
            ``(sku, quantity[, unit_price])``; by default one unit of the first product (or of
            ``FAKE-0001`` when there are no products). A line's price defaults to its product's.
        :param order_id: the channel order id; by default the next ``O-NNNN``.
        :param marketplace_order_id: by default ``M-<number of the channel id>``.
        :param created_at: by default now (UTC); naive values are taken as UTC.
        :param status: what the ``statuses`` setting filters on (``open``, ``pending``...).
        :param shipping_text: what a shipping mapping must equal (``"UPS - Ground"``).
        :raises FakeStoreError: ``order_id`` taken, or a line without a SKU or quantity.
        """
        with self.transaction() as state:
            return insert_order(
                state,
                lines,
                order_id=order_id,
                marketplace_order_id=marketplace_order_id,
                created_at=created_at,
                status=status,
                checkout_status=checkout_status,
                payment_status=payment_status,
                shipping_status=shipping_status,
                shipping_text=shipping_text,
                acknowledged=acknowledged,
                cancelled=cancelled,
                marketplace=marketplace,
                currency=currency,
            )

    def update_order(self, order_id: str, **fields: Any) -> None:
        """Change an order's top-level fields (``status``, ``acknowledged``, ``created_at``...).

        :raises FakeStoreError: unknown order or field.
        """
        allowed = {
            "marketplace_order_id",
            "created_at",
            "status",
            "checkout_status",
            "payment_status",
            "shipping_status",
            "shipping_text",
            "acknowledged",
            "cancelled",
            "marketplace",
            "currency",
        }
        unknown = set(fields) - allowed
        if unknown:
            raise FakeStoreError(f"Unknown order fields: {', '.join(sorted(unknown))}")
        if "created_at" in fields:
            fields["created_at"] = parse_time(fields["created_at"]).isoformat()
        with self.transaction() as state:
            _order(state, order_id).update(fields)

    def cancel_order(self, order_id: str) -> None:
        """Mark an order cancelled by the marketplace (its status is left as it is).

        Get orders still returns it if it is eligible, or if it was acknowledged, flagged
        ``cancelled``; sync orders skips shipments for it (``order_status="cancelled"``).

        :raises FakeStoreError: no such order.
        """
        self.update_order(order_id, cancelled=True)

    def order(self, order_id: str) -> dict[str, Any] | None:
        """The order with this channel id, or None."""
        return self.snapshot()["orders"].get(order_id)

    def orders(self) -> list[dict[str, Any]]:
        """Every order, with its lines (``shipped`` counts what shipments covered)."""
        return list(self.snapshot()["orders"].values())

    # -- what the hub sent -------------------------------------------------------------------

    def shipments_received(self) -> list[dict[str, Any]]:
        """Every shipment recorded, once per hub shipment id, in the order received.

        ``received`` counts how many times the hub sent that shipment id: more than 1 means a
        retry reached the channel again (the plugin answered ok without recording it twice).
        """
        return list(self.snapshot()["shipments"].values())

    def updates_received(self) -> list[dict[str, Any]]:
        """Every listing update applied, in order: ``{sku, product_id, fields}``."""
        return list(self.snapshot()["updates"])

    def calls(self) -> dict[str, int]:
        """How many times each operation was called with valid credentials."""
        return dict(self.snapshot()["calls"])

    # -- failure switches --------------------------------------------------------------------

    def fail(
        self,
        operation: str,
        ref: str | None = None,
        times: int | None = None,
        kind: FailureKind = "error",
    ) -> None:
        """Make the plugin fail ``operation``: the whole call, or one record of it.

        :param operation: one of :data:`OPERATIONS` (``sync_orders``...).
        :param ref: None fails the whole call (the plugin raises ``ChannelError``); a SKU,
            channel order id or hub shipment id fails that record only (a failed outcome;
            for ``get_orders`` the call breaks off with ``ChannelError`` when it reaches that
            order, after yielding the orders before it).
        :param times: how many calls fail before the switch is spent; None means always
            (``error``, ``lost``) or once (``transient``).
        :param kind: ``error`` (a refusal), ``transient`` (a temporary outage: fails, then
            succeeds) or ``lost`` (the channel applies the change but the answer is lost, so
            the caller sees a failure).
        :raises FakeStoreError: unknown operation or kind, or ``times`` below 1.
        """
        if operation not in OPERATIONS:
            raise FakeStoreError(
                f"Unknown operation {operation!r}; one of: {', '.join(OPERATIONS)}"
            )
        if kind not in FAILURE_KINDS:
            raise FakeStoreError(
                f"Unknown failure kind {kind!r}; one of: {', '.join(FAILURE_KINDS)}"
            )
        if kind == "transient" and times is None:
            times = 1
        if times is not None and times < 1:
            raise FakeStoreError(f"times must be at least 1, got {times}")
        with self.transaction() as state:
            state["failures"].append(
                {"operation": operation, "ref": ref, "times": times, "kind": kind}
            )

    def failures(self) -> list[dict[str, Any]]:
        """The failure switches still armed."""
        return list(self.snapshot()["failures"])

    def clear_failures(self) -> None:
        """Disarm every failure switch."""
        with self.transaction() as state:
            state["failures"] = []


# -- helpers working on a state dict inside a transaction (the plugin uses these) -----------


def _next_id(state: dict[str, Any], kind: str, prefix: str, taken: Mapping[str, Any]) -> str:
    while True:
        number = state["next_ids"][kind]
        state["next_ids"][kind] = number + 1
        candidate = f"{prefix}-{number:04d}"
        if candidate not in taken:
            return candidate


def _product(state: dict[str, Any], product_id: str) -> dict[str, Any]:
    try:
        return state["products"][product_id]  # type: ignore[no-any-return]
    except KeyError:
        raise FakeStoreError(f"No product {product_id!r} in the fake channel store") from None


def _order(state: dict[str, Any], order_id: str) -> dict[str, Any]:
    try:
        return state["orders"][order_id]  # type: ignore[no-any-return]
    except KeyError:
        raise FakeStoreError(f"No order {order_id!r} in the fake channel store") from None


def insert_product(
    state: dict[str, Any],
    sku: str,
    title: str = "",
    quantity: int = 0,
    price: Decimal | str | int | float = "0",
    product_id: str | None = None,
) -> str:
    """Add a product to ``state`` inside a transaction; see :meth:`FakeStore.add_product`."""
    if not sku:
        raise FakeStoreError("A product needs a SKU")
    if product_id is None:
        product_id = _next_id(state, "product", "P", state["products"])
    elif product_id in state["products"]:
        raise FakeStoreError(f"Product id {product_id!r} is taken")
    state["products"][product_id] = {
        "id": product_id,
        "sku": sku,
        "title": title,
        "quantity": int(quantity),
        "price": money(price),
    }
    return product_id


def insert_order(
    state: dict[str, Any],
    lines: Sequence[Mapping[str, Any] | tuple[Any, ...]] | None = None,
    *,
    order_id: str | None = None,
    marketplace_order_id: str | None = None,
    created_at: datetime | str | None = None,
    status: str = "open",
    checkout_status: str = "Completed",
    payment_status: str = "Cleared",
    shipping_status: str = "Unshipped",
    shipping_text: str = "UPS - Ground",
    acknowledged: bool = False,
    cancelled: bool = False,
    marketplace: str = "FakeMarket",
    currency: str = "USD",
) -> str:
    """Add an order to ``state`` inside a transaction; see :meth:`FakeStore.add_order`."""
    if order_id is None:
        order_id = _next_id(state, "order", "O", state["orders"])
    elif order_id in state["orders"]:
        raise FakeStoreError(f"Order id {order_id!r} is taken")
    if lines is None:
        first = next(iter(state["products"].values()), None)
        lines = [{"sku": first["sku"] if first else "FAKE-0001", "quantity": 1}]
    stored_lines = []
    for number, line in enumerate(lines, start=1):
        if isinstance(line, tuple):
            line = dict(zip(("sku", "quantity", "unit_price"), line, strict=False))
        if not line.get("sku") or int(line.get("quantity") or 0) < 1:
            raise FakeStoreError(f"Order line {number} needs a SKU and a quantity of at least 1")
        price = line.get("unit_price")
        if price is None:
            known = match_sku(state["products"].values(), line["sku"])
            price = known[0]["price"] if known else "0"
        stored_lines.append(
            {
                "id": f"{order_id}-L{number}",
                "sku": line["sku"],
                "quantity": int(line["quantity"]),
                "unit_price": money(price),
                "title": line.get("title") or "",
                "shipped": 0,
            }
        )
    digits = "".join(ch for ch in order_id if ch.isdigit()) or order_id
    state["orders"][order_id] = {
        "id": order_id,
        "marketplace_order_id": marketplace_order_id or f"M-{digits}",
        "marketplace": marketplace,
        "currency": currency,
        "created_at": parse_time(created_at if created_at is not None else _now()).isoformat(),
        "status": status,
        "checkout_status": checkout_status,
        "payment_status": payment_status,
        "shipping_status": shipping_status,
        "shipping_text": shipping_text,
        "acknowledged": acknowledged,
        "cancelled": cancelled,
        "lines": stored_lines,
    }
    return order_id
