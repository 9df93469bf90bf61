"""The sandbox's state: products, orders (with items and fulfillments), distribution centers,
profiles and carriers, held in memory behind one re-entrant lock.

Rows are dicts (see `model`). Each entity set is a `Collection` with hash indexes on the
properties clients look rows up by (ID, Sku, ProfileID, SiteOrderID, OrderID, ...), so a
lookup by SKU or ID costs O(1) even with 100k products; query results are cached per
(filter, order, profiles) until the collection changes, so following nextLinks through a
large result costs O(page) per request.

Quantity model (reference §3.3). Every product keeps, per distribution center, five buckets:
Available (sellable), Open (open listings / allocated), PendingCheckout, PendingPayment and
PendingShipment. `UpdateQuantity` computes the new Available quantity of each DC from the
value sent and the DC's other buckets, by UpdateType:

    Absolute   available = value
    Relative   available = available + value
    Available  available = value - open
    InStock    available = value - open - pending checkout - pending payment
    UnShipped  available = value - open - pending checkout - pending payment - pending shipment

(never below 0). Product totals (`TotalAvailableQuantity`, `OpenAllocatedQuantity`, ...)
are sums over DCs; a product with no DC record has null totals, as CA can answer
(`TotalAvailableQuantity` can be null, reference §3.1). Pending buckets are seeded data;
orders do not move them, so every computation stays predictable for tests.

Ship (reference §4.6, partial-shipment rules UNCERTAIN): lines are matched by OrderItemID
(Sku only as a fallback when OrderItemID is absent). Shipping exactly the content of an
open fulfillment updates that fulfillment in place (what CA does with the order's initial
fulfillment); anything else creates a new fulfillment and takes the quantities out of the
open ones ("CA creates fulfillments as needed"). Carrier/class are matched
case-insensitively against the account's list and stored in the list's spelling.

Export flags are a set of application ids per order (reference §4.4: per application).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import constants as c
from .errors import AdminError, ApiError
from .model import (
    DC_BUCKETS,
    ENTITY_TYPES,
    FULFILLMENT_FIELDS,
    FULFILLMENT_ITEM_FIELDS,
    ORDER_FIELDS,
    ORDER_ITEM_FIELDS,
    PRODUCT_FIELDS,
    PRODUCT_WRITABLE,
    QUANTITY_FIELDS,
    EntityType,
    coerce_field,
    json_value,
    parse_datetime,
    utcnow,
)
from .odata import CompiledFilter, sort_rows

Row = dict[str, Any]
_EMPTY: frozenset[int] = frozenset()


def _norm(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class Collection:
    """One entity set: rows by key, hash indexes, and a version bumped on every change."""

    def __init__(
        self, name: str, etype: EntityType, indexed: Iterable[str], scope_field: str | None
    ) -> None:
        self.name = name
        self.etype = etype
        self.rows: dict[int, Row] = {}
        self.indexes: dict[str, dict[Any, set[int]]] = {f: {} for f in indexed}
        # The property that ties a row to a profile (None: account-wide, e.g. DCs).
        self.scope_field = scope_field
        self.version = 0

    def add(self, row: Row) -> None:
        key = row["ID"]
        self.rows[key] = row
        for name, index in self.indexes.items():
            index.setdefault(_norm(row.get(name)), set()).add(key)
        self.version += 1

    def remove(self, key: int) -> Row | None:
        row = self.rows.pop(key, None)
        if row is not None:
            for name, index in self.indexes.items():
                bucket = index.get(_norm(row.get(name)))
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket:
                        del index[_norm(row.get(name))]
            self.version += 1
        return row

    def set_value(self, row: Row, name: str, value: Any) -> None:
        """Change one property, keeping its index (if any) right."""
        index = self.indexes.get(name)
        if index is not None:
            old = _norm(row.get(name))
            bucket = index.get(old)
            if bucket is not None:
                bucket.discard(row["ID"])
                if not bucket:
                    del index[old]
            index.setdefault(_norm(value), set()).add(row["ID"])
        row[name] = value

    def lookup(self, name: str, value: Any) -> set[int] | None:
        """Keys whose `name` equals `value` (strings compared lower-cased); None: no index."""
        index = self.indexes.get(name)
        if index is None:
            return None
        return index.get(value, _EMPTY)  # type: ignore[return-value]

    def clear(self) -> None:
        self.rows.clear()
        for index in self.indexes.values():
            index.clear()
        self.version += 1


def _zero_buckets() -> dict[str, int]:
    return dict.fromkeys(DC_BUCKETS, 0)


def _recompute_quantities(row: Row) -> None:
    dcs = row["_dc"]
    if not dcs:
        for name in QUANTITY_FIELDS:
            row[name] = None
        return
    total = 0
    for bucket, name in DC_BUCKETS.items():
        value = sum(q[bucket] for q in dcs.values())
        row[name] = value
        total += value
    row["TotalQuantity"] = total


def _bad_property(name: str, etype: EntityType) -> ApiError:
    return ApiError(
        400,
        f"The property '{name}' does not exist on type '{etype.qualified_name}'. Make sure "
        "to only use property names that are defined by the type.",
    )


def _require_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(400, f"{what} must be a JSON object.")
    return value


def _check_keys(data: Mapping[str, Any], allowed: Iterable[str], type_name: str) -> None:
    allowed_set = set(allowed)
    for key in data:
        if key not in allowed_set and not key.startswith("@odata."):
            raise ApiError(
                400,
                f"The property '{key}' does not exist on type "
                f"'ChannelAdvisor.RestApi.V1.Models.{type_name}'.",
            )


def _int_value(value: Any, what: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{what} must be an integer.")
    if minimum is not None and value < minimum:
        raise ApiError(400, f"{what} must be at least {minimum}.")
    return value


_QUANTITY_SET = frozenset(QUANTITY_FIELDS)
_PRODUCT_SEED_KEYS = set(PRODUCT_FIELDS) | {
    "Quantity",
    "DCQuantities",
    "Labels",
    "Attributes",
    "Images",
}
_ORDER_SEED_KEYS = set(ORDER_FIELDS) | {"Items", "exported_by"}
# `DistributionCenterID` on an item seeds it into that DC's initial fulfillment.
_ITEM_SEED_KEYS = set(ORDER_ITEM_FIELDS) | {"DistributionCenterID"}
_SHIP_KEYS = [
    "ShippedDateUtc",
    "TrackingNumber",
    "TrackingUrl",
    "ReturnTrackingNumber",
    "ShippingCarrier",
    "ShippingClass",
    "DistributionCenterID",
    "SellerFulfillmentID",
    "DeliveryStatus",
    "FulfillmentType",
    "PreventMarketplaceCommunication",
    "SerialShippingContainerCode",
    "Items",
]
_SHIP_ITEM_KEYS = (
    "OrderItemID",
    "ProductID",
    "Sku",
    "Quantity",
    "SellerFulfillmentItemID",
    "ReferenceSku",
)
_DC_SEED_KEYS = {
    "DistributionCenterID": "",
    "AvailableQuantity": "Available",
    "OpenAllocatedQuantity": "Open",
    "PendingCheckoutQuantity": "PendingCheckout",
    "PendingPaymentQuantity": "PendingPayment",
    "PendingShipmentQuantity": "PendingShipment",
}


_DC_ENTRY_KEYS = frozenset(_DC_SEED_KEYS) | {"ProductID"}
# Top-level seed keys that set a bucket of DC 0.
_DC0_SHORTCUTS = {
    "Quantity": "Available",
    "TotalAvailableQuantity": "Available",
    "OpenAllocatedQuantity": "Open",
    "PendingCheckoutQuantity": "PendingCheckout",
    "PendingPaymentQuantity": "PendingPayment",
    "PendingShipmentQuantity": "PendingShipment",
}


class Store:
    """All sandbox data and the operations the API and the admin surface perform on it."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        et = ENTITY_TYPES
        self.products = Collection(
            "Products", et["Product"], ("ID", "Sku", "ProfileID", "UPC"), "ProfileID"
        )
        self.orders = Collection(
            "Orders", et["Order"], ("ID", "ProfileID", "SiteOrderID"), "ProfileID"
        )
        self.fulfillments = Collection(
            "Fulfillments",
            et["Fulfillment"],
            ("ID", "OrderID", "ProfileID", "SellerFulfillmentID"),
            "ProfileID",
        )
        self.dcs = Collection("DistributionCenters", et["DistributionCenter"], ("ID",), None)
        self.profiles = Collection("Profiles", et["Profile"], ("ID",), "ID")
        self.carriers: dict[str, list[str]] = {}
        self._item_orders: dict[int, int] = {}
        self._next = {
            "product": 22_000_001,
            "order": 4_445_860_001,
            "item": 91_234_501,
            "fulfillment": 11_399_101,
            "fitem": 55_501,
        }
        self._cache: OrderedDict[tuple[Any, ...], tuple[int, list[int]]] = OrderedDict()
        self.dirty_products: set[int] = set()
        self.dirty_orders: set[int] = set()
        self.meta_dirty = False
        self._install_defaults()

    # -- setup -------------------------------------------------------------------------
    def _install_defaults(self) -> None:
        for profile in c.DEFAULT_PROFILES:
            self.profiles.add(dict(profile))
        for dc_row in c.DEFAULT_DISTRIBUTION_CENTERS:
            row = dict(dc_row)
            if row.get("DeletedDateUtc"):
                row["DeletedDateUtc"] = parse_datetime(row["DeletedDateUtc"])
            self.dcs.add(row)
        self.carriers = {k: list(v) for k, v in c.DEFAULT_CARRIERS.items()}

    def collection(self, set_name: str) -> Collection:
        """The collection serving an entity set name."""
        return {
            "Products": self.products,
            "Orders": self.orders,
            "Fulfillments": self.fulfillments,
            "DistributionCenters": self.dcs,
            "Profiles": self.profiles,
        }[set_name]

    def _take_id(self, kind: str) -> int:
        value = self._next[kind]
        self._next[kind] = value + 1
        return value

    def _reserve_id(self, kind: str, value: int) -> None:
        if value >= self._next[kind]:
            self._next[kind] = value + 1

    # -- queries -----------------------------------------------------------------------
    def get_visible(
        self, coll: Collection, key: int, profiles: frozenset[int] | None
    ) -> Row | None:
        """A row by key if the caller's profiles may see it (profiles None: any)."""
        row = coll.rows.get(key)
        if row is None:
            return None
        if profiles is not None and coll.scope_field and row[coll.scope_field] not in profiles:
            return None
        return row

    def query(
        self,
        coll: Collection,
        flt: CompiledFilter | None,
        orderby: list[tuple[str, bool]],
        profiles: frozenset[int],
        extra: Callable[[Row], bool] | None = None,
    ) -> list[int]:
        """Keys of the visible rows matching the filter, in `$orderby` (else key) order.

        `extra` (the per-application export flag of an order) is applied to the cached
        result on every call, not cached with it: an Export changes that flag only, so it
        leaves the cache (and the filter's work over every order) valid.
        """
        with self.lock:
            keys = self._query(coll, flt, orderby, profiles)
            if extra is None:
                return keys
            rows = coll.rows
            return [k for k in keys if extra(rows[k])]

    def _query(
        self,
        coll: Collection,
        flt: CompiledFilter | None,
        orderby: list[tuple[str, bool]],
        profiles: frozenset[int],
    ) -> list[int]:
        with self.lock:
            key = (coll.name, flt.text if flt else None, tuple(orderby), profiles)
            hit = self._cache.get(key)
            if hit is not None and hit[0] == coll.version:
                self._cache.move_to_end(key)
                return hit[1]
            candidates, exact = flt.plan(coll.lookup) if flt else (None, False)
            scope = coll.scope_field
            if candidates is None:
                exact = False
                if scope and scope in coll.indexes:
                    index = coll.indexes[scope]
                    candidates = set()
                    for profile in profiles:
                        candidates |= index.get(profile, _EMPTY)
                else:
                    candidates = set(coll.rows)
            rows = coll.rows
            result: list[int] = []
            for row_key in sorted(candidates):
                row = rows.get(row_key)
                if row is None:
                    continue
                if scope and row[scope] not in profiles:
                    continue
                if flt is not None and not exact and not flt.matches(row):
                    continue
                result.append(row_key)
            if orderby:
                result = [r["ID"] for r in sort_rows([rows[k] for k in result], orderby)]
            self._cache[key] = (coll.version, result)
            while len(self._cache) > 64:
                self._cache.popitem(last=False)
            return result

    # -- products ----------------------------------------------------------------------
    def create_product(self, data: Mapping[str, Any]) -> Row:
        """Create a product from a seed dict (see `Sandbox.seed_products`)."""
        with self.lock:
            row = self._build_product(data)
            self.products.add(row)
            self.dirty_products.add(row["ID"])
            return row

    def _build_product(self, data: Mapping[str, Any]) -> Row:
        if not isinstance(data, Mapping):
            raise AdminError("a product must be a JSON object")
        unknown = sorted(set(data) - _PRODUCT_SEED_KEYS)
        if unknown:
            raise AdminError(f"unknown product properties: {', '.join(unknown)}")
        sku = data.get("Sku")
        if not isinstance(sku, str) or not sku:
            raise AdminError("a product needs a non-empty 'Sku'")
        profile_id = data.get("ProfileID", c.DEMO_PROFILE_ID)
        if profile_id not in self.profiles.rows:
            raise AdminError(f"unknown ProfileID {profile_id!r}")
        if "ID" in data:
            product_id = data["ID"]
            if isinstance(product_id, bool) or not isinstance(product_id, int) or product_id < 1:
                raise AdminError("'ID' must be a positive integer")
            if product_id in self.products.rows:
                raise AdminError(f"a product with ID {product_id} already exists")
            self._reserve_id("product", product_id)
        else:
            product_id = self._take_id("product")
        etype = self.products.etype
        row: Row = dict.fromkeys(PRODUCT_FIELDS)
        for name, value in data.items():
            if name in PRODUCT_FIELDS and name not in _QUANTITY_SET:
                try:
                    row[name] = coerce_field(etype, name, value)
                except ValueError as exc:
                    raise AdminError(str(exc)) from None
        now = utcnow()
        row["ID"] = product_id
        row["ProfileID"] = profile_id
        row["Title"] = row["Title"] if row["Title"] is not None else sku
        for flag in (
            "IsParent",
            "IsInRelationship",
            "IsBlocked",
            "InfiniteQuantity",
            "IsExternalQuantityBlocked",
        ):
            row[flag] = bool(row[flag])
        row["IsAvailableInStore"] = (
            True if row["IsAvailableInStore"] is None else row["IsAvailableInStore"]
        )
        row["ProductType"] = row["ProductType"] or ("Parent" if row["IsParent"] else "Item")
        row["CreateDateUtc"] = row["CreateDateUtc"] or now
        row["UpdateDateUtc"] = row["UpdateDateUtc"] or row["CreateDateUtc"]
        row["_dc"] = self._seed_dc_quantities(data)
        if row["_dc"]:
            row["QuantityUpdateDateUtc"] = row["QuantityUpdateDateUtc"] or row["CreateDateUtc"]
        _recompute_quantities(row)
        row["Labels"] = self._seed_labels(product_id, data.get("Labels"))
        row["Attributes"] = self._seed_attributes(product_id, data.get("Attributes"))
        images = data.get("Images") or []
        if not isinstance(images, list):
            raise AdminError("'Images' must be a list")
        row["Images"] = [
            {"ProductID": product_id, "PlacementName": i.get("PlacementName"), "Url": i.get("Url")}
            for i in images
        ]
        return row

    def _seed_dc_quantities(self, data: Mapping[str, Any]) -> dict[int, dict[str, int]]:
        dcs: dict[int, dict[str, int]] = {}
        entries = data.get("DCQuantities")
        if entries is not None:
            if not isinstance(entries, list):
                raise AdminError("'DCQuantities' must be a list")
            for entry in entries:
                if not isinstance(entry, Mapping):
                    raise AdminError("each DCQuantities entry must be an object")
                unknown = sorted(set(entry) - _DC_ENTRY_KEYS)
                if unknown:
                    raise AdminError(f"unknown DCQuantities properties: {', '.join(unknown)}")
                dc_id = entry.get("DistributionCenterID", 0)
                dc = self.dcs.rows.get(dc_id)
                if dc is None or dc["IsDeleted"]:
                    raise AdminError(f"unknown distribution center {dc_id!r}")
                record = dcs.setdefault(dc_id, _zero_buckets())
                for key, bucket in _DC_SEED_KEYS.items():
                    if bucket and key in entry:
                        record[bucket] = self._seed_int(entry[key], key)
        for key, bucket in _DC0_SHORTCUTS.items():
            if data.get(key) is not None:
                dcs.setdefault(0, _zero_buckets())[bucket] = self._seed_int(data[key], key)
        return dcs

    @staticmethod
    def _seed_int(value: Any, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise AdminError(f"'{what}' must be a non-negative integer")
        return value

    @staticmethod
    def _seed_labels(product_id: int, labels: Any) -> list[Row]:
        if labels is None:
            return []
        if not isinstance(labels, list):
            raise AdminError("'Labels' must be a list")
        return [
            {"ProductID": product_id, "Name": lab["Name"] if isinstance(lab, Mapping) else lab}
            for lab in labels
        ]

    @staticmethod
    def _seed_attributes(product_id: int, attributes: Any) -> list[Row]:
        if attributes is None:
            return []
        if isinstance(attributes, Mapping):
            attributes = [{"Name": k, "Value": v} for k, v in attributes.items()]
        if not isinstance(attributes, list):
            raise AdminError("'Attributes' must be a list or an object")
        return [
            {"ProductID": product_id, "Name": a.get("Name"), "Value": a.get("Value")}
            for a in attributes
        ]

    def delete_product(self, product_id: int, profiles: frozenset[int] | None = None) -> bool:
        """Delete a product (as CA's DELETE or a UI delete does); False when absent."""
        with self.lock:
            if self.get_visible(self.products, product_id, profiles) is None:
                return False
            self.products.remove(product_id)
            self.dirty_products.add(product_id)
            return True

    def product_not_found(self, product_id: int) -> ApiError:
        """The 404 answered for a missing (or invisible) product."""
        return ApiError(404, f"No product with ID {product_id} was found.")

    def patch_product(self, product_id: int, changes: Any, profiles: frozenset[int]) -> None:
        """PATCH/PUT Products(ID): change the given writable properties only."""
        changes = _require_object(changes, "The request body")
        etype = self.products.etype
        with self.lock:
            row = self.get_visible(self.products, product_id, profiles)
            if row is None:
                raise self.product_not_found(product_id)
            updates: dict[str, Any] = {}
            for key, value in changes.items():
                if key.startswith("@odata."):
                    continue
                if key not in etype.fields:
                    raise _bad_property(key, etype)
                if key not in PRODUCT_WRITABLE:
                    if key in ("ID", "ProfileID") and value == row[key]:
                        continue
                    raise ApiError(400, f"The property '{key}' cannot be modified.")
                try:
                    updates[key] = coerce_field(etype, key, value)
                except ValueError as exc:
                    raise ApiError(400, f"The value of {exc}.") from None
            if "Sku" in updates and not updates["Sku"]:
                raise ApiError(400, "The property 'Sku' must not be empty.")
            for key, value in updates.items():
                self.products.set_value(row, key, value)
            row["UpdateDateUtc"] = utcnow()
            self.products.version += 1
            self.dirty_products.add(product_id)

    def update_quantity(
        self,
        product_id: int,
        body: Any,
        profiles: frozenset[int],
        *,
        omitted_complete: bool = False,
    ) -> None:
        """POST Products(ID)/UpdateQuantity (see the module docstring for the arithmetic).

        `CompleteDCList: true` zeroes the DCs the list leaves out; `omitted_complete` is
        what a body without the key means. A parent or a bundle has no quantity of its own
        (CA computes a bundle's from its components): refused with a 400.
        """
        body = _require_object(body, "The request body")
        _check_keys(body, ("Value",), "Product_UpdateQuantityParams")
        if "Value" not in body:
            raise ApiError(400, "The parameter 'Value' is required.")
        value = _require_object(body["Value"], "The parameter 'Value'")
        _check_keys(value, ("UpdateType", "Updates", "CompleteDCList"), "QuantityUpdateRequest")
        update_type = value.get("UpdateType")
        if update_type not in c.UPDATE_TYPES:
            raise ApiError(
                400,
                f"The value '{update_type}' is not a valid UpdateType; use one of "
                f"{', '.join(c.SUPPORTED_UPDATE_TYPES)}.",
            )
        if update_type not in c.SUPPORTED_UPDATE_TYPES:
            raise ApiError(400, f"The UpdateType '{update_type}' is not supported.")
        updates = value.get("Updates")
        if not isinstance(updates, list) or not updates:
            raise ApiError(400, "'Updates' must be a non-empty list of DC quantities.")
        complete = value.get("CompleteDCList", omitted_complete)
        if not isinstance(complete, bool):
            raise ApiError(400, "'CompleteDCList' must be true or false.")
        with self.lock:
            row = self.get_visible(self.products, product_id, profiles)
            if row is None:
                raise self.product_not_found(product_id)
            if row["IsParent"] or row["ProductType"] in ("Parent", "Bundle"):
                kind = "a bundle" if row["ProductType"] == "Bundle" else "a parent"
                raise ApiError(
                    400,
                    f"Product {product_id} is {kind} product; its quantity cannot be updated.",
                )
            parsed: dict[int, int] = {}
            for update in updates:
                update = _require_object(update, "Each entry of 'Updates'")
                _check_keys(update, ("DistributionCenterID", "Quantity"), "DCxQtyUpdate")
                dc_id = _int_value(update.get("DistributionCenterID"), "DistributionCenterID")
                quantity = _int_value(update.get("Quantity"), "Quantity")
                dc = self.dcs.rows.get(dc_id)
                if dc is None or dc["IsDeleted"]:
                    raise ApiError(400, f"Distribution center {dc_id} does not exist.")
                if dc["IsExternallyManaged"]:
                    raise ApiError(
                        400,
                        "Quantity cannot be updated for the externally managed distribution "
                        f"center '{dc['Name']}' (ID {dc_id}).",
                    )
                if quantity < 0 and update_type != "Relative":
                    raise ApiError(400, f"Quantity must not be negative for {update_type}.")
                if dc_id in parsed:
                    raise ApiError(400, f"Distribution center {dc_id} is listed twice.")
                parsed[dc_id] = quantity
            for dc_id, quantity in parsed.items():
                record = row["_dc"].setdefault(dc_id, _zero_buckets())
                record["Available"] = max(0, self._new_available(update_type, quantity, record))
            if complete:
                for dc_id, record in row["_dc"].items():
                    if dc_id not in parsed and not self.dcs.rows[dc_id]["IsExternallyManaged"]:
                        record["Available"] = 0
            _recompute_quantities(row)
            now = utcnow()
            row["QuantityUpdateDateUtc"] = now
            row["UpdateDateUtc"] = now
            self.products.version += 1
            self.dirty_products.add(product_id)

    @staticmethod
    def _new_available(update_type: str, value: int, q: dict[str, int]) -> int:
        if update_type == "Absolute":
            return value
        if update_type == "Relative":
            return q["Available"] + value
        reserved = q["Open"]
        if update_type in ("InStock", "UnShipped"):
            reserved += q["PendingCheckout"] + q["PendingPayment"]
        if update_type == "UnShipped":
            reserved += q["PendingShipment"]
        return value - reserved

    # -- orders ------------------------------------------------------------------------
    def create_order(self, data: Mapping[str, Any]) -> Row:
        """Create an order (items, initial fulfillment) from a seed dict."""
        with self.lock:
            row = self._build_order(data)
            self.orders.add(row)
            for item in row["Items"]:
                self._item_orders[item["ID"]] = row["ID"]
            for fulfillment in row["Fulfillments"]:
                self.fulfillments.add(fulfillment)
            self.dirty_orders.add(row["ID"])
            return row

    def _build_order(self, data: Mapping[str, Any]) -> Row:
        if not isinstance(data, Mapping):
            raise AdminError("an order must be a JSON object")
        unknown = sorted(set(data) - _ORDER_SEED_KEYS)
        if unknown:
            raise AdminError(f"unknown order properties: {', '.join(unknown)}")
        profile_id = data.get("ProfileID", c.DEMO_PROFILE_ID)
        if profile_id not in self.profiles.rows:
            raise AdminError(f"unknown ProfileID {profile_id!r}")
        if "ID" in data:
            order_id = data["ID"]
            if isinstance(order_id, bool) or not isinstance(order_id, int) or order_id < 1:
                raise AdminError("'ID' must be a positive integer")
            if order_id in self.orders.rows:
                raise AdminError(f"an order with ID {order_id} already exists")
            self._reserve_id("order", order_id)
        else:
            order_id = self._take_id("order")
        etype = self.orders.etype
        row: Row = dict.fromkeys(ORDER_FIELDS)
        for name, value in data.items():
            if name in ORDER_FIELDS:
                try:
                    row[name] = coerce_field(etype, name, value)
                except ValueError as exc:
                    raise AdminError(str(exc)) from None
        now = utcnow()
        row["ID"] = order_id
        row["ProfileID"] = profile_id
        site_id, site_name = c.SITES[0]
        defaults: dict[str, Any] = {
            "SiteID": site_id,
            "SiteName": site_name,
            "SiteOrderID": f"SO-{order_id}",
            "Currency": "USD",
            "CheckoutStatus": "Completed",
            "PaymentStatus": "Cleared",
            "ShippingStatus": "Unshipped",
            "DistributionCenterTypeRollup": "SellerManaged",
            "RequestedShippingCarrier": "UPS",
            "RequestedShippingClass": "Ground",
            "BuyerEmailAddress": f"buyer{order_id % 100000}@marketplace.example",
            "BuyerEmailOptIn": False,
            "ShippingFirstName": "Jane",
            "ShippingLastName": "Doe",
            "ShippingAddressLine1": "1 Main St",
            "ShippingCity": "Raleigh",
            "ShippingStateOrProvince": "NC",
            "ShippingPostalCode": "27601",
            "ShippingCountry": "US",
            "ShippingDaytimePhone": "555-555-0100",
        }
        for key, value in defaults.items():
            if row[key] is None and key not in data:
                row[key] = value
        if row["ShippingStatus"] == "PartiallyShipped":
            raise AdminError(
                "seed the order Unshipped and ship part of it (Ship) to get PartiallyShipped"
            )
        row["CreatedDateUtc"] = row["CreatedDateUtc"] or now
        row["ImportDateUtc"] = row["ImportDateUtc"] or row["CreatedDateUtc"]
        row["UpdatedDateUtc"] = row["UpdatedDateUtc"] or row["ImportDateUtc"]
        if row["CheckoutStatus"] in ("Completed", "CompletedAndVisited", "CompletedOffline"):
            row["CheckoutDateUtc"] = row["CheckoutDateUtc"] or row["CreatedDateUtc"]
        if row["PaymentStatus"] in ("Cleared", "Deposited", "Submitted"):
            row["PaymentDateUtc"] = row["PaymentDateUtc"] or row["CreatedDateUtc"]
        if row["ShippingStatus"] == "ThirdPartyManaged":
            row["DistributionCenterTypeRollup"] = "ExternallyManaged"
        items = data.get("Items")
        if not isinstance(items, list) or not items:
            raise AdminError("an order needs a non-empty 'Items' list")
        row["Items"] = [self._build_item(row, item, n) for n, item in enumerate(items, 1)]
        centers = self._item_centers(
            row, items, rollup_given="DistributionCenterTypeRollup" in data
        )
        if row["TotalPrice"] is None:
            row["TotalTaxPrice"] = row["TotalTaxPrice"] or round(
                sum(i["TaxPrice"] or 0 for i in row["Items"]), 2
            )
            row["TotalShippingPrice"] = row["TotalShippingPrice"] or round(
                sum(i["ShippingPrice"] or 0 for i in row["Items"]), 2
            )
            row["TotalShippingTaxPrice"] = row["TotalShippingTaxPrice"] or 0.0
            row["TotalPrice"] = round(
                sum(i["UnitPrice"] * i["Quantity"] for i in row["Items"])
                + row["TotalTaxPrice"]
                + row["TotalShippingPrice"]
                + row["TotalShippingTaxPrice"],
                2,
            )
        row["Adjustments"] = []
        row["CustomFields"] = []
        row["Fulfillments"] = self._initial_fulfillments(row, centers)
        exported_by = data.get("exported_by") or []
        if not isinstance(exported_by, list):
            raise AdminError("'exported_by' must be a list of application ids")
        row["_exported_by"] = {str(app) for app in exported_by}
        self._relink(row)
        return row

    def _build_item(self, order: Row, data: Any, line: int) -> Row:
        if not isinstance(data, Mapping):
            raise AdminError("each order item must be an object")
        unknown = sorted(set(data) - _ITEM_SEED_KEYS)
        if unknown:
            raise AdminError(f"unknown order item properties: {', '.join(unknown)}")
        sku = data.get("Sku")
        if not isinstance(sku, str) or not sku:
            raise AdminError("each order item needs a 'Sku'")
        etype = ENTITY_TYPES["OrderItem"]
        item: Row = dict.fromkeys(ORDER_ITEM_FIELDS)
        for name, value in data.items():
            if name in ORDER_ITEM_FIELDS:
                try:
                    item[name] = coerce_field(etype, name, value)
                except ValueError as exc:
                    raise AdminError(str(exc)) from None
        if "ID" in data:
            if data["ID"] in self._item_orders:
                raise AdminError(f"an order item with ID {data['ID']} already exists")
            self._reserve_id("item", data["ID"])
        else:
            item["ID"] = self._take_id("item")
        item["OrderID"] = order["ID"]
        item["ProfileID"] = order["ProfileID"]
        quantity = item["Quantity"] if item["Quantity"] is not None else 1
        if quantity < 1:
            raise AdminError("an order item's Quantity must be at least 1")
        item["Quantity"] = quantity
        product = None
        if item["ProductID"] is None:
            for pid in sorted(self.products.lookup("Sku", sku.lower()) or ()):
                candidate = self.products.rows[pid]
                if candidate["ProfileID"] == order["ProfileID"]:
                    product = candidate
                    break
            item["ProductID"] = product["ID"] if product else None
        else:
            product = self.products.rows.get(item["ProductID"])
        item["Title"] = item["Title"] or (product["Title"] if product else sku)
        if item["UnitPrice"] is None:
            price = product["BuyItNowPrice"] if product else None
            item["UnitPrice"] = price if price is not None else 10.0
        for name in ("TaxPrice", "ShippingPrice", "ShippingTaxPrice"):
            item[name] = item[name] if item[name] is not None else 0.0
        item["IsBundle"] = bool(item["IsBundle"])
        item["SiteOrderItemID"] = item["SiteOrderItemID"] or f"{order['ID']}-{line}"
        item["Promotions"] = []
        item["BundleComponents"] = []
        item["Adjustments"] = []
        return item

    def _new_fulfillment(self, order: Row, **values: Any) -> Row:
        now = utcnow()
        fulfillment: Row = dict.fromkeys(FULFILLMENT_FIELDS)
        fulfillment.update(
            ID=self._take_id("fulfillment"),
            ProfileID=order["ProfileID"],
            OrderID=order["ID"],
            CreatedDateUtc=now,
            UpdatedDateUtc=now,
            Type="Ship",
            DeliveryStatus="NoChange",
            DistributionCenterID=0,
        )
        fulfillment.update(values)
        fulfillment["Items"] = []
        return fulfillment

    def _add_fulfillment_item(
        self, fulfillment: Row, item: Row, quantity: int, status: str
    ) -> None:
        fitem: Row = dict.fromkeys(FULFILLMENT_ITEM_FIELDS)
        fitem.update(
            ID=self._take_id("fitem"),
            FulfillmentID=fulfillment["ID"],
            OrderID=item["OrderID"],
            OrderItemID=item["ID"],
            ProductID=item["ProductID"],
            Sku=item["Sku"],
            Quantity=quantity,
            MarketplaceShippingStatus=status,
        )
        fulfillment["Items"].append(fitem)

    def _item_centers(self, order: Row, items: list[Any], *, rollup_given: bool) -> dict[int, int]:
        """Item id -> seeded distribution center; sets the order's DC type rollup from them
        (unless the seed gave one): all externally managed -> ExternallyManaged, some ->
        Mixed."""
        centers: dict[int, int] = {}
        for item, data in zip(order["Items"], items, strict=True):
            if not isinstance(data, Mapping) or data.get("DistributionCenterID") is None:
                continue
            dc_id = data["DistributionCenterID"]
            dc = self.dcs.rows.get(dc_id) if isinstance(dc_id, int) else None
            if dc is None or dc["IsDeleted"]:
                raise AdminError(f"unknown distribution center {dc_id!r}")
            centers[item["ID"]] = dc_id
        if centers and not rollup_given:
            external = [
                self.dcs.rows[centers.get(i["ID"], 0)]["IsExternallyManaged"]
                for i in order["Items"]
            ]
            order["DistributionCenterTypeRollup"] = (
                "ExternallyManaged"
                if all(external)
                else "Mixed"
                if any(external)
                else "SellerManaged"
            )
        return centers

    def _initial_fulfillments(self, order: Row, centers: Mapping[int, int]) -> list[Row]:
        """One initial fulfillment per distribution center the items were seeded in (DC 0
        for the others); those of an externally managed DC are the marketplace's
        (`ThirdPartyManaged`)."""
        if not centers:
            return [self._initial_fulfillment(order)]
        by_dc: dict[int, list[Row]] = {}
        for item in order["Items"]:
            by_dc.setdefault(centers.get(item["ID"], 0), []).append(item)
        fulfillments = []
        for dc_id, items in sorted(by_dc.items()):
            fulfillment = self._initial_fulfillment(order, items)
            fulfillment["DistributionCenterID"] = dc_id
            if self.dcs.rows[dc_id]["IsExternallyManaged"]:
                fulfillment["DeliveryStatus"] = "ThirdPartyManaged"
            fulfillments.append(fulfillment)
        return fulfillments

    def _initial_fulfillment(self, order: Row, items: list[Row] | None = None) -> Row:
        """Every order starts with one fulfillment carrying the requested carrier/class."""
        status = order["ShippingStatus"]
        values: dict[str, Any] = {
            "ShippingCarrier": order["RequestedShippingCarrier"],
            "ShippingClass": order["RequestedShippingClass"],
        }
        item_status = "Pending"
        if status == "Shipped":
            shipped = min(order["CreatedDateUtc"] + dt.timedelta(days=1), utcnow())
            values.update(
                DeliveryStatus="Complete",
                TrackingNumber=f"1Z{order['ID'] % 10**12:012d}",
                ShippedDateUtc=shipped,
            )
            order["ShippingDateUtc"] = order["ShippingDateUtc"] or shipped
            item_status = "Complete"
        elif status == "Canceled":
            values["DeliveryStatus"] = "Canceled"
            order["ShippingDateUtc"] = order["ShippingDateUtc"] or order["CreatedDateUtc"]
        elif status == "ThirdPartyManaged":
            values.update(DeliveryStatus="ThirdPartyManaged", DistributionCenterID=2)
        fulfillment = self._new_fulfillment(order, **values)
        for item in order["Items"] if items is None else items:
            self._add_fulfillment_item(fulfillment, item, item["Quantity"], item_status)
        return fulfillment

    @staticmethod
    def _relink(order: Row) -> None:
        """Refresh each item's FulfillmentItems navigation after fulfillments changed."""
        by_item: dict[int, list[Row]] = {}
        for fulfillment in order["Fulfillments"]:
            for fitem in fulfillment["Items"]:
                by_item.setdefault(fitem["OrderItemID"], []).append(fitem)
        for item in order["Items"]:
            item["_fulfillment_items"] = by_item.get(item["ID"], [])

    def order_not_found(self, order_id: int) -> ApiError:
        """The 404 answered for a missing (or invisible) order."""
        return ApiError(404, f"No order with ID {order_id} was found.")

    def set_exported(
        self, order_id: int, application_id: str, exported: bool, profiles: frozenset[int]
    ) -> None:
        """POST (mark) / DELETE (unmark) Orders(ID)/Export for one application."""
        with self.lock:
            row = self.get_visible(self.orders, order_id, profiles)
            if row is None:
                raise self.order_not_found(order_id)
            if exported:
                row["_exported_by"].add(application_id)
            else:
                row["_exported_by"].discard(application_id)
            # No version bump: queries apply the export flag after their cache (see query).
            self.dirty_orders.add(order_id)

    @staticmethod
    def shipped_quantities(order: Row) -> dict[int, int]:
        """Quantity already shipped per order item (from shipped fulfillments)."""
        shipped: dict[int, int] = {}
        for fulfillment in order["Fulfillments"]:
            if fulfillment["DeliveryStatus"] in c.SHIPPING_DELIVERY_STATUSES:
                for fitem in fulfillment["Items"]:
                    key = fitem["OrderItemID"]
                    shipped[key] = shipped.get(key, 0) + fitem["Quantity"]
        return shipped

    def find_carrier(self, carrier: str, shipping_class: str) -> tuple[str, str] | None:
        """The account's spelling of a carrier/class pair, or None if it is not listed."""
        for name, classes in self.carriers.items():
            if name.lower() == carrier.strip().lower():
                for cls in classes:
                    if cls.lower() == shipping_class.strip().lower():
                        return name, cls
        return None

    def ship(self, order_id: int, body: Any, profiles: frozenset[int]) -> None:
        """POST Orders(ID)/Ship: validate everything, then create/update fulfillments."""
        body = _require_object(body, "The request body")
        _check_keys(body, ("Value",), "Order_ShipParams")
        if "Value" not in body:
            raise ApiError(400, "The parameter 'Value' is required.")
        value = _require_object(body["Value"], "The parameter 'Value'")
        _check_keys(value, _SHIP_KEYS, "ShipOrderRequest")
        with self.lock:
            order = self.get_visible(self.orders, order_id, profiles)
            if order is None:
                raise self.order_not_found(order_id)
            fields = self._ship_fields(order, value)
            to_ship = self._ship_quantities(order, value.get("Items"))
            self._refuse_marketplace_lines(order, to_ship)
            self._apply_shipment(order, fields, to_ship)

    def _ship_fields(self, order: Row, value: dict[str, Any]) -> dict[str, Any]:
        if order["ShippingStatus"] == "Canceled":
            raise ApiError(400, f"Order {order['ID']} is canceled and cannot be shipped.")
        if (
            order["ShippingStatus"] == "ThirdPartyManaged"
            or order["DistributionCenterTypeRollup"] == "ExternallyManaged"
        ):
            raise ApiError(
                400, f"Order {order['ID']} is fulfilled by a third party and cannot be shipped."
            )
        status = value.get("DeliveryStatus")
        if not isinstance(status, str) or not status:
            raise ApiError(400, "DeliveryStatus is required; use 'Complete' to mark items shipped.")
        canonical = next((m for m in c.DELIVERY_STATUSES if m.lower() == status.lower()), None)
        if canonical is None:
            raise ApiError(
                400,
                f"The string '{status}' is not a valid enumeration type constant of "
                "'ChannelAdvisor.RestApi.V1.Models.FulfillmentDeliveryStatus'.",
            )
        if canonical not in c.SHIPPING_DELIVERY_STATUSES:
            raise ApiError(
                400,
                f"DeliveryStatus '{canonical}' does not ship anything; use one of "
                f"{', '.join(c.SHIPPING_DELIVERY_STATUSES)}.",
            )
        carrier = value.get("ShippingCarrier")
        shipping_class = value.get("ShippingClass")
        if (
            not isinstance(carrier, str)
            or not carrier.strip()
            or not isinstance(shipping_class, str)
            or not shipping_class.strip()
        ):
            raise ApiError(400, "ShippingCarrier and ShippingClass are required.")
        pair = self.find_carrier(carrier, shipping_class)
        if pair is None:
            raise ApiError(
                400,
                f"The carrier/class combination {carrier}/{shipping_class} is not valid for "
                "this account.",
            )
        shipped_at = value.get("ShippedDateUtc")
        if shipped_at is None:
            shipped_date = utcnow()
        else:
            try:
                shipped_date = parse_datetime(shipped_at)
            except ValueError:
                raise ApiError(
                    400, f"ShippedDateUtc '{shipped_at}' is not a valid ISO-8601 date."
                ) from None
        for name in (
            "TrackingNumber",
            "TrackingUrl",
            "ReturnTrackingNumber",
            "SellerFulfillmentID",
            "SerialShippingContainerCode",
        ):
            if value.get(name) is not None and not isinstance(value[name], str):
                raise ApiError(400, f"{name} must be a string.")
        open_dc = next(
            (
                f["DistributionCenterID"]
                for f in order["Fulfillments"]
                if f["DeliveryStatus"] == "NoChange"
            ),
            0,
        )
        dc_id = value.get("DistributionCenterID")
        dc_id = open_dc if dc_id is None else _int_value(dc_id, "DistributionCenterID")
        dc = self.dcs.rows.get(dc_id)
        if dc is None or dc["IsDeleted"]:
            raise ApiError(400, f"Distribution center {dc_id} does not exist.")
        if dc["IsExternallyManaged"]:
            raise ApiError(
                400, f"Cannot ship from the externally managed distribution center {dc_id}."
            )
        ftype = value.get("FulfillmentType") or "Ship"
        if ftype not in c.FULFILLMENT_TYPES:
            raise ApiError(400, f"'{ftype}' is not a valid FulfillmentType.")
        return {
            "Type": ftype,
            "DeliveryStatus": canonical,
            "ShippingCarrier": pair[0],
            "ShippingClass": pair[1],
            "TrackingNumber": value.get("TrackingNumber"),
            "TrackingUrl": value.get("TrackingUrl"),
            "ReturnTrackingNumber": value.get("ReturnTrackingNumber"),
            "SellerFulfillmentID": value.get("SellerFulfillmentID"),
            "DistributionCenterID": dc_id,
            "ShippedDateUtc": shipped_date,
        }

    def _ship_quantities(self, order: Row, items: Any) -> dict[int, int]:
        shipped = self.shipped_quantities(order)
        remaining = {i["ID"]: i["Quantity"] - shipped.get(i["ID"], 0) for i in order["Items"]}
        by_id = {i["ID"]: i for i in order["Items"]}
        if items is None or items == []:
            to_ship = {k: v for k, v in remaining.items() if v > 0}
            if not to_ship:
                raise ApiError(400, f"Order {order['ID']} has no unshipped quantity left.")
            return to_ship
        if not isinstance(items, list):
            raise ApiError(400, "'Items' must be a list.")
        to_ship = {}
        for entry in items:
            entry = _require_object(entry, "Each entry of 'Items'")
            _check_keys(entry, _SHIP_ITEM_KEYS, "ShipOrderRequestItem")
            if "Quantity" not in entry:
                raise ApiError(400, "Each shipped item needs a Quantity.")
            quantity = _int_value(entry["Quantity"], "Quantity", minimum=1)
            item_id = entry.get("OrderItemID")
            if item_id is not None:
                item_id = _int_value(item_id, "OrderItemID")
                if item_id not in by_id:
                    raise ApiError(
                        400, f"Order item {item_id} does not belong to order {order['ID']}."
                    )
            else:
                sku = entry.get("Sku")
                if not isinstance(sku, str) or not sku:
                    raise ApiError(400, "Each shipped item needs an OrderItemID (or a Sku).")
                matches = [i["ID"] for i in order["Items"] if i["Sku"].lower() == sku.lower()]
                if not matches:
                    raise ApiError(400, f"Order {order['ID']} has no item with Sku '{sku}'.")
                if len(matches) > 1:
                    raise ApiError(
                        400,
                        f"Order {order['ID']} has several items with Sku '{sku}'; "
                        "send OrderItemID.",
                    )
                item_id = matches[0]
            to_ship[item_id] = to_ship.get(item_id, 0) + quantity
            if to_ship[item_id] > remaining[item_id]:
                raise ApiError(
                    400,
                    f"Cannot ship {to_ship[item_id]} of order item {item_id} "
                    f"(Sku '{by_id[item_id]['Sku']}'): only {remaining[item_id]} unshipped.",
                )
        return to_ship

    def _refuse_marketplace_lines(self, order: Row, to_ship: Mapping[int, int]) -> None:
        """Lines waiting in a fulfillment of an externally managed DC are the marketplace's
        to ship (a Mixed order): the seller cannot ship them."""
        for fulfillment in order["Fulfillments"]:
            if fulfillment["DeliveryStatus"] in (*c.SHIPPING_DELIVERY_STATUSES, "Canceled"):
                continue
            dc = self.dcs.rows.get(fulfillment["DistributionCenterID"])
            if dc is None or not dc["IsExternallyManaged"]:
                continue
            for fitem in fulfillment["Items"]:
                if fitem["OrderItemID"] in to_ship:
                    raise ApiError(
                        400,
                        f"Order item {fitem['OrderItemID']} of order {order['ID']} is "
                        f"fulfilled by the externally managed distribution center "
                        f"'{dc['Name']}' (ID {dc['ID']}) and cannot be shipped by the seller.",
                    )

    def cancel_order(self, order_id: int) -> Row:
        """Cancel an order as the marketplace or a CA user would (admin): ShippingStatus
        `Canceled`, its open fulfillments `Canceled`, dates updated. Shipped ones stay."""
        with self.lock:
            order = self.orders.rows.get(order_id)
            if order is None:
                raise AdminError(f"no order {order_id}", 404)
            now = utcnow()
            for fulfillment in order["Fulfillments"]:
                if fulfillment["DeliveryStatus"] not in c.SHIPPING_DELIVERY_STATUSES:
                    fulfillment["DeliveryStatus"] = "Canceled"
                    fulfillment["UpdatedDateUtc"] = now
            self.orders.set_value(order, "ShippingStatus", "Canceled")
            order["ShippingDateUtc"] = now
            order["UpdatedDateUtc"] = now
            self.orders.version += 1
            self.fulfillments.version += 1
            self.dirty_orders.add(order_id)
            return order

    def _apply_shipment(self, order: Row, fields: dict[str, Any], to_ship: dict[int, int]) -> None:
        now = utcnow()
        by_id = {i["ID"]: i for i in order["Items"]}
        open_fulfillments = [
            f
            for f in order["Fulfillments"]
            if f["DeliveryStatus"] not in c.SHIPPING_DELIVERY_STATUSES
            and f["DeliveryStatus"] != "Canceled"
        ]
        target = None
        for fulfillment in open_fulfillments:
            content: dict[int, int] = {}
            for fitem in fulfillment["Items"]:
                key = fitem["OrderItemID"]
                content[key] = content.get(key, 0) + fitem["Quantity"]
            if content == to_ship:
                target = fulfillment
                break
        if target is not None:
            for key, value in {**fields, "UpdatedDateUtc": now}.items():
                self.fulfillments.set_value(target, key, value)
            for fitem in target["Items"]:
                fitem["MarketplaceShippingStatus"] = "Complete"
        else:
            target = self._new_fulfillment(order, **fields)
            for item_id, quantity in to_ship.items():
                self._add_fulfillment_item(target, by_id[item_id], quantity, "Complete")
                left = quantity
                for fulfillment in open_fulfillments:
                    for fitem in fulfillment["Items"]:
                        if left and fitem["OrderItemID"] == item_id:
                            take = min(left, fitem["Quantity"])
                            fitem["Quantity"] -= take
                            left -= take
                    fulfillment["Items"] = [f for f in fulfillment["Items"] if f["Quantity"] > 0]
                    fulfillment["UpdatedDateUtc"] = now
            for fulfillment in open_fulfillments:
                if not fulfillment["Items"]:
                    order["Fulfillments"].remove(fulfillment)
                    self.fulfillments.remove(fulfillment["ID"])
            order["Fulfillments"].append(target)
            self.fulfillments.add(target)
        shipped = self.shipped_quantities(order)
        done = all(shipped.get(i["ID"], 0) >= i["Quantity"] for i in order["Items"])
        order["ShippingStatus"] = "Shipped" if done else "PartiallyShipped"
        order["ShippingDateUtc"] = now
        order["UpdatedDateUtc"] = now
        self._relink(order)
        self.orders.version += 1
        self.fulfillments.version += 1
        self.dirty_orders.add(order["ID"])

    # -- carriers, reset -----------------------------------------------------------------
    def set_carriers(self, carriers: Any, replace: bool = True) -> dict[str, list[str]]:
        """Set (or extend) the account's carrier -> classes list."""
        if isinstance(carriers, Mapping):
            pairs = list(carriers.items())
        elif isinstance(carriers, list):
            pairs = []
            for entry in carriers:
                if not isinstance(entry, Mapping) or "Carrier" not in entry:
                    raise AdminError("carrier entries look like {'Carrier': ..., 'Classes': [...]}")
                pairs.append((entry["Carrier"], entry.get("Classes", [])))
        else:
            raise AdminError("carriers must be an object or a list")
        for name, classes in pairs:
            if (
                not isinstance(name, str)
                or not name
                or not isinstance(classes, list)
                or not all(isinstance(x, str) and x for x in classes)
            ):
                raise AdminError(f"bad carrier entry {name!r}: classes must be non-empty strings")
        with self.lock:
            if replace:
                self.carriers = {}
            for name, classes in pairs:
                merged = self.carriers.setdefault(name, [])
                merged.extend(x for x in classes if x not in merged)
            self.meta_dirty = True
            return {k: list(v) for k, v in self.carriers.items()}

    def clear_data(self) -> None:
        """Remove every product and order (carriers, DCs and profiles stay)."""
        with self.lock:
            self.dirty_products |= set(self.products.rows)
            self.dirty_orders |= set(self.orders.rows)
            self.products.clear()
            self.orders.clear()
            self.fulfillments.clear()
            self._item_orders.clear()
            self._cache.clear()

    # -- admin views ---------------------------------------------------------------------
    @staticmethod
    def admin_product(row: Row) -> dict[str, Any]:
        """A product with every property, per-DC quantity detail, labels and attributes."""
        out = {name: json_value(row[name]) for name in PRODUCT_FIELDS}
        out["DCQuantities"] = [
            {
                "DistributionCenterID": dc_id,
                "AvailableQuantity": q["Available"],
                "OpenAllocatedQuantity": q["Open"],
                "PendingCheckoutQuantity": q["PendingCheckout"],
                "PendingPaymentQuantity": q["PendingPayment"],
                "PendingShipmentQuantity": q["PendingShipment"],
            }
            for dc_id, q in sorted(row["_dc"].items())
        ]
        out["Labels"] = [lab["Name"] for lab in row["Labels"]]
        out["Attributes"] = {a["Name"]: a["Value"] for a in row["Attributes"]}
        return out

    @staticmethod
    def admin_order(row: Row) -> dict[str, Any]:
        """An order with items, fulfillments (with items) and its export flags."""
        out = {name: json_value(row[name]) for name in ORDER_FIELDS}
        out["Items"] = [
            {name: json_value(item[name]) for name in ORDER_ITEM_FIELDS} for item in row["Items"]
        ]
        out["Fulfillments"] = [
            {
                **{name: json_value(f[name]) for name in FULFILLMENT_FIELDS},
                "Items": [
                    {name: json_value(fi[name]) for name in FULFILLMENT_ITEM_FIELDS}
                    for fi in f["Items"]
                ],
            }
            for f in row["Fulfillments"]
        ]
        out["exported_by"] = sorted(row["_exported_by"])
        return out

    def state(self, include: Iterable[str] | None = None) -> dict[str, Any]:
        """The whole state (or the parts named in `include`) as JSON-ready data."""
        parts = (
            set(include)
            if include is not None
            else {"products", "orders", "carriers", "distribution_centers", "profiles"}
        )
        with self.lock:
            out: dict[str, Any] = {
                "counts": {
                    "products": len(self.products.rows),
                    "orders": len(self.orders.rows),
                    "fulfillments": len(self.fulfillments.rows),
                }
            }
            if "products" in parts:
                out["products"] = [self.admin_product(r) for r in self.products.rows.values()]
            if "orders" in parts:
                out["orders"] = [self.admin_order(r) for r in self.orders.rows.values()]
            if "carriers" in parts:
                out["carriers"] = {k: list(v) for k, v in self.carriers.items()}
            if "distribution_centers" in parts:
                out["distribution_centers"] = [
                    {k: json_value(v) for k, v in r.items()} for r in self.dcs.rows.values()
                ]
            if "profiles" in parts:
                out["profiles"] = [dict(r) for r in self.profiles.rows.values()]
            return out

    # -- persistence hooks -----------------------------------------------------------------
    def meta_doc(self) -> dict[str, Any]:
        """Carriers and id counters (DCs and profiles are fixed defaults)."""
        with self.lock:
            return {"carriers": self.carriers, "next": dict(self._next)}

    def load_meta(self, doc: Mapping[str, Any]) -> None:
        """Restore what `meta_doc` saved."""
        with self.lock:
            if "carriers" in doc:
                self.carriers = {k: list(v) for k, v in doc["carriers"].items()}
            for key, value in doc.get("next", {}).items():
                self._next[key] = max(self._next.get(key, 0), int(value))

    def load_product(self, row: Row) -> None:
        """Insert a product restored from the state file."""
        with self.lock:
            row["_dc"] = {int(k): v for k, v in row["_dc"].items()}
            self.products.add(row)

    def load_order(self, row: Row) -> None:
        """Insert an order restored from the state file."""
        with self.lock:
            row["_exported_by"] = set(row.get("_exported_by") or ())
            self._relink(row)
            self.orders.add(row)
            for item in row["Items"]:
                self._item_orders[item["ID"]] = row["ID"]
            for fulfillment in row["Fulfillments"]:
                self.fulfillments.add(fulfillment)
