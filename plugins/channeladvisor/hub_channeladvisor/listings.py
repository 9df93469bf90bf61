"""Link listings (catalog SKU -> existing ChannelAdvisor product) and sync quantity and price.

Linking finds products by SKU in one of two ways, whichever is cheaper (:func:`plan_link`):

* **lookups** — ``Products?$filter=Sku eq '<sku>' and ProfileID eq N&$select=ID,Sku``, one
  per SKU, in ``$batch`` requests of up to 100 (one SKU: a plain GET);
* **sweep** — every page of ``Products?$filter=ProfileID eq N&$select=ID,Sku&$count=true``.

``HUB_CHANNELADVISOR_LINK_STRATEGY=lookup`` or ``sweep`` forces one way (benchmarks compare
them with it; ``auto``, the default, lets :func:`plan_link` choose).

Then per SKU: rows with exactly this Sku; if none, rows equal ignoring case; none -> not_found,
several -> ambiguous (the ids are listed), one -> linked — unless that product is a parent
(``IsParent``, ``ProductType`` ``Parent``) or a bundle (``ProductType`` ``Bundle``): a parent
has no quantity of its own and ChannelAdvisor computes a bundle's, so such a product is never
linked (``unsupported``, with the reason).

Syncing sends quantity through ``UpdateQuantity`` and price through ``PATCH`` (only the
configured price field), every change of the run in ``$batch`` requests of up to 100 parts;
an update without a change sends nothing. A 404 on a product id is checked with a SKU lookup:
the product was deleted (``broken``; the message says how to fix it with ``relink``). A
quantity refused because the product has become a parent or a bundle since it was linked
(:func:`refused_as_unsupported`) turns the listing ``unsupported``, so it is never sent again.

Progress: the core sets the total for the whole operation; these functions advance it by one
per SKU answered, after each round trip.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from hub_channeladvisor.client.api import ChannelAdvisorClient, product_rows, rows
from hub_channeladvisor.client.batch import MAX_PARTS, BatchPart, PartResult
from hub_channeladvisor.client.paging import NextLinkPaginator
from hub_core.channel import (
    CatalogItem,
    LinkResult,
    ListingOutcome,
    ListingStatus,
    ListingUpdate,
    Outcome,
)
from hub_core.errors import InvalidInput

#: SKU lookups per ``$batch``.
LOOKUPS_PER_BATCH = MAX_PARTS
#: Forces the way link finds products: ``auto`` (default), ``lookup`` or ``sweep``.
LINK_STRATEGY_ENV = "HUB_CHANNELADVISOR_LINK_STRATEGY"
LINK_STRATEGIES = ("auto", "lookup", "sweep")


def forced_strategy() -> str:
    """The way ``HUB_CHANNELADVISOR_LINK_STRATEGY`` forces (``auto``: none).

    :raises InvalidInput: the variable holds something else.
    """
    value = os.environ.get(LINK_STRATEGY_ENV, "").strip().lower() or "auto"
    if value not in LINK_STRATEGIES:
        raise InvalidInput(
            f"{LINK_STRATEGY_ENV} is {value!r}; it must be one of {', '.join(LINK_STRATEGIES)} "
            "(or unset)."
        )
    return value


@dataclasses.dataclass(frozen=True)
class LinkPlan:
    """How to find the products of N SKUs, and what each way costs.

    ``lookup_*`` are the costs of batched lookups, ``sweep_*`` those of reading the rest of
    the catalog after its first page (already read to learn its size). A rate unit is one
    request against ChannelAdvisor's 2,000 a minute; a batch costs its parts plus one.
    """

    strategy: Literal["lookup", "sweep"]
    lookup_round_trips: int
    lookup_units: int
    sweep_round_trips: int
    reason: str


def plan_link(
    skus: int, catalog_size: int | None, page_size: int, *, has_more: bool, rate_available: int
) -> LinkPlan:
    """Choose between batched lookups and a catalog sweep (the rule, documented).

    * ``B = ceil(N / 100)`` lookup batches cost ``B`` round trips and ``N + B`` rate units.
    * The sweep has read page 1 already; ``S = ceil(M / P) - 1`` pages remain, each one round
      trip and one rate unit (M = catalog size, P = rows on page 1).
    * Sweep when ``S <= B``: no more round trips, and always fewer rate units.
    * Also sweep when ``S < N + B`` and ``N + B`` exceeds the rate budget left in the current
      minute: the lookups would wait for the rate limit anyway, so time is then set by rate
      units, of which the sweep spends fewer.
    * Otherwise look up. An unknown catalog size (no ``@odata.count``) means look up, unless
      page 1 was the whole catalog.

    :param skus: N, the SKUs to link.
    :param catalog_size: M, from ``@odata.count`` (None when ChannelAdvisor did not send it).
    :param page_size: P, rows on the first page.
    :param has_more: the first page had a next link.
    :param rate_available: rate units left in the current minute.
    """
    batches = math.ceil(skus / LOOKUPS_PER_BATCH)
    lookup_units = skus + batches
    if not has_more:
        return LinkPlan("sweep", batches, lookup_units, 0, "the whole catalog fit on one page")
    if catalog_size is None or page_size <= 0:
        return LinkPlan(
            "lookup",
            batches,
            lookup_units,
            -1,
            "ChannelAdvisor did not say how large the catalog is",
        )
    remaining = max(0, math.ceil(catalog_size / page_size) - 1)
    if remaining <= batches:
        reason = f"{remaining} more pages cost no more round trips than {batches} lookup batches"
        return LinkPlan("sweep", batches, lookup_units, remaining, reason)
    if remaining < lookup_units and lookup_units > rate_available:
        reason = (
            f"{lookup_units} lookup units exceed the {rate_available} left this minute; "
            f"{remaining} pages spend fewer"
        )
        return LinkPlan("sweep", batches, lookup_units, remaining, reason)
    reason = f"{batches} lookup batches beat {remaining} more pages"
    return LinkPlan("lookup", batches, lookup_units, remaining, reason)


#: The reason given for a product the hub never links, by kind (design §6).
UNSUPPORTED_REASONS = {
    "Parent": "a parent product: link its children",
    "Bundle": "a bundle product: ChannelAdvisor computes its quantity from its components; "
    "link the components",
}


def unsupported_kind(row: Mapping[str, Any]) -> str | None:
    """``Parent`` or ``Bundle`` when the product cannot take the hub's quantity, else None."""
    product_type = str(row.get("ProductType") or "")
    if row.get("IsParent") is True or product_type == "Parent":
        return "Parent"
    if product_type == "Bundle":
        return "Bundle"
    return None


