"""Fixed values of the sandbox: demo credentials, enum members and the default account.

Everything here is sandbox-only data. The shared secret is NOT a real secret: it exists so
that `hub demo`, the tests and the benchmarks can authenticate against the local server.
"""

from __future__ import annotations

from typing import Any

DEMO_APPLICATION_ID = "hub-sandbox-demo-application"
# Sandbox-only value; printing it is fine (it opens nothing but the local sandbox).
DEMO_SHARED_SECRET = "sandbox-only-shared-secret"
DEMO_REFRESH_TOKEN = "sandbox-demo-refresh-token"
DEMO_PROFILE_ID = 12345678
# A second profile the demo refresh token also covers, so tests can prove that a client
# restricts every query with `ProfileID eq N`.
OTHER_PROFILE_ID = 87654321

# Enum members as CA serializes them (strings) [reference §2.4, §4.1].
CHECKOUT_STATUSES = (
    "NotVisited",
    "Completed",
    "Visited",
    "CompletedAndVisited",
    "Disabled",
    "CompletedOffline",
    "OnHold",
)
PAYMENT_STATUSES = ("NotYetSubmitted", "Cleared", "Submitted", "Failed", "Deposited")
SHIPPING_STATUSES = (
    "Unshipped",
    "Shipped",
    "PartiallyShipped",
    "PendingShipment",
    "Canceled",
    "ThirdPartyManaged",
)
DELIVERY_STATUSES = (
    "NoChange",
    "InTransit",
    "ReadyForPickup",
    "Complete",
    "Canceled",
    "ThirdPartyManaged",
    "Confirmed",
    "PickAndPack",
    "LabelCreated",
    "Held",
)
# DeliveryStatus values that make the Ship action move quantities to "shipped".
SHIPPING_DELIVERY_STATUSES = ("Complete", "InTransit", "ReadyForPickup")
FULFILLMENT_TYPES = ("Ship", "Pickup", "ShipToStore", "Courier")
MARKETPLACE_SHIPPING_STATUSES = (
    "Pending",
    "InProgress",
    "Complete",
    "CompletedWithoutNotification",
    "Failed",
)
DC_TYPE_ROLLUPS = ("SellerManaged", "ExternallyManaged", "Mixed")
PRODUCT_TYPES = ("Item", "Child", "Bundle", "Parent")
DC_TYPES = ("Warehouse", "ExternallyManaged", "DropShip", "RetailStore")
UPDATE_TYPES = ("Absolute", "Relative", "Available", "InStock", "UnShipped", "Unconfirmed")
# `Unconfirmed` exists in $metadata but no source defines it (reference §3.3, UNCERTAIN):
# the sandbox refuses it rather than inventing semantics.
SUPPORTED_UPDATE_TYPES = ("Absolute", "Relative", "Available", "InStock", "UnShipped")

FAULT_KINDS = (
    "500",
    "503",
    "429",
    "reset",
    "timeout",
    "401",
    "lost_response",
    "400",
    "404",
    "html",
    "redirect",
    "invalid_json",
    "wrong_types",
    "foreign_next_link",
)

AUTH_DENIED_MESSAGE = "Authorization has been denied for this request."

DEFAULT_PROFILES: list[dict[str, Any]] = [
    {
        "ID": DEMO_PROFILE_ID,
        "AccountName": "Hub Demo Store",
        "CompanyName": "Hub Demo Inc.",
        "CurrencyCode": "USD",
        "TimeZoneRegion": "Eastern Standard Time",
        "DefaultDistributionCenterID": 0,
    },
    {
        "ID": OTHER_PROFILE_ID,
        "AccountName": "Hub Demo Outlet",
        "CompanyName": "Hub Demo Inc.",
        "CurrencyCode": "USD",
        "TimeZoneRegion": "Eastern Standard Time",
        "DefaultDistributionCenterID": 0,
    },
]

DEFAULT_DISTRIBUTION_CENTERS: list[dict[str, Any]] = [
    {
        "ID": 0,
        "Name": "Main Warehouse",
        "Code": "MAIN",
        "Type": "Warehouse",
        "IsExternallyManaged": False,
        "IsDeleted": False,
        "DeletedDateUtc": None,
        "ShipLocation": True,
        "PickupLocation": False,
        "ContactName": "Receiving",
        "Address1": "100 Commerce Way",
        "City": "Raleigh",
        "StateOrProvince": "NC",
        "PostalCode": "27601",
        "Country": "US",
    },
    {
        "ID": 1,
        "Name": "East Coast Warehouse",
        "Code": "EAST",
        "Type": "Warehouse",
        "IsExternallyManaged": False,
        "IsDeleted": False,
        "DeletedDateUtc": None,
        "ShipLocation": True,
        "PickupLocation": True,
        "ContactName": "Dock 4",
        "Address1": "7 Harbor Rd",
        "City": "Newark",
        "StateOrProvince": "NJ",
        "PostalCode": "07102",
        "Country": "US",
    },
    {
        "ID": 2,
        "Name": "Amazon FBA US",
        "Code": "FBA-US",
        "Type": "ExternallyManaged",
        "IsExternallyManaged": True,
        "IsDeleted": False,
        "DeletedDateUtc": None,
        "ShipLocation": True,
        "PickupLocation": False,
        "ContactName": None,
        "Address1": None,
        "City": None,
        "StateOrProvince": None,
        "PostalCode": None,
        "Country": "US",
    },
    {
        "ID": 3,
        "Name": "Old Warehouse",
        "Code": "OLD",
        "Type": "Warehouse",
        "IsExternallyManaged": False,
        "IsDeleted": True,
        "DeletedDateUtc": "2023-01-15T12:00:00Z",
        "ShipLocation": False,
        "PickupLocation": False,
        "ContactName": None,
        "Address1": "1 Closed St",
        "City": "Durham",
        "StateOrProvince": "NC",
        "PostalCode": "27701",
        "Country": "US",
    },
]

DEFAULT_CARRIERS: dict[str, list[str]] = {
    "UPS": ["Ground", "Next Day Air", "2nd Day Air", "3 Day Select"],
    "FedEx": ["Ground", "Home Delivery", "2Day", "Priority Overnight"],
    "USPS": ["Priority Mail", "First Class", "Ground Advantage", "Media Mail"],
    "DHL": ["Express Worldwide"],
}

# Marketplaces used by generated orders: (SiteID, SiteName) [reference §4.1].
SITES: list[tuple[int, str]] = [
    (640, "Amazon Seller Central - US"),
    (1, "eBay"),
    (1118, "Walmart Marketplace"),
    (587, "Checkout Direct"),
]
