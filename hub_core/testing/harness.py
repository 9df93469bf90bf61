"""What a channel plugin supplies to run the contract suite: a harness around its channel double.

The contract (:class:`hub_core.testing.ChannelContract`) drives the real ``hub`` CLI against a
temporary database; the harness is the only channel-specific part. It starts the channel's
double (a sandbox server, a store file, an in-memory shop), gives the ``--set`` values of a
connection to it, seeds products and orders, deletes a product, arms failures, and reads back
what the channel received. It never touches the hub's database and never calls the plugin:
the contract does both through the CLI.

A harness is made once per test, in a fresh directory::

    class FakeHarness(ChannelHarness):
        channel = "fake"

        def start(self) -> None:
            self.store = FakeStore(self.workdir / "fake.json")
            self.store.create()
        ...

Every method is described below; the defaults fit most channels.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib.metadata
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal

from hub_core.hookspecs import PROJECT

#: Kinds of failure :meth:`ChannelHarness.fail` arms. ``transient`` is a server error
#: (HTTP 5xx), ``rate_limited`` a refusal for going over limits (HTTP 429): both succeed when
#: tried again. ``error`` is a permanent refusal of the call or record (HTTP 4xx).
FailureKind = Literal["transient", "rate_limited", "error"]
FAILURE_KINDS: tuple[str, ...] = ("transient", "rate_limited", "error")

#: Operations :meth:`ChannelHarness.fail` may be asked to fail (the operation hooks without
#: ``hub_``): each a call the hub makes to the channel.
FAILABLE_OPERATIONS: tuple[str, ...] = (
    "test_connection",
    "link_listings",
    "sync_listings",
    "publish_listings",
    "get_orders",
    "acknowledge_orders",
    "sync_orders",
)


@dataclasses.dataclass(frozen=True)
class ChannelProduct:
    """A product as the channel holds it now."""

    sku: str
    quantity: int
    price: Decimal


@dataclasses.dataclass(frozen=True)
class ReceivedUpdate:
    """One listing update the channel received and applied.

    ``fields`` maps each field the hub sent (``quantity``, ``price``) to its value. A channel
    that takes quantity and price in separate requests may report one update per request.
    """

    sku: str
    fields: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class ReceivedShipment:
    """One shipment the channel recorded for an order.

    ``lines`` maps each SKU to the quantity this shipment covers (all that was unshipped, for
    a shipment of the whole order).
    """

    channel_order_id: str
    tracking: str
    lines: Mapping[str, int]


class ChannelHarness(abc.ABC):
    """The channel-specific half of the contract suite; subclass it next to your plugin.

    One instance is made per test with a fresh ``workdir``; the contract calls :meth:`start`
    before anything else and :meth:`stop` at the end, even when the test failed.

    Class attributes say what the contract may rely on:

    * :attr:`channel` — the channel name the plugin declares (``--channel NAME``); it is also
      the scenario id in the test output (``test_sync_sends_only_changes[fake]``).
    * :attr:`retries_in_call` — ``True`` when the plugin retries a transient failure (5xx,
      429) inside the same call, so the operation succeeds at once; ``False`` when it reports
      the failure and the hub's next run sends what is still pending.
    * :attr:`shipping_text` / :attr:`other_shipping_text` — two shipping texts orders may
      carry on this channel (for a channel that builds the text from carrier and class, two
      ``"Carrier - Class"`` pairs it knows).
    * :attr:`carrier` / :attr:`shipping_class` — what ``hub orders ship`` records; the
      channel must accept them.
    """

    channel: ClassVar[str]
    retries_in_call: ClassVar[bool] = True
    shipping_text: ClassVar[str] = "UPS - Ground"
    other_shipping_text: ClassVar[str] = "FedEx - Home Delivery"
    carrier: ClassVar[str] = "UPS"
    shipping_class: ClassVar[str] = "Ground"

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)

    # -- the plugin and its double ----------------------------------------------------------

    def plugin(self) -> object:
        """The plugin object (usually a module) to register for the channel.

        By default the entry point of the ``hub`` group named :attr:`channel`, loaded the way
        the hub loads it, so the contract also proves the plugin is installed. Override it to
        test a plugin that is not installed (one registered by a fixture).
        """
        for entry_point in importlib.metadata.entry_points(group=PROJECT):
            if entry_point.name == self.channel:
                return entry_point.load()
        raise LookupError(
            f"No entry point {self.channel!r} in the group {PROJECT!r}: install the plugin "
            f"(pip install -e .), declare [project.entry-points.{PROJECT}] "
            f'{self.channel} = "your_module", or override {type(self).__name__}.plugin().'
        )

    @abc.abstractmethod
    def start(self) -> None:
        """Start the channel double (empty: no products, no orders, no failures armed)."""

    def stop(self) -> None:  # noqa: B027 - optional: most doubles need no stopping
        """Stop the channel double and release what :meth:`start` took (threads, ports)."""

    # -- connections ------------------------------------------------------------------------

    @abc.abstractmethod
    def connection_values(self) -> dict[str, str]:
        """The ``--set KEY=VALUE`` pairs of ``hub connections add`` for a working connection."""

    @abc.abstractmethod
    def bad_credentials(self) -> dict[str, str]:
        """Values that, set over :meth:`connection_values`, make the channel refuse the
        credentials (a revoked token, a wrong key); given to ``connections configure``."""

    @abc.abstractmethod
    def settings_accepting_ineligible_status(self) -> dict[str, str]:
        """Settings (``--set`` pairs) under which an order added with
        ``status_eligible=False`` becomes eligible; the default settings must exclude it."""

    # -- seeding the channel ----------------------------------------------------------------

    @abc.abstractmethod
    def add_product(self, sku: str, quantity: int, price: Decimal) -> str:
        """Add a product to the channel (as a merchant would there) and return its id.

        Adding a SKU twice in different letter cases must give two products.
        """

    def add_ambiguous_products(self, sku: str) -> None:
        """Make the channel hold several products that all match ``sku`` (link: ``ambiguous``).

        The default adds ``sku`` upper-cased and lower-cased (no exact-case match; two
        case-insensitive ones). ``sku`` itself is mixed-case.
        """
        self.add_product(sku.upper(), 1, Decimal("1.00"))
        self.add_product(sku.lower(), 1, Decimal("1.00"))

    @abc.abstractmethod
    def delete_product(self, sku: str) -> None:
        """Delete the product with exactly this SKU on the channel (its id stops existing).

        :meth:`add_product` with the same SKU re-creates it later, under a new id or the old.
        """

    @abc.abstractmethod
    def add_order(
        self,
        lines: Sequence[tuple[str, int]],
        shipping_text: str,
        *,
        status_eligible: bool = True,
        age_days: int = 0,
    ) -> str:
        """Add an order to the channel, as a marketplace would, and return its channel id.

        :param lines: ``(sku, quantity)`` per line, one line per pair, in order.
        :param shipping_text: what the hub sees as the order's shipping text (and a shipping
            mapping must equal); one of :attr:`shipping_text` and :attr:`other_shipping_text`.
        :param status_eligible: ``False`` gives the order a status the connection's default
            settings exclude from get orders, and that
            :meth:`settings_accepting_ineligible_status` includes.
        :param age_days: the order was created this many days ago (the ``order_days``
            setting, 7 by default, and ``orders get --days N`` filter on it).
        """

    def cancel_order(self, channel_order_id: str) -> None:
        """Cancel an order on the channel, as a marketplace would after the hub imported it.

        The channel then tells the hub (design §6): sync orders answers a shipment of it
        ``skipped`` with ``order_status="cancelled"``, and get orders reports it again flagged
        ``cancelled``. Not abstract, so that older harnesses keep working; a harness that does
        not override it skips the cancellation scenario.
        """
        raise NotImplementedError

    # -- failures ---------------------------------------------------------------------------

    @abc.abstractmethod
    def fail(
        self,
        operation: str,
        *,
        kind: FailureKind = "transient",
        ref: str | None = None,
        times: int | None = 1,
    ) -> None:
        """Make the channel fail the next call(s) of ``operation``.

        :param operation: one of :data:`FAILABLE_OPERATIONS`.
        :param kind: one of :data:`FAILURE_KINDS`.
        :param ref: None fails whole calls; a SKU or a channel order id fails that record only
            (the others of the call go through).
        :param times: how many calls (or attempts at the record) fail before the switch is
            spent; None keeps failing until :meth:`clear_failures`.
        """

    @abc.abstractmethod
    def clear_failures(self) -> None:
        """Disarm every failure switch."""

    @abc.abstractmethod
    def armed_failures(self) -> int:
        """How many failure switches are still armed (a spent switch is not counted)."""

    # -- reading back -----------------------------------------------------------------------

    @abc.abstractmethod
    def product(self, sku: str) -> ChannelProduct | None:
        """The channel's product with exactly this SKU now, or None."""

    @abc.abstractmethod
    def received_updates(self) -> list[ReceivedUpdate]:
        """Every listing update the channel applied, oldest first."""

    @abc.abstractmethod
    def received_shipments(self) -> list[ReceivedShipment]:
        """Every shipment the channel received, oldest first, each as often as it arrived.

        A shipment the hub sent twice appears twice, even if the channel recognised the second
        one as a repeat and did not record it again: the contract checks the hub sends once.
        """

    @abc.abstractmethod
    def acknowledged_orders(self) -> set[str]:
        """Channel ids of the orders the channel was told the hub has taken (exported)."""
