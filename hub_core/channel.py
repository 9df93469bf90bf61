"""What the core and a channel plugin hand each other.

Plain dataclasses, no database objects: sessions and transactions belong to the service layer,
never to a plugin (design §4). A plugin receives a :class:`ChannelConnection` and the records
to work on, and answers with outcomes; the core stores them.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from hub_core.redaction import Redactor

if TYPE_CHECKING:
    from marshmallow import Schema

#: The operations a channel may support; the keys of ``capabilities`` (contract).
OPERATIONS: tuple[str, ...] = (
    "link_listings",
    "sync_listings",
    "publish_listings",
    "get_orders",
    "sync_orders",
)
#: What a channel may require before an operation; the keys of ``requirements``.
REQUIREMENTS: tuple[str, ...] = ("shipping_mappings",)

SUPPORTED = "supported"
NOT_SUPPORTED = "not_supported"
REQUIRED = "required"
OPTIONAL = "optional"


@dataclasses.dataclass(frozen=True)
class ChannelDescription:
    """Everything a plugin declares about its channel, in one value (hook ``hub_channel``).

    ``supports`` names the operations of :data:`OPERATIONS` the channel carries out (the others
    are ``not_supported``); ``requires`` names the :data:`REQUIREMENTS` it needs before its
    operations run (the others are ``optional``). ``reauth_advice`` is the ONE command that
    reconnects a connection whose credentials the channel refused for good, with ``{name}`` for
    the connection's name; without it the core gives a channel-neutral command.
    ``secret_env`` names environment variables whose values are secrets of every connection
    (an operator's credential that a connection may fall back to): the core masks them like
    the connection schema's secret fields.
    """

    name: str
    connection_schema: type[Schema]
    settings_schema: type[Schema]
    supports: Collection[str] = OPERATIONS
    requires: Collection[str] = ()
    title: str = ""
    reauth_advice: str = ""
    secret_env: Collection[str] = ()


class ListingStatus(enum.StrEnum):
    """Where a catalog SKU stands on a channel (contract values)."""

    UNLINKED = "unlinked"
    LINKED = "linked"
    NOT_FOUND = "not_found"
    AMBIGUOUS = "ambiguous"
    BROKEN = "broken"
    #: The channel's product cannot take the hub's values (a parent or bundle product).
    UNSUPPORTED = "unsupported"
    #: Kept off this connection by the merchant (never looked up, linked or synced there).
    EXCLUDED = "excluded"


class Outcome(enum.StrEnum):
    """What happened to one record of an operation (contract values)."""

    OK = "ok"
    SKIPPED = "skipped"
    FAILED = "failed"


class Progress(Protocol):
    """Lets a plugin report progress; the core draws it on stderr."""

    def set_total(self, total: int) -> None:
        """Announce how many units of work there are."""

    def advance(self, count: int = 1) -> None:
        """Mark ``count`` more units as done."""


_R = TypeVar("_R")


class NullProgress:
    """A :class:`Progress` that draws nothing."""

    def set_total(self, total: int) -> None:
        pass

    def advance(self, count: int = 1) -> None:
        pass


@dataclasses.dataclass
class ChannelConnection:
    """One merchant connection, as a plugin sees it.

    ``config`` holds the validated connection values (credentials included) and ``settings`` the
    validated settings with defaults applied (by the channel's settings schema: the one place
    that applies them). A plugin stores refreshed credentials with :meth:`save_config` and
    reports a refused refresh token with :meth:`mark_needs_reauth`; the core commits both at
    once, whatever the operation does next. :attr:`redactor` knows the connection's secrets; a
    plugin that learns another one while it works (a refreshed token) adds it there, and the
    core masks it in everything it prints or stores.

    The core hands the SAME object to every hook call of one run: a plugin keeps what it
    builds once per run (an HTTP client) with :meth:`keep`, and the core closes it when the
    run ends (:meth:`close_resources`).
    """

    name: str
    channel: str
    config: Mapping[str, Any]
    settings: Mapping[str, Any]
    health: str = "unknown"
    secret_keys: tuple[str, ...] = ()
    secret_env: tuple[str, ...] = ()
    progress: Progress = dataclasses.field(default_factory=NullProgress)
    on_save_config: Callable[[dict[str, Any]], None] | None = None
    on_health: Callable[[str, str], None] | None = None
    resources: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    #: The one object that masks this connection's secrets (see :mod:`hub_core.redaction`).
    redactor: Redactor = dataclasses.field(
        default_factory=Redactor, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Followed, not copied: the values change as tokens are refreshed.
        self.redactor.follow(lambda: self.secrets, key="connection")

    def keep(self, key: str, build: Callable[[], _R]) -> _R:
        """The plugin's per-run resource ``key`` (its HTTP client, say), built by ``build`` on
        the run's first use and the same object for every later hook call of the run.

        The core closes it (its ``close()``, if it has one) when the run ends; a plugin
        never closes a kept resource itself.
        """
        if key not in self.resources:
            self.resources[key] = build()
        return self.resources[key]

    def close_resources(self) -> None:
        """Close what the plugin kept for this run, newest first (the core calls this when the
        run ends); every one is closed even when one fails, then the first failure is raised."""
        kept, self.resources = list(self.resources.values()), {}
        failure: BaseException | None = None
        for resource in reversed(kept):
            close = getattr(resource, "close", None)
            try:
                if callable(close):
                    close()
            except Exception as exc:  # the others still get closed
                failure = failure or exc
        if failure is not None:
            raise failure

    def save_config(self, **updates: Any) -> None:
        """Persist new connection values (for example a refreshed access token)."""
        self.config = {**self.config, **updates}
        if self.on_save_config:
            self.on_save_config(dict(updates))

    def set_health(self, health: str, message: str = "") -> None:
        """Record the connection's health (``ok``, ``needs_reauth``, ``failing``)."""
        self.health = health
        if self.on_health:
            self.on_health(health, message)

    def mark_needs_reauth(self, message: str) -> None:
        """The channel refused the refresh token: later operations stop until reconnected.

        ``message`` says what happened, not what to run: the core adds the channel's
        ``reauth_advice`` (one command) whenever it tells the merchant.
        """
        self.set_health("needs_reauth", message)

    @property
    def secrets(self) -> list[str]:
        """The secret values of this connection: its secret fields', then the values of its
        channel's secret environment variables."""
        values = [str(self.config[k]) for k in self.secret_keys if self.config.get(k)]
        return values + [os.environ[e] for e in self.secret_env if os.environ.get(e)]


@dataclasses.dataclass(frozen=True)
class CatalogItem:
    """A catalog product as a channel needs it."""

    sku: str
    title: str
    quantity: int
    price: Decimal
    upc: str | None = None
    msrp: Decimal | None = None
    cost: Decimal | None = None


@dataclasses.dataclass
class LinkResult:
    """The answer of link (or publish) for one SKU."""

    sku: str
    status: ListingStatus
    channel_product_id: str | None = None
    message: str = ""


@dataclasses.dataclass(frozen=True)
class ListingUpdate:
    """Changed values to push for one linked listing.

    ``changes`` maps a field (``quantity``, ``price``) to its new value; only changed fields are
    present. ``item`` is the whole catalog product, for channels that need more context.
    """

    sku: str
    channel_product_id: str
    changes: Mapping[str, Any]
    item: CatalogItem


@dataclasses.dataclass
class ListingOutcome:
    """The answer of sync listings for one SKU.

    ``status`` is set when the listing's status must change (``broken`` for a product deleted on
    the channel); ``channel_product_id`` when the channel reports a new id for the SKU.
    """

    sku: str
    outcome: Outcome
    message: str = ""
    status: ListingStatus | None = None
    channel_product_id: str | None = None


@dataclasses.dataclass(frozen=True)
class ChannelOrderLine:
    """One line of a channel order."""

    channel_line_id: str
    sku: str
    quantity: int
    unit_price: Decimal | None = None
    title: str | None = None


@dataclasses.dataclass
class ChannelOrder:
    """An order as the channel reports it, ready to store.

    ``shipping_text`` is what a shipping mapping must equal exactly. ``cancelled`` marks an order
    the channel has cancelled. ``raw`` is the channel's payload, kept as received.
    """

    channel_order_id: str
    shipping_text: str
    lines: list[ChannelOrderLine]
    created_at: datetime | None = None
    marketplace: str | None = None
    marketplace_order_id: str | None = None
    currency: str | None = None
    totals: dict[str, Any] = dataclasses.field(default_factory=dict)
    addresses: dict[str, Any] = dataclasses.field(default_factory=dict)
    cancelled: bool = False
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ShipmentLine:
    """A quantity of one order line in a shipment."""

    channel_line_id: str
    sku: str
    quantity: int


@dataclasses.dataclass(frozen=True)
class ShipmentToSend:
    """A shipment recorded in the hub, to send to the channel once.

    ``shipment_id`` is the hub's own id (ChannelAdvisor: ``SellerFulfillmentID``), stable across
    retries. ``complete`` is true when it ships everything still unshipped on the order, in which
    case a channel may omit the lines.
    """

    shipment_id: str
    channel_order_id: str
    tracking: str
    carrier: str
    shipping_class: str
    shipped_at: datetime
    lines: tuple[ShipmentLine, ...]
    complete: bool


#: The order status a channel reports for an order it cancelled (``RecordOutcome.order_status``).
CANCELLED = "cancelled"


@dataclasses.dataclass
class RecordOutcome:
    """The answer of an operation for one record (an order id, a shipment id).

    ``order_status`` is a hint the core applies to the record's order: sync orders answers
    ``"cancelled"`` (with ``Outcome.SKIPPED``) for a shipment whose order the channel has
    cancelled since it was imported; the core then marks the order ``cancelled`` and cancels
    its shipments not yet sent.
    """

    ref: str
    outcome: Outcome
    message: str = ""
    order_status: OrderStatus | None = None


@dataclasses.dataclass
class ConnectionCheck:
    """One check of ``test connection``: what was checked, whether it passed, and why not."""

    name: str
    ok: bool
    message: str = ""


@dataclasses.dataclass
class OrderLookup:
    """What the channel says about one order, for ``orders explain``.

    ``order`` is None when the channel does not know it. ``reasons`` says why the channel's own
    filters (statuses, age, export flag) would leave the order out of get orders; an empty list
    means the channel would return it. ``notes`` says what else a merchant should know that
    does not keep the order out (lines the marketplace ships, bundle lines).
    """

    order: ChannelOrder | None
    reasons: list[str] = dataclasses.field(default_factory=list)
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)


OrderStatus = Literal["imported", "held", "partially_shipped", "shipped", "cancelled"]
