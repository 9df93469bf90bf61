"""Connection and settings schemas of the ChannelAdvisor channel (design §5, contract keys).

The connection holds the merchant's credentials (``--set KEY=VALUE``); the settings decide which
orders are imported and how quantity and price are written. Both report every error at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from hub_core.values import MAX_DAYS

#: ChannelAdvisor's ids are 32-bit integers.
MAX_INT32 = 2_147_483_647

DEFAULT_BASE_URL = "https://api.channeladvisor.com"
APPLICATION_ID_ENV = "HUB_CHANNELADVISOR_APPLICATION_ID"
SHARED_SECRET_ENV = "HUB_CHANNELADVISOR_SHARED_SECRET"

#: Connection keys whose values are never printed (the core reads ``Meta.secret_fields``).
SECRET_FIELDS: tuple[str, ...] = ("access_token", "refresh_token", "shared_secret")

#: Enum values of the Order entity (reference §4.1), in ChannelAdvisor's spelling.
CHECKOUT_STATUSES: tuple[str, ...] = (
    "NotVisited",
    "Completed",
    "Visited",
    "CompletedAndVisited",
    "Disabled",
    "CompletedOffline",
    "OnHold",
)
PAYMENT_STATUSES: tuple[str, ...] = (
    "NotYetSubmitted",
    "Cleared",
    "Submitted",
    "Failed",
    "Deposited",
)
SHIPPING_STATUSES: tuple[str, ...] = (
    "Unshipped",
    "Shipped",
    "PartiallyShipped",
    "PendingShipment",
    "Canceled",
    "ThirdPartyManaged",
)
#: UpdateQuantity's UpdateType values the hub may send (reference §3.3; ``Unconfirmed`` is
#: undocumented, so it is not offered).
QUANTITY_UPDATE_TYPES: tuple[str, ...] = (
    "Absolute",
    "Relative",
    "Available",
    "InStock",
    "UnShipped",
)
#: Product price fields that PATCH accepts (reference §3.4).
PRICE_FIELDS: tuple[str, ...] = (
    "BuyItNowPrice",
    "RetailPrice",
    "StartingPrice",
    "ReservePrice",
    "SecondChancePrice",
    "StorePrice",
    "MinPrice",
    "MaxPrice",
    "Cost",
    "Margin",
)

#: Setting name -> the Order property it filters and its allowed values.
STATUS_SETTINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "checkout_statuses": ("CheckoutStatus", CHECKOUT_STATUSES),
    "payment_statuses": ("PaymentStatus", PAYMENT_STATUSES),
    "shipping_statuses": ("ShippingStatus", SHIPPING_STATUSES),
}


def env_fallback_message(key: str, env: str) -> str:
    """The message for a credential given neither by ``--set`` nor by the environment."""
    return (
        f"{key} is missing: set it on the connection with --set {key}=... "
        f"or in the environment variable {env}."
    )


class _Choice(fields.String):
    """A string from a fixed list, accepted in any case and stored in ChannelAdvisor's case."""

    def __init__(self, choices: Sequence[str], what: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices = tuple(choices)
        self.what = what

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kw: Any):
        text = super()._deserialize(value, attr, data, **kw).strip()
        return _canonical(text, self.choices, self.what)


class CommaList(fields.String):
    """A comma-separated list of enum values, kept as a normalized comma string.

    ``"completed, Cleared"`` is stored as ``"Completed,Cleared"``; an unknown value is refused
    with the list of valid ones.
    """

    def __init__(self, choices: Sequence[str], what: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices = tuple(choices)
        self.what = what

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kw: Any):
        text = super()._deserialize(value, attr, data, **kw)
        items = [part.strip() for part in text.split(",") if part.strip()]
        if not items:
            raise ValidationError(
                f"give at least one {self.what} (comma-separated): {', '.join(self.choices)}."
            )
        canonical: list[str] = []
        errors: list[str] = []
        for item in items:
            try:
                name = _canonical(item, self.choices, self.what)
            except ValidationError as exc:
                errors.extend(exc.messages if isinstance(exc.messages, list) else [str(exc)])
                continue
            if name not in canonical:
                canonical.append(name)
        if errors:
            raise ValidationError(errors)
        return ",".join(canonical)


def _canonical(text: str, choices: Sequence[str], what: str) -> str:
    for choice in choices:
        if choice.lower() == text.lower():
            return choice
    raise ValidationError(f"{text!r} is not a {what}; valid values: {', '.join(choices)}.")


def split_list(value: str) -> list[str]:
    """The items of a comma-list setting."""
    return [part.strip() for part in value.split(",") if part.strip()]


class ConnectionSchema(Schema):
    """The values of a ChannelAdvisor connection (contract ``--set`` keys).

    ``application_id`` and ``shared_secret`` belong to the hub operator: when not set on the
    connection they are read from the environment when used, so the operator can rotate them
    without touching connections. ``access_token_expires_at`` is written by the hub (epoch
    seconds) so that a later command does not refresh a token that is still valid.
    """

    class Meta:
        secret_fields = SECRET_FIELDS
        #: Keys the hub maintains itself; not for ``--set`` and not shown.
        hidden_fields = ("access_token_expires_at",)

    access_token = fields.String(required=True, validate=validate.Length(min=1))
    refresh_token = fields.String(required=True, validate=validate.Length(min=1))
    profile_id = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_INT32))
    application_id = fields.String(load_default=None, allow_none=True)
    shared_secret = fields.String(load_default=None, allow_none=True)
    base_url = fields.URL(
        load_default=DEFAULT_BASE_URL, require_tld=False, schemes={"http", "https"}
    )
    access_token_expires_at = fields.Float(
        load_default=None, allow_none=True, metadata={"hidden": True}
    )

    @validates_schema(skip_on_field_errors=False)
    def _credentials_somewhere(self, data: dict[str, Any], **kwargs: Any) -> None:
        # A partial load (connections configure) only carries the keys being changed.
        if kwargs.get("partial"):
            return
        errors = {}
        for key, env in (
            ("application_id", APPLICATION_ID_ENV),
            ("shared_secret", SHARED_SECRET_ENV),
        ):
            if not data.get(key) and not os.environ.get(env):
                errors[key] = [env_fallback_message(key, env)]
        if errors:
            raise ValidationError(errors)

    @post_load
    def _normalize(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if data.get("base_url"):
            data["base_url"] = data["base_url"].rstrip("/")
        return data


class SettingsSchema(Schema):
    """Settings of a ChannelAdvisor connection (contract keys and defaults)."""

    order_days = fields.Integer(load_default=7, validate=validate.Range(min=1, max=MAX_DAYS))
    checkout_statuses = CommaList(
        CHECKOUT_STATUSES,
        "CheckoutStatus",
        load_default="Completed,CompletedAndVisited,CompletedOffline",
    )
    payment_statuses = CommaList(
        PAYMENT_STATUSES, "PaymentStatus", load_default="Cleared,Submitted,Deposited"
    )
    shipping_statuses = CommaList(
        SHIPPING_STATUSES,
        "ShippingStatus",
        load_default="Unshipped,PartiallyShipped,PendingShipment",
    )
    quantity_update_type = _Choice(
        QUANTITY_UPDATE_TYPES, "quantity update type", load_default="UnShipped"
    )
    distribution_center_id = fields.Integer(
        load_default=0, validate=validate.Range(min=0, max=MAX_INT32)
    )
    price_field = _Choice(PRICE_FIELDS, "ChannelAdvisor price field", load_default="BuyItNowPrice")
