"""Entity types served by the sandbox: a subset of CA's `$metadata` (reference §3.1, §4.1-4.3).

Rows are plain dicts keyed by the PascalCase property names, with `datetime` values for
date properties. Keys starting with `_` are internal (per-DC quantity detail, export flags,
back-references) and never leave the sandbox through the API. Navigation properties are
reached through getters so that the `$filter` compiler and the serializer share them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import constants as c

NAMESPACE = "ChannelAdvisor.RestApi.V1.Models"


@dataclass(frozen=True)
class FieldType:
    """The type of a scalar property: a kind the sandbox computes with, and its Edm name."""

    kind: str  # int | decimal | string | bool | datetime | enum
    edm: str
    enum_values: tuple[str, ...] = ()


INT32 = FieldType("int", "Edm.Int32")
INT64 = FieldType("int", "Edm.Int64")
DECIMAL = FieldType("decimal", "Edm.Decimal")
DOUBLE = FieldType("decimal", "Edm.Double")
STRING = FieldType("string", "Edm.String")
BOOL = FieldType("bool", "Edm.Boolean")
DATETIME = FieldType("datetime", "Edm.DateTimeOffset")


def enum_type(name: str, values: tuple[str, ...]) -> FieldType:
    """An enum property type (serialized and filtered as its member names)."""
    return FieldType("enum", f"{NAMESPACE}.{name}", values)


@dataclass(frozen=True)
class Navigation:
    """A collection-valued navigation property: its element type and how to read it."""

    target: str
    getter: Callable[[dict[str, Any]], list[dict[str, Any]]]


@dataclass(frozen=True)
class EntityType:
    """An entity type: its scalar properties (in serialization order) and navigations."""

    name: str
    fields: dict[str, FieldType]
    navigation: dict[str, Navigation] = field(default_factory=dict)

    @property
    def qualified_name(self) -> str:
        """The name CA's error messages use, e.g. `ChannelAdvisor.RestApi.V1.Models.Product`."""
        return f"{NAMESPACE}.{self.name}"


def _fields(spec: str, ftype: FieldType) -> dict[str, FieldType]:
    return {name: ftype for name in spec.split()}


PRICE_FIELDS = [
    "Cost",
    "Margin",
    "RetailPrice",
    "StartingPrice",
    "ReservePrice",
    "BuyItNowPrice",
    "StorePrice",
    "SecondChancePrice",
    "MinPrice",
    "MaxPrice",
    "EstimatedShippingCost",
]
QUANTITY_FIELDS = [
    "TotalAvailableQuantity",
    "TotalQuantity",
    "OpenAllocatedQuantity",
    "PendingCheckoutQuantity",
    "PendingPaymentQuantity",
    "PendingShipmentQuantity",
]
# Per-DC quantity buckets kept in `row["_dc"][dc_id]`; the names of their product totals.
DC_BUCKETS = {
    "Available": "TotalAvailableQuantity",
    "Open": "OpenAllocatedQuantity",
    "PendingCheckout": "PendingCheckoutQuantity",
    "PendingPayment": "PendingPaymentQuantity",
    "PendingShipment": "PendingShipmentQuantity",
}

PRODUCT_FIELDS: dict[str, FieldType] = {
    "ID": INT32,
    "ProfileID": INT32,
    "Sku": STRING,
    "CreateDateUtc": DATETIME,
    "UpdateDateUtc": DATETIME,
    "QuantityUpdateDateUtc": DATETIME,
    "IsAvailableInStore": BOOL,
    "IsBlocked": BOOL,
    "IsExternalQuantityBlocked": BOOL,
    "InfiniteQuantity": BOOL,
    "BlockComment": STRING,
    **_fields(
        "Title Subtitle ShortDescription Description Brand Manufacturer MPN UPC EAN ISBN "
        "ASIN Condition Classification WarehouseLocation HarmonizedCode TaxProductCode "
        "Warranty SupplierName SupplierCode",
        STRING,
    ),
    "Height": DECIMAL,
    "Length": DECIMAL,
    "Width": DECIMAL,
    "Weight": DOUBLE,
    **_fields(" ".join(PRICE_FIELDS), DECIMAL),
    **_fields(" ".join(QUANTITY_FIELDS), INT32),
    "IsParent": BOOL,
    "IsInRelationship": BOOL,
    "ParentProductID": INT32,
    "ParentSku": STRING,
    "RelationshipName": STRING,
    "ProductType": enum_type("ProductType", c.PRODUCT_TYPES),
}

