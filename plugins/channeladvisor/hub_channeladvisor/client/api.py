"""Typed ChannelAdvisor calls for one connection, on top of the small parts.

:class:`ChannelAdvisorClient` is what the operations use, one per run: it builds the session,
the authenticator, the limiter (its budget shared per profile by the whole process, or through
Redis), the retrying HTTP engine and the batcher from a
:class:`~hub_core.channel.ChannelConnection`, and offers the ChannelAdvisor requests the hub
makes, each scoped to the connection's profile (design §6).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import requests

from hub_channeladvisor.client.answers import MalformedAnswer, collection, entity_id
from hub_channeladvisor.client.auth import Authenticator
from hub_channeladvisor.client.batch import Batcher, BatchPart, PartResult
from hub_channeladvisor.client.limiter import limiter_for
from hub_channeladvisor.client.outcomes import BackoffPolicy
from hub_channeladvisor.client.paging import iter_pages
from hub_channeladvisor.client.session import (
    ApiResult,
    HttpClient,
    Timeouts,
    new_session,
    odata_string,
)
from hub_core.channel import ChannelConnection
from hub_core.errors import ChannelError

log = logging.getLogger(__name__)

#: ``$select`` of a product lookup: the id, the SKU, and what tells a parent or a bundle
#: (design §6: those are never linked).
PRODUCT_KEYS = "ID,Sku,IsParent,ProductType"
#: ``$expand`` of an order read: every line, every fulfillment and the lines each holds (the
#: distribution center of a shipped line is its fulfillment's).
ORDER_EXPAND = "Items,Fulfillments($expand=Items)"


class ChannelAdvisorClient:
    """The ChannelAdvisor API as one connection sees it.

    :param connection: the connection (config, settings, health).
    :param session: a ``requests.Session`` to use (tests); a new one by default.
    :param requests_per_minute: the profile's rate limit (default 2,000; see the limiter).
    :param max_in_flight: the application's concurrency limit (default 5).
    :param check_health: refuse at once when the connection is marked ``needs_reauth``
        (False for the connection test only).
    """

    def __init__(
        self,
        connection: ChannelConnection,
        *,
        session: requests.Session | None = None,
        timeouts: Timeouts | None = None,
        policy: BackoffPolicy | None = None,
        requests_per_minute: int | None = None,
        max_in_flight: int | None = None,
        max_batch_parts: int = 100,
        check_health: bool = True,
    ) -> None:
        config = connection.config
        self.connection = connection
        self.name = connection.name
        # Validated by the core: the connection schema gave base_url its default.
        self.base_url = str(config["base_url"]).rstrip("/")
        self.profile_id = int(config["profile_id"])
        # Likewise the settings: their schema applied the defaults.
        self.settings: dict[str, Any] = dict(connection.settings)
        self._owner = threading.get_ident()
        self._pending: list[Callable[[], None]] = []
        self._pending_lock = threading.Lock()
        self._own_session = session is None
        self.session = session or new_session()
        self.timeouts = timeouts or Timeouts.from_environment()
        self.policy = policy or BackoffPolicy()
        self.auth = Authenticator(
            connection,
            base_url=self.base_url,
            session=self.session,
            policy=self.policy,
            timeout=self.timeouts.default,
            persist=self._persist,
            honour_health=check_health,
        )
        # Tokens refreshed before the connection stores them are secrets too: the core masks
        # what it prints and stores with the connection's redactor.
        connection.redactor.follow(lambda: self.auth.secrets, key="channeladvisor tokens")
        self.auth.check_usable()
        self.limiter = limiter_for(
            self.base_url,
            self.profile_id,
            self.auth.application_id,
            requests_per_minute=requests_per_minute,
            max_in_flight=max_in_flight,
        )
        self.http = HttpClient(
            base_url=self.base_url,
            session=self.session,
            auth=self.auth,
            limiter=self.limiter,
            policy=self.policy,
            timeouts=self.timeouts,
        )
        self.batcher = Batcher(self.http, max_parts=max_batch_parts)
        self._external_centers: dict[int, str] | None = None

    # -- housekeeping --------------------------------------------------------------------

    def _persist(self, change: Callable[[], None]) -> None:
        # The core's callbacks write to its database: run them on the thread that owns the
        # connection, later if a worker thread asked.
        if threading.get_ident() == self._owner:
            change()
        else:
            with self._pending_lock:
                self._pending.append(change)

    def flush(self) -> None:
        """Store on the connection what worker threads changed (refreshed tokens, health)."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        for change in pending:
            change()

    def close(self) -> None:
        """Flush changes and release the session."""
        self.flush()
        if self._own_session:
            self.session.close()

    def __enter__(self) -> ChannelAdvisorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- OData building blocks -----------------------------------------------------------

    @property
    def profile_clause(self) -> str:
        """The ``$filter`` clause that keeps a query in the connection's profile."""
        return f"ProfileID eq {self.profile_id}"

    def url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        """The absolute URL of ``/v1/{path}``."""
        return self.http.url(path, query)

    def pages(self, url: str) -> Iterator[dict[str, Any]]:
        """Every page of a collection, following ``@odata.nextLink``."""
        return iter_pages(self.http.get_json, url)

    def run_batch(
        self, parts: Sequence[BatchPart], on_done: Callable[[list[PartResult]], None] | None = None
    ) -> list[PartResult]:
        """Send parts in ``$batch`` requests of at most 100 (see :class:`Batcher`)."""
        return self.batcher.run(parts, on_done)

    # -- products ------------------------------------------------------------------------

    def sku_lookup_url(self, sku: str) -> str:
        """``Products?$filter=Sku eq '<sku>' and ProfileID eq N&$select=ID,Sku``."""
        return self.url(
            "Products",
            {
                "$filter": f"Sku eq {odata_string(sku)} and {self.profile_clause}",
                "$select": PRODUCT_KEYS,
            },
        )

    def lookup_skus(
        self, skus: Sequence[str], on_done: Callable[[int], None] | None = None
    ) -> dict[str, list[dict[str, Any]] | str]:
        """Find the products of each SKU: the rows ChannelAdvisor returned, or an error text.

        One SKU is one GET; more go in ``$batch`` requests of up to 100 lookups.

        :param on_done: called with the number of SKUs answered, after each round trip.
        """
        unique = list(dict.fromkeys(skus))
        if not unique:
            return {}
        if len(unique) == 1:
            result = self.http.request("GET", self.sku_lookup_url(unique[0]))
            if on_done:
                on_done(1)
            return {unique[0]: self._lookup_answer(unique[0], result.ok, result)}
        parts = [BatchPart("GET", self.sku_lookup_url(sku), key=sku) for sku in unique]
        answers: dict[str, list[dict[str, Any]] | str] = {}
        report = (lambda done: on_done(len(done))) if on_done else None
        for result in self.run_batch(parts, report):
            answers[result.part.key] = self._lookup_answer(result.part.key, result.ok, result)
        return answers

    def _lookup_answer(
        self, sku: str, ok: bool, result: ApiResult | PartResult
    ) -> list[dict[str, Any]] | str:
        """The product rows of one SKU lookup, or the error text of a failed or unreadable one."""
        if not ok:
            return result.message
        try:
            return product_rows(result.body, f"the lookup of SKU {sku!r}")
        except MalformedAnswer as exc:
            return exc.message

    def catalog_first_page(self) -> dict[str, Any]:
        """The first page of the profile's catalog (``ID,Sku``) with ``@odata.count``."""
        page = self.http.get_json(self.catalog_url())
        if not isinstance(page, dict):
            raise ChannelError("ChannelAdvisor did not return the product list.")
        return page

    def catalog_url(self) -> str:
        """The profile's catalog, ``ID`` and ``Sku`` only, with its size."""
        return self.url(
            "Products", {"$filter": self.profile_clause, "$select": PRODUCT_KEYS, "$count": "true"}
        )

    def update_quantity_part(self, product_id: str, quantity: int) -> BatchPart:
        """``POST Products(ID)/UpdateQuantity`` with the configured type and distribution center.

        ``CompleteDCList: false`` says the list names one distribution center only, so the
        others are never implied to be zero (design §6). A ``Relative`` update adds to the
        quantity: it is not idempotent and is never sent again after an unclear failure.
        """
        update_type = self.settings["quantity_update_type"]
        body = {
            "Value": {
                "UpdateType": update_type,
                "CompleteDCList": False,
                "Updates": [
                    {
                        "DistributionCenterID": int(self.settings["distribution_center_id"]),
                        "Quantity": int(quantity),
                    }
                ],
            }
        }
        return BatchPart(
            "POST",
            self.url(f"Products({int(product_id)})/UpdateQuantity"),
            body,
            idempotent=update_type != "Relative",
        )

    def price_part(self, product_id: str, price: Decimal | float | int) -> BatchPart:
        """``PATCH Products(ID)`` with the configured price field only."""
        return BatchPart(
            "PATCH",
            self.url(f"Products({int(product_id)})"),
            {self.settings["price_field"]: _number(price)},
        )

    # -- orders --------------------------------------------------------------------------

    def orders_url(
        self, filter_: str, *, exported: bool | None, expand: bool = True, count: bool = False
    ) -> str:
        """``/v1/Orders?exported=…&$filter=…&$expand=Items,Fulfillments``."""
        query: dict[str, str] = {}
        if exported is not None:
            query["exported"] = "true" if exported else "false"
        query["$filter"] = filter_
        if expand:
            query["$expand"] = ORDER_EXPAND
        if count:
            query["$count"] = "true"
        return self.url("Orders", query)

    def order_url(self, order_id: str | int) -> str:
        """``/v1/Orders(ID)?$expand=Items,Fulfillments`` (every line, no cap)."""
        return self.url(f"Orders({int(order_id)})", {"$expand": ORDER_EXPAND})

    def get_order(self, order_id: str | int) -> dict[str, Any] | None:
        """One order with every line and fulfillment, or None when ChannelAdvisor has none."""
        body = self.http.get_json(self.order_url(order_id))
        return body if isinstance(body, dict) else None

    def export_order(self, order_id: str | int) -> ApiResult:
        """``POST Orders(ID)/Export``: one call, never in a batch. Idempotent."""
        return self.http.request("POST", self.url(f"Orders({int(order_id)})/Export"))

    def ship_order(
        self, order_id: str | int, value: dict[str, Any], verify: Callable[[], bool]
    ) -> ApiResult:
        """``POST Orders(ID)/Ship``; not idempotent, so ``verify`` is asked before any retry."""
        return self.http.request(
            "POST",
            self.url(f"Orders({int(order_id)})/Ship"),
            json_body={"Value": value},
            idempotent=False,
            verify=verify,
        )

    # -- account -------------------------------------------------------------------------

    def profiles(self) -> list[dict[str, Any]]:
        """``GET /v1/Profiles``: the profiles these tokens may see."""
        return [row for page in self.pages(self.url("Profiles")) for row in _rows(page)]

    def distribution_centers(self) -> list[dict[str, Any]]:
        """``GET /v1/DistributionCenters`` (every page)."""
        return [row for page in self.pages(self.url("DistributionCenters")) for row in _rows(page)]

    def externally_managed_centers(self) -> dict[int, str]:
        """Id -> name of the account's externally managed distribution centers.

        Read once per client (one request, more only if the list has several pages): only
        orders whose fulfillment is split between the seller and the marketplace need it.
        """
        if self._external_centers is None:
            self._external_centers = {
                int(row["ID"]): str(row.get("Name") or row.get("Code") or row["ID"])
                for row in self.distribution_centers()
                if is_externally_managed(row) and str(row.get("ID", "")).lstrip("-").isdigit()
            }
        return self._external_centers