def refused_as_unsupported(message: str) -> str | None:
    """``Parent``/``Bundle`` when ChannelAdvisor refused a quantity for being one, else None."""
    text = message.casefold()
    if "bundle" in text:
        return "Bundle"
    if "parent" in text:
        return "Parent"
    return None


def match_sku(sku: str, candidates: Iterable[dict[str, Any]], profile_id: int) -> LinkResult:
    """Decide the link of one SKU from the rows ChannelAdvisor returned for it."""
    unique: dict[Any, dict[str, Any]] = {}
    for row in candidates:
        unique.setdefault(row.get("ID"), row)
    found = list(unique.values())
    exact = [r for r in found if r.get("Sku") == sku]
    folded = [r for r in found if str(r.get("Sku", "")).casefold() == sku.casefold()]
    chosen = exact or folded
    if not chosen:
        return LinkResult(
            sku,
            ListingStatus.NOT_FOUND,
            message=f"No ChannelAdvisor product in profile {profile_id} has SKU {sku!r}.",
        )
    if len(chosen) > 1:
        ids = ", ".join(str(r.get("ID")) for r in chosen)
        return LinkResult(
            sku,
            ListingStatus.AMBIGUOUS,
            message=f"{len(chosen)} ChannelAdvisor products match SKU {sku!r}: IDs {ids}.",
        )
    row = chosen[0]
    kind = unsupported_kind(row)
    if kind is not None:
        return LinkResult(sku, ListingStatus.UNSUPPORTED, message=UNSUPPORTED_REASONS[kind])
    message = "" if exact else f"Matched ChannelAdvisor SKU {row.get('Sku')!r} ignoring case."
    return LinkResult(sku, ListingStatus.LINKED, str(row.get("ID")), message)


