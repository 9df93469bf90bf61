"""The hooks a channel plugin implements (design §3).

A channel plugin declares its channel with one hook, :func:`hub_channel`, returning a
:class:`~hub_core.channel.ChannelDescription`; the core reads it once, per plugin, when it builds
the registry. The older declaring hooks (``hub_channel_name``, ``hub_channel_title``,
``hub_channel_capabilities``, ``hub_channel_requirements``, ``hub_connection_schema``,
``hub_settings_schema``) still work for plugins written against them.
Operation hooks (``hub_test_connection`` … ``hub_explain_order``) are called for ONE connection
and reach exactly one channel implementation: the plugin that declared the connection's channel.
Plugins that declare no channel may still wrap every operation with ``wrapper=True`` hook
implementations (run recording, tracing, dry-run guards).

Every hook is called with keyword arguments; an implementation may accept any subset of them.
The core checks capabilities and requirements BEFORE calling an operation hook, so an
implementation never sees an operation its channel declared ``not_supported``.
Plugins import the marker from the package: ``from hub_core import hookimpl``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click
    from marshmallow import Schema

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

PROJECT = "hub"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -------------------------------------------------------------------------------------------
# Declaring a channel
# -------------------------------------------------------------------------------------------


@hookspec
def hub_channel() -> ChannelDescription:
    """Describe the channel this plugin provides: the one declaring hook a channel needs.

    A plugin that implements this hook is a channel plugin and must implement every operation
    hook its description ``supports``. Names are unique across installed plugins. A plugin
    implements either this hook or the older declaring hooks below, not both.

    :return: a :class:`~hub_core.channel.ChannelDescription`: name, title, the operations it
        supports, the requirements it has, the marshmallow schemas of a connection's values
        and settings, and the advice that reconnects a connection needing reauthorization.
    """


@hookspec
def hub_channel_name() -> str:
    """Older way to declare a channel: return its name (``channeladvisor``, ``fake``).

    A plugin that implements this hook instead of :func:`hub_channel` must implement every
    other older declaring hook (title optional). Prefer :func:`hub_channel`.

    :return: a lower-case name, used as ``--channel NAME``.
    """


@hookspec
def hub_channel_title() -> str:
    """Return the channel's name as merchants write it (``ChannelAdvisor``); optional.

    :return: a display name used in messages; the channel name when not implemented.
    """


@hookspec
def hub_channel_capabilities() -> dict[str, str]:
    """Return which operations the channel supports.

    :return: a mapping of every operation in :data:`hub_core.channel.OPERATIONS`
        (``link_listings``, ``sync_listings``, ``publish_listings``, ``get_orders``,
        ``sync_orders``) to ``"supported"`` or ``"not_supported"``. The core refuses an
        unsupported operation (exit 3) without calling the plugin.
    """


@hookspec
def hub_channel_requirements() -> dict[str, str]:
    """Return what the channel requires before its operations run.

    :return: a mapping of every key in :data:`hub_core.channel.REQUIREMENTS`
        (``shipping_mappings``) to ``"required"`` or ``"optional"``. With
        ``shipping_mappings: required``, get orders refuses to run (exit 2) until the
        connection has at least one shipping mapping.
    """


@hookspec
def hub_connection_schema() -> type[Schema]:
    """Return the marshmallow schema of a connection's values (``--set KEY=VALUE``).

    Fields marked ``load_only`` or listed in the schema's ``Meta.secret_fields`` are secrets:
    they are never printed. Defaults (``load_default``) may read the environment. The core
    refuses unknown keys with the list of valid ones and names every missing required key at
    once (exit 2).

    :return: a :class:`marshmallow.Schema` subclass.
    """


@hookspec
def hub_settings_schema() -> type[Schema]:
    """Return the marshmallow schema of a connection's settings (``connections configure``).

    Every field must have a default (``load_default``), so that a new connection works
    without settings.

    :return: a :class:`marshmallow.Schema` subclass.
    """


@hookspec
def hub_register_commands(cli: click.Group) -> None:
    """Add extra commands to the ``hub`` CLI.

    Called for every plugin, channel or not, once per registry, when the CLI first needs its
    commands. Group channel-specific commands under the channel's name (``hub channeladvisor
    sandbox``).

    :param cli: a group whose commands become commands of ``hub``; call
        ``cli.add_command(...)``.
    """


# -------------------------------------------------------------------------------------------
# Operations (called for one connection, reach exactly one channel)
# -------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def hub_test_connection(connection: ChannelConnection) -> list[ConnectionCheck]:
    """Check that the connection works: credentials, account, anything the channel needs.

    :param connection: the connection to check.
    :return: the checks made, each passed or failed with a message saying what to fix.
        Raise :class:`hub_core.errors.HubError` only when checking itself was impossible.
    """


@hookspec(firstresult=True)
def hub_link_listings(
    connection: ChannelConnection, items: Sequence[CatalogItem]
) -> list[LinkResult]:
    """Find the channel's existing product for each catalog item.

    :param connection: the connection.
    :param items: the catalog items to link.
    :return: one result per item: ``linked`` with the channel product id, ``not_found``, or
        ``ambiguous`` (several channel products match), with a message.
    """


@hookspec(firstresult=True)
def hub_sync_listings(
    connection: ChannelConnection, updates: Sequence[ListingUpdate]
) -> list[ListingOutcome]:
    """Push changed values of linked listings to the channel.

    The core sends only listings whose values changed since they were last pushed, and only
    the changed fields. A listing whose channel product no longer exists comes back with
    ``status=broken``.

    :param connection: the connection.
    :param updates: the changes to push.
    :return: one outcome per update; an update that failed keeps its values pending and is
        sent again on the next sync.
    """


@hookspec(firstresult=True)
def hub_publish_listings(
    connection: ChannelConnection, items: Sequence[CatalogItem]
) -> list[LinkResult]:
    """Create new products on the channel for catalog items that are not there yet.

    :param connection: the connection.
    :param items: the catalog items to publish.
    :return: one result per item; ``linked`` with the new product id on success.
    """


@hookspec(firstresult=True)
def hub_get_orders(connection: ChannelConnection, days: int) -> Iterable[ChannelOrder]:
    """Return the channel's new orders that the connection's settings make eligible.

    The hub stores each order, commits, and only then calls :func:`hub_acknowledge_orders`
    for it, so an order must NOT be marked as taken on the channel here. Returning a
    generator lets the core store and acknowledge page by page. The core does that inside
    this hook call, so a wrapper around it sees the whole operation.

    :param connection: the connection.
    :param days: only orders created within the last ``days`` days.
    :return: the orders, every line included.
    """


@hookspec(firstresult=True)
def hub_acknowledge_orders(
    connection: ChannelConnection, channel_order_ids: Sequence[str]
) -> list[RecordOutcome]:
    """Tell the channel these orders are stored in the hub, so it stops returning them.

    Called after the orders are committed, and again on a later run for any order stored
    but not yet acknowledged (a crash in between heals itself). Must be idempotent.

    :param connection: the connection.
    :param channel_order_ids: the channel's ids of orders the hub has stored.
    :return: one outcome per id.
    """


@hookspec(firstresult=True)
def hub_sync_orders(
    connection: ChannelConnection, shipments: Sequence[ShipmentToSend]
) -> list[RecordOutcome]:
    """Send shipments (tracking, carrier, class, ship date) to the channel, once each.

    A shipment whose answer was lost must not be sent twice: check the channel first when
    retrying. The outcome ``ref`` is the shipment id.

    :param connection: the connection.
    :param shipments: the shipments not yet sent (failed ones included, for a retry).
    :return: one outcome per shipment; a failed one keeps its message for the merchant.
    """


@hookspec(firstresult=True)
def hub_explain_order(connection: ChannelConnection, ref: str, days: int) -> OrderLookup:
    """Look one order up on the channel and say whether get orders would return it, and why not.

    :param connection: the connection.
    :param ref: the channel's order id or the marketplace's order id.
    :param days: the ``order_days`` window in force.
    :return: the order (or None if the channel does not know it) and the reasons the channel's
        own filters would leave it out; the core adds what the hub knows (imported, held).
    """