def is_externally_managed(center: Mapping[str, Any]) -> bool:
    """Whether a distribution center is run by someone else (FBA): not the hub's to touch."""
    return bool(center.get("IsExternallyManaged")) or center.get("Type") == "ExternallyManaged"


def product_rows(body: Any, what: str) -> list[dict[str, Any]]:
    """The product rows of a collection answer, each with a numeric ``ID`` and a text ``Sku``.

    :raises MalformedAnswer: the answer or one of its rows cannot be read.
    """
    products = collection(body, what)
    for row in products:
        row["ID"] = entity_id(row.get("ID"), f"a product in {what}")
        if not isinstance(row.get("Sku"), str):
            raise MalformedAnswer(
                f"ChannelAdvisor sent product {row['ID']} in {what} without a text SKU "
                f"(got {row.get('Sku')!r})."
            )
    return products


def _rows(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict) and isinstance(body.get("value"), list):
        return [row for row in body["value"] if isinstance(row, dict)]
    return []


def rows(body: Any) -> list[dict[str, Any]]:
    """The ``value`` rows of a collection answer (empty when there are none)."""
    return _rows(body)


def _number(value: Decimal | float | int) -> float | int:
    # JSON has no decimal type; prices carry at most a few decimals, exact as a float repr.
    if isinstance(value, int):
        return value
    number = Decimal(str(value))
    return int(number) if number == number.to_integral_value() else float(number)