# Product properties a PATCH/PUT may change. Identity, dates and computed quantities may not.
PRODUCT_WRITABLE = frozenset(
    name
    for name in PRODUCT_FIELDS
    if name
    not in {
        "ID",
        "ProfileID",
        "CreateDateUtc",
        "UpdateDateUtc",
        "QuantityUpdateDateUtc",
        *QUANTITY_FIELDS,
    }
)


def product_dc_quantities(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The `DCQuantities` navigation of a product (one entry per DC that holds a record)."""
    return [
        {"ProductID": row["ID"], "DistributionCenterID": dc_id, "AvailableQuantity": q["Available"]}
        for dc_id, q in sorted(row["_dc"].items())
    ]


def _list_getter(key: str) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    def get(row: dict[str, Any]) -> list[dict[str, Any]]:
        return row.get(key) or []

    return get


ORDER_FIELDS: dict[str, FieldType] = {
    "ID": INT64,
    "ProfileID": INT32,
    "SiteID": INT32,
    "SiteName": STRING,
    "SiteAccountID": INT32,
    "SiteOrderID": STRING,
    "SecondarySiteOrderID": STRING,
    "SellerOrderID": STRING,
    "CheckoutSourceID": STRING,
    "Currency": STRING,
    **_fields(
        "CreatedDateUtc ImportDateUtc UpdatedDateUtc CheckoutDateUtc PaymentDateUtc "
        "ShippingDateUtc EstimatedShipDateUtc DeliverByDateUtc",
        DATETIME,
    ),
    "CheckoutStatus": enum_type("CheckoutStatus", c.CHECKOUT_STATUSES),
    "PaymentStatus": enum_type("PaymentStatus", c.PAYMENT_STATUSES),
    "ShippingStatus": enum_type("ShippingStatus", c.SHIPPING_STATUSES),
    "DistributionCenterTypeRollup": enum_type("DistributionCenterTypeRollup", c.DC_TYPE_ROLLUPS),
    "RequestedShippingCarrier": STRING,
    "RequestedShippingClass": STRING,
    **_fields(
        "TotalPrice TotalTaxPrice TotalShippingPrice TotalShippingTaxPrice TotalInsurancePrice "
        "TotalGiftOptionPrice TotalGiftOptionTaxPrice AdditionalCostOrDiscount PromotionAmount",
        DECIMAL,
    ),
    "PromotionCode": STRING,
    "BuyerUserId": STRING,
    "BuyerEmailAddress": STRING,
    "BuyerEmailOptIn": BOOL,
    **_fields(
        " ".join(
            f"{prefix}{suffix}"
            for prefix in ("Shipping", "Billing")
            for suffix in [
                "Title",
                "FirstName",
                "LastName",
                "Suffix",
                "CompanyName",
                "CompanyJobTitle",
                "DaytimePhone",
                "EveningPhone",
                "AddressLine1",
                "AddressLine2",
                "City",
                "StateOrProvince",
                "StateOrProvinceName",
                "PostalCode",
                "Country",
            ]
        ),
        STRING,
    ),
    **_fields(
        "PaymentMethod PaymentTransactionID PaymentCreditCardLast4 PublicNotes PrivateNotes "
        "SpecialInstructions",
        STRING,
    ),
}

ORDER_ITEM_FIELDS: dict[str, FieldType] = {
    "ID": INT32,
    "ProfileID": INT32,
    "OrderID": INT64,
    "ProductID": INT32,
    "SiteOrderItemID": STRING,
    "SellerOrderItemID": STRING,
    "SiteListingID": STRING,
    "Sku": STRING,
    "Title": STRING,
    "Quantity": INT32,
    **_fields(
        "UnitPrice TaxPrice ShippingPrice ShippingTaxPrice RecyclingFee "
        "UnitEstimatedShippingCost GiftPrice GiftTaxPrice",
        DECIMAL,
    ),
    "GiftMessage": STRING,
    "GiftNotes": STRING,
    "IsBundle": BOOL,
    "ItemURL": STRING,
}

FULFILLMENT_FIELDS: dict[str, FieldType] = {
    "ID": INT32,
    "ProfileID": INT32,
    "OrderID": INT64,
    "CreatedDateUtc": DATETIME,
    "UpdatedDateUtc": DATETIME,
    "Type": enum_type("FulfillmentType", c.FULFILLMENT_TYPES),
    "DeliveryStatus": enum_type("FulfillmentDeliveryStatus", c.DELIVERY_STATUSES),
    "TrackingNumber": STRING,
    "TrackingUrl": STRING,
    "ReturnTrackingNumber": STRING,
    "ShippingCarrier": STRING,
    "ShippingClass": STRING,
    "DistributionCenterID": INT32,
    "ExternalFulfillmentCenterCode": STRING,
    "ShippingCost": DECIMAL,
    "InsuranceCost": DECIMAL,
    "TaxCost": DECIMAL,
    "ShippedDateUtc": DATETIME,
    "SellerFulfillmentID": STRING,
}

FULFILLMENT_ITEM_FIELDS: dict[str, FieldType] = {
    "ID": INT32,
    "FulfillmentID": INT32,
    "OrderID": INT64,
    "OrderItemID": INT32,
    "ProductID": INT32,
    "Sku": STRING,
    "Quantity": INT32,
    "SellerFulfillmentItemID": STRING,
    "MarketplaceShippingStatus": enum_type(
        "MarketplaceShippingStatus", c.MARKETPLACE_SHIPPING_STATUSES
    ),
}

DC_FIELDS: dict[str, FieldType] = {
    "ID": INT32,
    "Name": STRING,
    "Code": STRING,
    "ContactName": STRING,
    "Type": enum_type("DistributionCenterType", c.DC_TYPES),
    "IsExternallyManaged": BOOL,
    "IsDeleted": BOOL,
    "DeletedDateUtc": DATETIME,
    "ShipLocation": BOOL,
    "PickupLocation": BOOL,
    **_fields("Address1 City StateOrProvince PostalCode Country", STRING),
}

PROFILE_FIELDS: dict[str, FieldType] = {
    "ID": INT32,
    "AccountName": STRING,
    "CompanyName": STRING,
    "CurrencyCode": STRING,
    "TimeZoneRegion": STRING,
    "DefaultDistributionCenterID": INT32,
}

ENTITY_TYPES: dict[str, EntityType] = {
    "Product": EntityType(
        "Product",
        PRODUCT_FIELDS,
        {
            "DCQuantities": Navigation("DCQuantity", product_dc_quantities),
            "Labels": Navigation("ProductLabel", _list_getter("Labels")),
            "Attributes": Navigation("AttributeValue", _list_getter("Attributes")),
            "Images": Navigation("Image", _list_getter("Images")),
        },
    ),
    "DCQuantity": EntityType(
        "DCQuantity",
        {"ProductID": INT32, "DistributionCenterID": INT32, "AvailableQuantity": INT32},
    ),
    "ProductLabel": EntityType("ProductLabel", {"ProductID": INT32, "Name": STRING}),
    "AttributeValue": EntityType(
        "AttributeValue", {"ProductID": INT32, "Name": STRING, "Value": STRING}
    ),
    "Image": EntityType("Image", {"ProductID": INT32, "PlacementName": STRING, "Url": STRING}),
    "Order": EntityType(
        "Order",
        ORDER_FIELDS,
        {
            "Items": Navigation("OrderItem", _list_getter("Items")),
            "Fulfillments": Navigation("Fulfillment", _list_getter("Fulfillments")),
            "Adjustments": Navigation("OrderAdjustment", _list_getter("Adjustments")),
            "CustomFields": Navigation("OrderCustomField", _list_getter("CustomFields")),
        },
    ),
    "OrderItem": EntityType(
        "OrderItem",
        ORDER_ITEM_FIELDS,
        {
            "FulfillmentItems": Navigation("FulfillmentItem", _list_getter("_fulfillment_items")),
            "Promotions": Navigation("OrderItemPromotion", _list_getter("Promotions")),
            "BundleComponents": Navigation(
                "OrderItemBundleComponent", _list_getter("BundleComponents")
            ),
            "Adjustments": Navigation("OrderItemAdjustment", _list_getter("Adjustments")),
        },
    ),
    "OrderAdjustment": EntityType("OrderAdjustment", {"ID": INT32, "OrderID": INT64}),
    "OrderCustomField": EntityType(
        "OrderCustomField", {"ID": INT32, "FieldID": INT32, "Value": STRING}
    ),
    "OrderItemPromotion": EntityType(
        "OrderItemPromotion", {"ID": INT32, "Code": STRING, "Amount": DECIMAL}
    ),
    "OrderItemBundleComponent": EntityType(
        "OrderItemBundleComponent", {"ID": INT32, "Sku": STRING, "Quantity": INT32}
    ),
    "OrderItemAdjustment": EntityType("OrderItemAdjustment", {"ID": INT32}),
    "Fulfillment": EntityType(
        "Fulfillment",
        FULFILLMENT_FIELDS,
        {"Items": Navigation("FulfillmentItem", _list_getter("Items"))},
    ),
    "FulfillmentItem": EntityType("FulfillmentItem", FULFILLMENT_ITEM_FIELDS),
    "DistributionCenter": EntityType("DistributionCenter", DC_FIELDS),
    "Profile": EntityType("Profile", PROFILE_FIELDS),
}

# Entity sets served under /v1 and the type of their elements.
ENTITY_SETS: dict[str, str] = {
    "Products": "Product",
    "Orders": "Order",
    "Fulfillments": "Fulfillment",
    "DistributionCenters": "DistributionCenter",
    "Profiles": "Profile",
}


def utcnow() -> dt.datetime:
    """Now in UTC, truncated to milliseconds (the precision the API shows)."""
    return truncate_ms(dt.datetime.now(dt.UTC))


def truncate_ms(value: dt.datetime) -> dt.datetime:
    """Drop sub-millisecond digits, so a date read back and used in a filter matches itself."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def format_datetime(value: dt.datetime) -> str:
    """ISO-8601 UTC with `Z` and a variable number of fractional digits (e.g. `...:57.92Z`)."""
    value = value.astimezone(dt.UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += ("." + f"{value.microsecond:06d}"[:3]).rstrip("0").rstrip(".")
    return text + "Z"


def parse_datetime(value: Any) -> dt.datetime:
    """Parse an ISO date or date-time (naive values are taken as UTC); raise ValueError."""
    if isinstance(value, dt.datetime):
        result = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        result = dt.datetime.fromisoformat(text)
    else:
        raise ValueError(f"not a date: {value!r}")
    if result.tzinfo is None:
        result = result.replace(tzinfo=dt.UTC)
    return truncate_ms(result.astimezone(dt.UTC))


def json_value(value: Any) -> Any:
    """A stored value as it appears in JSON (dates formatted, everything else as is)."""
    if isinstance(value, dt.datetime):
        return format_datetime(value)
    return value


def coerce_field(etype: EntityType, name: str, value: Any) -> Any:
    """Check and convert a JSON value for a scalar property; raise ValueError when wrong."""
    ftype = etype.fields[name]
    if value is None:
        return None
    kind = ftype.kind
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"'{name}' must be an integer")
        return value
    if kind == "decimal":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"'{name}' must be a number")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"'{name}' must be true or false")
        return value
    if kind == "datetime":
        try:
            return parse_datetime(value)
        except ValueError:
            raise ValueError(f"'{name}' must be an ISO-8601 date") from None
    if not isinstance(value, str):
        raise ValueError(f"'{name}' must be a string")
    if kind == "enum":
        for member in ftype.enum_values:
            if member.lower() == value.lower():
                return member
        raise ValueError(f"'{value}' is not a valid value of {ftype.edm}")
    return value