def link_listings(client: ChannelAdvisorClient, items: Sequence[CatalogItem]) -> list[LinkResult]:
    """Link every item to its ChannelAdvisor product (see the module docstring)."""
    progress = client.connection.progress
    skus = list(dict.fromkeys(item.sku for item in items))
    answers: dict[str, list[dict[str, Any]] | str]
    forced = forced_strategy()
    if forced == "sweep":
        answers = _sweep(client, client.catalog_first_page(), skus)
        progress.advance(len(skus))
    elif forced == "lookup" or len(skus) <= LOOKUPS_PER_BATCH:
        # One round trip either way: a sweep can at best tie, so do not read the catalog.
        answers = client.lookup_skus(skus, on_done=progress.advance)
    else:
        first = client.catalog_first_page()
        plan = plan_link(
            len(skus),
            _int_or_none(first.get("@odata.count")),
            len(rows(first)),
            has_more=bool(first.get("@odata.nextLink")),
            rate_available=client.limiter.rate.available(),
        )
        if plan.strategy == "sweep":
            answers = _sweep(client, first, skus)
            progress.advance(len(skus))
        else:
            answers = client.lookup_skus(skus, on_done=progress.advance)
    results = []
    for sku in skus:
        answer = answers.get(sku, [])
        if isinstance(answer, str):
            results.append(
                LinkResult(
                    sku,
                    ListingStatus.UNLINKED,
                    message=f"Could not look SKU {sku!r} up in ChannelAdvisor: {answer}",
                )
            )
        else:
            results.append(match_sku(sku, answer, client.profile_id))
    by_sku = {r.sku: r for r in results}
    return [dataclasses.replace(by_sku[item.sku]) for item in items]


def _sweep(
    client: ChannelAdvisorClient, first: dict[str, Any], skus: Sequence[str]
) -> dict[str, list[dict[str, Any]] | str]:
    wanted = {sku.casefold() for sku in skus}
    found: dict[str, list[dict[str, Any]]] = {}
    paginator = NextLinkPaginator(client.catalog_url())
    page: Any = first
    while True:
        for row in product_rows(page, "the catalog"):
            key = row["Sku"].casefold()
            if key in wanted:
                found.setdefault(key, []).append(row)
        paginator.advance(page)
        if paginator.finished:
            break
        assert paginator.current_url is not None
        page = client.http.get_json(paginator.current_url)
    return {sku: found.get(sku.casefold(), []) for sku in skus}


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# Sync
# ---------------------------------------------------------------------------------------------


def relink_hint(connection_name: str, sku: str) -> str:
    """The command that fixes a broken listing."""
    return f"hub listings relink {shlex.quote(connection_name)} --sku {shlex.quote(sku)}"


def sync_listings(
    client: ChannelAdvisorClient, updates: Sequence[ListingUpdate]
) -> list[ListingOutcome]:
    """Push quantity and price changes (see the module docstring)."""
    progress = client.connection.progress
    outcomes: dict[int, ListingOutcome] = {}
    parts: list[BatchPart] = []
    part_count: dict[int, int] = {}
    for index, update in enumerate(updates):
        if not str(update.channel_product_id).isdigit():
            outcomes[index] = ListingOutcome(
                update.sku,
                Outcome.FAILED,
                f"{update.channel_product_id!r} is not a ChannelAdvisor product ID; "
                f"run: {relink_hint(client.name, update.sku)}",
                status=ListingStatus.BROKEN,
            )
            progress.advance()
            continue
        mine = _parts_for(client, index, update)
        if not mine:
            outcomes[index] = ListingOutcome(
                update.sku, Outcome.SKIPPED, "Nothing to change in ChannelAdvisor."
            )
            progress.advance()
            continue
        parts += mine
        part_count[index] = len(mine)

    by_update: dict[int, list[PartResult]] = {}

    def on_done(done: list[PartResult]) -> None:
        for result in done:
            index = result.part.key[0]
            by_update.setdefault(index, []).append(result)
            if len(by_update[index]) == part_count[index]:
                progress.advance()

    client.run_batch(parts, on_done)

    gone: dict[int, str] = {}
    for index, results in by_update.items():
        update = updates[index]
        if any(r.status == 404 for r in results):
            gone[index] = update.sku
            continue
        failed = [r for r in results if not r.ok]
        kind = next(
            (
                refused_as_unsupported(r.message)
                for r in failed
                if r.part.key[1] == "quantity" and r.status == 400
            ),
            None,
        )
        if kind is not None:
            # The product became a parent or a bundle after it was linked: stop sending to it.
            outcomes[index] = ListingOutcome(
                update.sku,
                Outcome.FAILED,
                f"ChannelAdvisor product {update.channel_product_id} is "
                f"{UNSUPPORTED_REASONS[kind]}.",
                status=ListingStatus.UNSUPPORTED,
            )
            continue
        if failed:
            text = "; ".join(f"{r.part.key[1]}: {r.message}" for r in failed)
            outcomes[index] = ListingOutcome(update.sku, Outcome.FAILED, text)
        else:
            sent = ", ".join(f"{r.part.key[1]} {r.part.key[2]}" for r in results)
            outcomes[index] = ListingOutcome(update.sku, Outcome.OK, f"Sent {sent}.")
    if gone:
        outcomes.update(_check_gone(client, updates, gone))
    return [outcomes[i] for i in range(len(updates))]


