"""The ChannelAdvisor channel: the hook implementations the core calls (entry point ``hub``).

A run has ONE :class:`~hub_channeladvisor.client.ChannelAdvisorClient` (session, token store
and limiter included), built at its first hook call and kept on the connection
(:meth:`~hub_core.channel.ChannelConnection.keep`); the core closes it when the run ends. Each
hook call checks it is usable — it stops at once, sending nothing, when the connection is
marked ``needs_reauth`` — and stores what the call's worker threads changed (refreshed tokens)
on the connection when it ends. Nothing here masks secrets: the core does, at its boundaries,
with the connection's redactor (it knows the schema's secret fields, the shared secret's
environment variable declared below, and the tokens the client refreshes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence

from hub_channeladvisor import checks, explain, listings, orders
from hub_channeladvisor.client.api import ChannelAdvisorClient
from hub_channeladvisor.schemas import SHARED_SECRET_ENV, ConnectionSchema, SettingsSchema
from hub_channeladvisor.shipments import sync_shipments
from hub_core import hookimpl
from hub_core.channel import (
    CatalogItem,
    ChannelConnection,
    ChannelDescription,
    ChannelOrder,
    ConnectionCheck,
    LinkResult,
    ListingOutcome,
    ListingUpdate,
    OrderLookup,
    RecordOutcome,
    ShipmentToSend,
)

CHANNEL = "channeladvisor"
TITLE = "ChannelAdvisor"
#: The key of the run's client on the connection (``ChannelConnection.keep``).
CLIENT = "hub_channeladvisor.client"


def _run_client(connection: ChannelConnection) -> ChannelAdvisorClient:
    """The run's client, built on first use; refused at once when the connection must be
    reconnected (marked so before the run, or by an earlier call of this run)."""
    client = connection.keep(CLIENT, lambda: ChannelAdvisorClient(connection))
    client.auth.check_usable()
    return client


@contextlib.contextmanager
def _client(connection: ChannelConnection) -> Iterator[ChannelAdvisorClient]:
    """The run's client for one hook call; what the call changed is stored when it ends."""
    client = _run_client(connection)
    try:
        yield client
    finally:
        client.flush()


@hookimpl
def hub_channel() -> ChannelDescription:
    """``channeladvisor``: everything but publishing (products are linked, never created);
    orders need shipping mappings (the order's shipping text names the hub policy)."""
    return ChannelDescription(
        name=CHANNEL,
        title=TITLE,
        connection_schema=ConnectionSchema,
        settings_schema=SettingsSchema,
        supports=("link_listings", "sync_listings", "get_orders", "sync_orders"),
        requires=("shipping_mappings",),
        reauth_advice=(
            "Request new tokens in the ChannelAdvisor developer console and run 'hub connections "
            "configure {name} --set refresh_token=... --set access_token=...'."
        ),
        secret_env=(SHARED_SECRET_ENV,),
    )


@hookimpl
def hub_test_connection(connection: ChannelConnection) -> list[ConnectionCheck]:
    """Token refresh, profile visibility, distribution center (see :mod:`.checks`)."""
    return checks.run_checks(connection)


@hookimpl
def hub_link_listings(
    connection: ChannelConnection, items: Sequence[CatalogItem]
) -> list[LinkResult]:
    """Match each SKU to an existing product (see :mod:`.listings`)."""
    with _client(connection) as client:
        return listings.link_listings(client, items)


@hookimpl
def hub_sync_listings(
    connection: ChannelConnection, updates: Sequence[ListingUpdate]
) -> list[ListingOutcome]:
    """Push quantity and price in batches (see :mod:`.listings`)."""
    with _client(connection) as client:
        return listings.sync_listings(client, updates)


@hookimpl
def hub_get_orders(connection: ChannelConnection, days: int) -> Iterable[ChannelOrder]:
    """New orders, page by page (see :mod:`.orders`); nothing is exported here."""
    # Checked now, not on the first next(): a connection needing reauth fails at the call.
    return _orders(_run_client(connection), days)


def _orders(client: ChannelAdvisorClient, days: int) -> Iterator[ChannelOrder]:
    try:
        yield from orders.iter_orders(client, days)
    finally:
        client.flush()


@hookimpl
def hub_acknowledge_orders(
    connection: ChannelConnection, channel_order_ids: Sequence[str]
) -> list[RecordOutcome]:
    """``POST Orders(ID)/Export``, one call per order."""
    with _client(connection) as client:
        return orders.acknowledge_orders(client, channel_order_ids)


@hookimpl
def hub_sync_orders(
    connection: ChannelConnection, shipments: Sequence[ShipmentToSend]
) -> list[RecordOutcome]:
    """Ship each shipment once (see :mod:`.shipments`)."""
    with _client(connection) as client:
        return sync_shipments(client, shipments)


@hookimpl
def hub_explain_order(connection: ChannelConnection, ref: str, days: int) -> OrderLookup:
    """Why get orders would, or would not, return the order (see :mod:`.explain`)."""
    with _client(connection) as client:
        return explain.explain_order(client, ref, days)
