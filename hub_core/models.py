"""The hub's state: typed SQLAlchemy 2.x models (design §4).

Schema changes go through Alembic migrations in ``hub_core/migrations``; the CLI brings a
database up to date on first use.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(14, 4)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored as UTC and always read back timezone-aware (SQLite forgets zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints stably."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, Decimal: Money}


class Connection(Base):
    """A merchant's connection to one channel. ``config`` holds credentials (secrets)."""

    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(100))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    health: Mapped[str] = mapped_column(String(40), default="unknown")
    health_message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Counter(Base):
    """Named monotonic counters. ``catalog`` numbers catalog changes (the change marker).

    Bumping the row takes a write lock until commit, so change numbers become visible in order
    and a sync cursor never skips a change committed late.
    """

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class CatalogProduct(Base):
    """A product of the merchant's catalog; ``change_seq`` marks its last change."""

    __tablename__ = "catalog_products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(Text)
    quantity: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal]
    upc: Mapped[str | None] = mapped_column(String(40))
    msrp: Mapped[Decimal | None]
    cost: Mapped[Decimal | None]
    change_seq: Mapped[int] = mapped_column(BigInteger, index=True, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Listing(Base):
    """A catalog SKU on one connection: its channel product and what was last pushed.

    ``pending`` is set when the listing must be pushed whatever the catalog's change marker
    says (just linked, or the last push failed).
    """

    __tablename__ = "listings"
    __table_args__ = (
        UniqueConstraint("connection_id", "sku"),
        Index("ix_listings_pending", "connection_id", "pending"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(
        ForeignKey("catalog_products.id", ondelete="CASCADE"), index=True
    )
    sku: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="unlinked")
    channel_product_id: Mapped[str | None] = mapped_column(String(100))
    message: Mapped[str] = mapped_column(Text, default="")
    pushed_quantity: Mapped[int | None] = mapped_column(Integer)
    pushed_price: Mapped[Decimal | None]
    pending: Mapped[bool] = mapped_column(Boolean, default=False)
    linked_at: Mapped[datetime | None]
    synced_at: Mapped[datetime | None]

    product: Mapped[CatalogProduct] = relationship(lazy="joined")


class ShippingMapping(Base):
    """Maps a channel's shipping text (matched exactly) to the hub's shipping policy."""

    __tablename__ = "shipping_mappings"
    __table_args__ = (UniqueConstraint("connection_id", "channel_text"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    channel_text: Mapped[str] = mapped_column(String(300))
    policy: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Order(Base):
    """A channel order, stored exactly once per connection."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("connection_id", "channel_order_id"),
        Index("ix_orders_unacknowledged", "connection_id", "acknowledged_at"),
        Index("ix_orders_marketplace", "connection_id", "marketplace_order_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    channel_order_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(30), index=True)
    hold_reason: Mapped[str | None] = mapped_column(Text)
    shipping_text: Mapped[str] = mapped_column(String(300), default="")
    shipping_policy: Mapped[str | None] = mapped_column(String(200))
    marketplace: Mapped[str | None] = mapped_column(String(200))
    marketplace_order_id: Mapped[str | None] = mapped_column(String(200))
    currency: Mapped[str | None] = mapped_column(String(10))
    totals: Mapped[dict[str, Any]] = mapped_column(default=dict)
    addresses: Mapped[dict[str, Any]] = mapped_column(default=dict)
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)
    channel_created_at: Mapped[datetime | None]
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[datetime | None]
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))

    connection: Mapped[Connection] = relationship()
    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderLine.id"
    )
    shipments: Mapped[list[Shipment]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="Shipment.id"
    )


class OrderLine(Base):
    """One line of an order."""

    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    channel_line_id: Mapped[str] = mapped_column(String(100))
    sku: Mapped[str] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal | None]

    order: Mapped[Order] = relationship(back_populates="lines")


class Shipment(Base):
    """A shipment of (part of) an order, sent to the channel once.

    ``sync_status``: ``pending`` (not sent yet), ``sent``, ``failed`` (kept with its error and
    sent again on the next sync).
    """

    __tablename__ = "shipments"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    tracking: Mapped[str] = mapped_column(String(200))
    carrier: Mapped[str] = mapped_column(String(100))
    shipping_class: Mapped[str] = mapped_column(String(100))
    shipped_at: Mapped[datetime]
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    sync_status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    sync_error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    order: Mapped[Order] = relationship(back_populates="shipments")
    lines: Mapped[list[ShipmentLine]] = relationship(
        back_populates="shipment", cascade="all, delete-orphan", order_by="ShipmentLine.id"
    )


class ShipmentLine(Base):
    """A quantity of one order line in a shipment."""

    __tablename__ = "shipment_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(
        ForeignKey("shipments.id", ondelete="CASCADE"), index=True
    )
    order_line_id: Mapped[int] = mapped_column(
        ForeignKey("order_lines.id", ondelete="CASCADE"), index=True
    )
    quantity: Mapped[int] = mapped_column(Integer)

    shipment: Mapped[Shipment] = relationship(back_populates="lines")
    order_line: Mapped[OrderLine] = relationship()


class Run(Base):
    """One operation call: what it was, how it ended, its counts."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("connections.id", ondelete="SET NULL"), index=True
    )
    connection_name: Mapped[str | None] = mapped_column(String(200))
    operation: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="running")
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    message: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    #: What started the run: ``cli``, ``dispatch`` or ``schedule``.
    trigger: Mapped[str] = mapped_column(String(20), default="cli", server_default="cli")
    #: The host name of the machine that ran it.
    host: Mapped[str] = mapped_column(String(255), default="", server_default="")

    records: Mapped[list[RunRecord]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="RunRecord.id"
    )


class RunRecord(Base):
    """The outcome of one record in a run."""

    __tablename__ = "run_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    ref: Mapped[str] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text, default="")

    run: Mapped[Run] = relationship(back_populates="records")


class Lease(Base):
    """One run at a time per (connection, operation): the run holding it, until ``expires_at``.

    The run renews ``expires_at`` while it works; a run whose process died stops renewing, and
    once the lease has expired the next run takes it over (see ``hub_core.services.leases``).
    """

    __tablename__ = "leases"

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    operation: Mapped[str] = mapped_column(String(50), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    #: ``host:pid`` of the process holding it.
    holder: Mapped[str] = mapped_column(String(300))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class SyncCursor(Base):
    """Where an operation of a connection got to (``listings``: the last catalog change pushed)."""

    __tablename__ = "sync_cursors"
    __table_args__ = (UniqueConstraint("connection_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(50))
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