def _parts_for(client: ChannelAdvisorClient, index: int, update: ListingUpdate) -> list[BatchPart]:
    parts = []
    changes = update.changes
    if changes.get("quantity") is not None:
        part = client.update_quantity_part(update.channel_product_id, int(changes["quantity"]))
        parts.append(dataclasses.replace(part, key=(index, "quantity", int(changes["quantity"]))))
    if changes.get("price") is not None:
        part = client.price_part(update.channel_product_id, changes["price"])
        parts.append(dataclasses.replace(part, key=(index, "price", changes["price"])))
    return parts


def _check_gone(
    client: ChannelAdvisorClient, updates: Sequence[ListingUpdate], gone: dict[int, str]
) -> dict[int, ListingOutcome]:
    """A 404 on a product id: look its SKU up to tell a deleted product from a glitch."""
    answers = client.lookup_skus(list(gone.values()))
    outcomes = {}
    for index, sku in gone.items():
        old_id = updates[index].channel_product_id
        answer = answers.get(sku, [])
        fix = relink_hint(client.name, sku)
        if isinstance(answer, str):
            outcomes[index] = ListingOutcome(
                sku,
                Outcome.FAILED,
                f"ChannelAdvisor has no product {old_id} any more, and looking SKU {sku!r} up "
                f"failed ({answer}); the change stays pending.",
            )
            continue
        match = match_sku(sku, answer, client.profile_id)
        if match.status is ListingStatus.NOT_FOUND:
            message = (
                f"Product {old_id} was deleted in ChannelAdvisor (no product in profile "
                f"{client.profile_id} has SKU {sku!r} any more). "
                f"Re-create it there, then run: {fix}"
            )
        elif match.status is ListingStatus.LINKED and match.channel_product_id == str(old_id):
            outcomes[index] = ListingOutcome(
                sku,
                Outcome.FAILED,
                f"ChannelAdvisor answered 404 for product {old_id} but still lists it for SKU "
                f"{sku!r}; the change stays pending and is sent again next sync.",
            )
            continue
        elif match.status is ListingStatus.UNSUPPORTED:
            outcomes[index] = ListingOutcome(
                sku,
                Outcome.FAILED,
                f"Product {old_id} no longer exists in ChannelAdvisor; SKU {sku!r} now belongs to "
                f"{match.message}.",
                status=ListingStatus.UNSUPPORTED,
            )
            continue
        elif match.status is ListingStatus.LINKED:
            message = (
                f"Product {old_id} no longer exists in ChannelAdvisor; SKU {sku!r} now belongs "
                f"to product {match.channel_product_id}. Link to it with: {fix}"
            )
        else:
            message = (
                f"Product {old_id} no longer exists in ChannelAdvisor. {match.message} "
                f"Keep one product with this SKU, then run: {fix}"
            )
        outcomes[index] = ListingOutcome(sku, Outcome.FAILED, message, status=ListingStatus.BROKEN)
    return outcomes
