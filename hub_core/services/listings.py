"""Listings: link catalog SKUs to channel products, keep them in sync, publish, relink."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub_core.channel import (
    CatalogItem,
    LinkResult,
    ListingOutcome,
    ListingStatus,
    ListingUpdate,
    Outcome,
)
from hub_core.crash import crash_point
from hub_core.errors import InvalidInput, NotFound, PluginError
from hub_core.models import CatalogProduct, Connection, Listing, SyncCursor, utcnow
from hub_core.services.catalog import current_counter, format_money
from hub_core.services.connections import get_connection, open_run
from hub_core.services.context import Hub, OperationResult, RecordResult, RunContext
from hub_core.services.runs import RunRecorder

#: Listings handed to a plugin per sync call: bounds memory and lets commits advance. Each
#: chunk's outcomes are stored while the next chunk is sent, so the last chunk's storing is
#: what a sync spends after its last answer: kept small.
CHUNK = 2000
#: SKUs handed to a plugin per link call: large, because a channel may choose to read its
#: whole catalog once per call (cheaper than lookups for many SKUs).
LINK_CHUNK = 100_000
LISTINGS_CURSOR = "listings"
#: Statuses that a plain ``link`` (without --sku) tries again. ``unsupported`` is not among
#: them: a parent or bundle stays one, and looking it up on every run would cost requests.
_LINKABLE = {ListingStatus.UNLINKED, ListingStatus.NOT_FOUND, ListingStatus.AMBIGUOUS}
#: What a channel may answer for a SKU it cannot link: states of the listing, not failures of
#: the run (recorded ``skipped``; a run with only these exits 0).
STATES_NOT_FAILURES = frozenset(
    {ListingStatus.NOT_FOUND, ListingStatus.AMBIGUOUS, ListingStatus.UNSUPPORTED}
)


def catalog_item(product: CatalogProduct) -> CatalogItem:
    """The plugin's view of a catalog product."""
    return CatalogItem(
        sku=product.sku,
        title=product.title,
        quantity=product.quantity,
        price=Decimal(product.price),
        upc=product.upc,
        msrp=product.msrp,
        cost=product.cost,
    )


def _products_for(session: Session, skus: Sequence[str]) -> list[CatalogProduct]:
    """The catalog products for ``skus``, refusing unknown ones all at once."""
    found: dict[str, CatalogProduct] = {}
    for start in range(0, len(skus), 1000):
        chunk = list(skus[start : start + 1000])
        for product in session.scalars(select(CatalogProduct).where(CatalogProduct.sku.in_(chunk))):
            found[product.sku] = product
    unknown = [s for s in skus if s not in found]
    if unknown:
        raise NotFound(
            f"Not in the catalog: {', '.join(unknown[:20])}"
            + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else "")
            + ". Import them first with 'hub catalog import FILE'."
        )
    return [found[s] for s in dict.fromkeys(skus)]


def _listings_by_sku(session: Session, connection: Connection, skus: Iterable[str]) -> dict:
    skus = list(skus)
    result: dict[str, Listing] = {}
    for start in range(0, len(skus), 1000):
        chunk = skus[start : start + 1000]
        for listing in session.scalars(
            select(Listing).where(Listing.connection_id == connection.id, Listing.sku.in_(chunk))
        ):
            result[listing.sku] = listing
    return result


def _link_targets(
    hub: Hub, connection: Connection, skus: Sequence[str] | None
) -> tuple[list[CatalogItem], list[str]]:
    """The catalog items to look up, and the SKUs asked for by name but excluded here."""
    with hub.db.session() as session:
        if skus:
            products = _products_for(session, skus)
            excluded = _excluded(session, connection, [p.sku for p in products])
            items = [catalog_item(p) for p in products if p.sku not in excluded]
            return items, [p.sku for p in products if p.sku in excluded]
        linked = select(Listing.product_id).where(
            Listing.connection_id == connection.id,
            Listing.status.not_in([s.value for s in _LINKABLE]),
        )
        query = (
            select(CatalogProduct)
            .where(CatalogProduct.id.not_in(linked))
            .order_by(CatalogProduct.sku)
        )
        return [catalog_item(p) for p in session.scalars(query)], []


def _excluded(session: Session, connection: Connection, skus: Sequence[str]) -> set[str]:
    return {
        sku
        for sku, listing in _listings_by_sku(session, connection, skus).items()
        if listing.status == ListingStatus.EXCLUDED.value
    }


def _excluded_message(connection_name: str, sku: str) -> str:
    return (
        f"excluded from {connection_name!r}: never looked up, linked or synced there; "
        f"'hub listings include {connection_name} --sku {sku}' undoes it"
    )


def _store_links(
    hub: Hub, connection: Connection, results: Sequence[LinkResult], run: RunRecorder
) -> None:
    with hub.db.session() as session:
        existing = _listings_by_sku(session, connection, (r.sku for r in results))
        products = {p.sku: p for p in _products_for(session, [r.sku for r in results])}
        now = utcnow()
        for result in results:
            listing = existing.get(result.sku)
            if listing is None:
                listing = Listing(
                    connection_id=connection.id,
                    product_id=products[result.sku].id,
                    sku=result.sku,
                )
                session.add(listing)
            status = ListingStatus(result.status)
            listing.status = status.value
            listing.message = run.clean(result.message)
            if status == ListingStatus.LINKED:
                listing.channel_product_id = result.channel_product_id
                listing.linked_at = now
                # A fresh link takes the hub's values on the next sync.
                listing.pending = True
                listing.pushed_quantity = None
                listing.pushed_price = None
                run.record(result.sku, Outcome.OK, f"linked to {result.channel_product_id}")
            else:
                listing.channel_product_id = None
                listing.pending = False
                outcome = Outcome.SKIPPED if status in STATES_NOT_FAILURES else Outcome.FAILED
                run.record(result.sku, outcome, result.message or status.value)
            run.count(status.value)


def link_listings(
    hub: Hub,
    connection_name: str,
    skus: Sequence[str] | None = None,
    *,
    operation: str = "link",
    context: RunContext | None = None,
) -> OperationResult:
    """Link catalog SKUs to the channel's existing products.

    Without ``skus``: every catalog SKU not linked yet (not found and ambiguous ones are
    tried again; excluded and unsupported ones are not). With ``skus``: those, which must be
    in the catalog; excluded ones are skipped without asking the channel.
    ``not_found``, ``ambiguous`` and ``unsupported`` answers are states, recorded ``skipped``.
    ``context``: the connection opened already (``hub run``, publish).
    """
    progress = hub.progress("link")
    ctx = open_run(hub, connection_name, operation_name(operation), progress, context=context)
    items, excluded = _link_targets(hub, ctx.row, skus)
    channel, view = ctx.channel, ctx.connection
    with RunRecorder(hub, f"{operation}_listings", context=ctx) as run:
        for sku in excluded:
            run.record(sku, Outcome.SKIPPED, _excluded_message(connection_name, sku))
            run.count(ListingStatus.EXCLUDED.value)
        view.progress.set_total(len(items))
        for start in range(0, len(items), LINK_CHUNK):
            chunk = items[start : start + LINK_CHUNK]
            if operation == "publish":  # a write to the channel: only under the run's lease
                run.commit_point()
            results = ctx.call(operation_name(operation), items=chunk)
            _check_answers(channel.name, operation, [i.sku for i in chunk], results)
            crash_point("link_listings.answered")
            _store_links(hub, ctx.row, results, run)
    return run.result()


def operation_name(operation: str) -> str:
    """``link`` -> ``link_listings``."""
    return f"{operation}_listings"


def _check_answers(channel: str, operation: str, asked: Sequence[str], answers: Sequence) -> None:
    answered = {a.sku for a in answers}
    missing = [s for s in asked if s not in answered]
    if missing:
        raise PluginError(
            f"The {channel} plugin gave no {operation} result for {len(missing)} SKU(s) "
            f"(first: {missing[0]}). Nothing was recorded for them."
        )


def publish_listings(
    hub: Hub, connection_name: str, skus: Sequence[str] | None = None
) -> OperationResult:
    """Create new channel products for catalog SKUs that are not linked."""
    # The capability is refused before anything else is read: the channel is never called.
    context = open_run(hub, connection_name, "publish_listings")
    return link_listings(hub, connection_name, skus, operation="publish", context=context)


def unlink_listings(hub: Hub, connection_name: str, skus: Sequence[str]) -> OperationResult:
    """Forget the channel product of each SKU (the listing becomes ``unlinked``)."""
    if not skus:
        raise InvalidInput("Give at least one --sku to unlink.")
    with hub.db.session() as session:
        connection = get_connection(session, connection_name)
        listings = _listings_by_sku(session, connection, skus)
        unknown = [s for s in skus if s not in listings]
        if unknown:
            raise NotFound(
                f"No listing on {connection_name!r} for SKU {', '.join(unknown)}. "
                f"See 'hub listings list {connection_name}'."
            )
    with RunRecorder(hub, "unlink_listings", connection) as run, hub.db.session() as session:
        for listing in _listings_by_sku(session, connection, skus).values():
            if listing.status == ListingStatus.EXCLUDED.value:
                # Unlinking would quietly include it again: that is include's job.
                run.record(
                    listing.sku, Outcome.SKIPPED, _excluded_message(connection.name, listing.sku)
                )
                continue
            listing.status = ListingStatus.UNLINKED.value
            listing.channel_product_id = None
            listing.pending = False
            listing.pushed_quantity = None
            listing.pushed_price = None
            listing.message = ""
            run.record(listing.sku, Outcome.OK, "unlinked")
    return run.result()


def relink_listings(hub: Hub, connection_name: str, skus: Sequence[str]) -> OperationResult:
    """Unlink then link again: the fix for a ``broken`` listing."""
    if not skus:
        raise InvalidInput("Give at least one --sku to relink.")
    with hub.db.session() as session:
        connection = get_connection(session, connection_name)
        _products_for(session, skus)
        listed = _listings_by_sku(session, connection, skus)  # one query, not one per SKU
    known = [s for s in skus if s in listed]
    if known:
        unlink_listings(hub, connection_name, known)
    result = link_listings(hub, connection_name, skus, operation="link")
    result.operation = "relink_listings"
    return result


def exclude_listings(hub: Hub, connection_name: str, skus: Sequence[str]) -> OperationResult:
    """Keep catalog SKUs off one connection: status ``excluded``, never looked up, linked or
    synced there (a linked one forgets its channel product). Nothing is asked of the channel.
    """
    if not skus:
        raise InvalidInput(
            f"Give at least one --sku to exclude, e.g. 'hub listings exclude {connection_name} "
            "--sku GIFT-CARD'."
        )
    with hub.db.session() as session:
        connection = get_connection(session, connection_name)
        _products_for(session, skus)  # unknown SKUs: exit 2, nothing changed
    with RunRecorder(hub, "exclude_listings", connection) as run, hub.db.session() as session:
        products = {p.sku: p for p in _products_for(session, skus)}
        listings = _listings_by_sku(session, connection, products)
        for sku, product in products.items():
            listing = listings.get(sku)
            if listing is not None and listing.status == ListingStatus.EXCLUDED.value:
                run.record(sku, Outcome.SKIPPED, "already excluded")
                continue
            if listing is None:
                listing = Listing(connection_id=connection.id, product_id=product.id, sku=sku)
                session.add(listing)
            was = listing.status or ListingStatus.UNLINKED.value
            listing.status = ListingStatus.EXCLUDED.value
            listing.channel_product_id = None
            listing.pending = False
            listing.pushed_quantity = None
            listing.pushed_price = None
            listing.message = _excluded_message(connection_name, sku)
            run.record(sku, Outcome.OK, f"excluded (was {was})")
            run.count(ListingStatus.EXCLUDED.value)
    return run.result()


def include_listings(hub: Hub, connection_name: str, skus: Sequence[str]) -> OperationResult:
    """Undo :func:`exclude_listings`: the SKUs become ``unlinked``, for the next link."""
    if not skus:
        raise InvalidInput(
            f"Give at least one --sku to include, e.g. 'hub listings include {connection_name} "
            "--sku GIFT-CARD'."
        )
    with hub.db.session() as session:
        connection = get_connection(session, connection_name)
        _products_for(session, skus)
    with RunRecorder(hub, "include_listings", connection) as run, hub.db.session() as session:
        listings = _listings_by_sku(session, connection, skus)
        for sku in dict.fromkeys(skus):
            listing = listings.get(sku)
            if listing is None or listing.status != ListingStatus.EXCLUDED.value:
                status = listing.status if listing else ListingStatus.UNLINKED.value
                run.record(sku, Outcome.SKIPPED, f"not excluded (status {status})")
                continue
            listing.status = ListingStatus.UNLINKED.value
            listing.message = ""
            run.record(
                sku, Outcome.OK, f"included: 'hub listings link {connection_name}' looks it up"
            )
            run.count("included")
    return run.result()


def listing_to_json(listing: Listing) -> dict[str, Any]:
    """A listing's JSON shape (contract: sku, status, channel_product_id)."""
    return {
        "sku": listing.sku,
        "status": listing.status,
        "channel_product_id": listing.channel_product_id,
        "message": listing.message,
        "pending": listing.pending,
        "synced_at": listing.synced_at.isoformat() if listing.synced_at else None,
    }


def list_listings(
    hub: Hub, connection_name: str, status: str | None = None
) -> list[dict[str, Any]]:
    """The connection's listings; catalog SKUs never linked show as ``unlinked``."""
    valid = [s.value for s in ListingStatus]
    if status is not None and status not in valid:
        raise InvalidInput(f"Unknown status {status!r}. Valid statuses: {', '.join(valid)}.")
    with hub.db.session() as session:
        connection = get_connection(session, connection_name)
        listings = {
            listing.sku: listing_to_json(listing)
            for listing in session.scalars(
                select(Listing).where(Listing.connection_id == connection.id)
            )
        }
        rows = []
        for sku in session.scalars(select(CatalogProduct.sku).order_by(CatalogProduct.sku)):
            row = listings.get(sku) or {
                "sku": sku,
                "status": ListingStatus.UNLINKED.value,
                "channel_product_id": None,
                "message": "",
                "pending": False,
                "synced_at": None,
            }
            if status is None or row["status"] == status:
                rows.append(row)
        return rows


# --- sync ---------------------------------------------------------------------------------


_PENDING_COLUMNS = (
    Listing.id,
    Listing.sku,
    Listing.channel_product_id,
    Listing.pushed_quantity,
    Listing.pushed_price,
    CatalogProduct.title,
    CatalogProduct.quantity,
    CatalogProduct.price,
    CatalogProduct.upc,
    CatalogProduct.msrp,
    CatalogProduct.cost,
)


def pending_listing_ids(session: Session, connection: Connection, up_to: int) -> list[int]:
    """Ids of the linked listings that may have something to send, in SKU order: those whose
    catalog product changed since the connection's cursor (an index range) and those flagged
    ``pending``. The cost grows with the changes, not with the catalog; only ids are held.
    """
    cursor = (
        session.scalar(
            select(SyncCursor.value).where(
                SyncCursor.connection_id == connection.id, SyncCursor.name == LISTINGS_CURSOR
            )
        )
        or 0
    )
    base = (
        select(Listing.id, Listing.sku)
        .join(CatalogProduct, Listing.product_id == CatalogProduct.id)
        .where(Listing.connection_id == connection.id, Listing.status == ListingStatus.LINKED.value)
    )
    # Two index ranges (one for the changes, one for the flags), merged here.
    # Core execution (the session's connection): plain rows, without the ORM's row loading.
    db = session.connection()
    found = dict(
        db.execute(
            base.where(CatalogProduct.change_seq > cursor, CatalogProduct.change_seq <= up_to)
        ).all()
    )
    found.update(db.execute(base.where(Listing.pending.is_(True))).all())
    return [listing_id for listing_id, _ in sorted(found.items(), key=lambda pair: pair[1])]


def updates_for(session: Session, listing_ids: Sequence[int]) -> list[ListingUpdate]:
    """The updates of these listings (see :func:`pending_listing_ids`), in SKU order: the
    fields whose catalog value differs from what was last pushed. Plain columns, not ORM
    objects, keep 10k changes cheap. Listings found to need nothing are unflagged (in the
    caller's transaction).
    """
    rows = []
    db = session.connection()  # Core execution: plain rows, no ORM row loading
    for start in range(0, len(listing_ids), 1000):
        rows += db.execute(
            select(*_PENDING_COLUMNS)
            .join(CatalogProduct, Listing.product_id == CatalogProduct.id)
            .where(
                Listing.id.in_(listing_ids[start : start + 1000]),
                Listing.status == ListingStatus.LINKED.value,
            )
        ).all()
    settled: list[int] = []
    updates: list[ListingUpdate] = []
    # Rows unpacked as tuples: attribute access on 10k rows costs more than the checks.
    for listing_id, sku, product_id, pushed_quantity, pushed_price, *values in rows:
        title, quantity, raw_price, upc, msrp, cost = values
        price = Decimal(raw_price)
        changes: dict[str, Any] = {}
        if pushed_quantity != quantity:
            changes["quantity"] = quantity
        if pushed_price is None or Decimal(pushed_price) != price:
            changes["price"] = price
        if not changes:
            settled.append(listing_id)
            continue
        item = CatalogItem(
            sku=sku, title=title, quantity=quantity, price=price, upc=upc, msrp=msrp, cost=cost
        )
        updates.append(
            ListingUpdate(sku=sku, channel_product_id=str(product_id), changes=changes, item=item)
        )
    for start in range(0, len(settled), 1000):
        session.execute(
            update(Listing)
            .where(Listing.id.in_(settled[start : start + 1000]))
            .values(pending=False)
        )
    updates.sort(key=lambda u: u.sku)
    return updates


def pending_updates(session: Session, connection: Connection, up_to: int) -> list[ListingUpdate]:
    """Every linked listing whose catalog values differ from what was last pushed (all at
    once; a sync reads them chunk by chunk instead, see :func:`sync_listings`)."""
    return updates_for(session, pending_listing_ids(session, connection, up_to))


def _describe_changes(changes: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{k} {format_money(v) if isinstance(v, Decimal) else v}" for k, v in changes.items()
    )


def sync_listings(
    hub: Hub, connection_name: str, *, dry_run: bool = False, context: RunContext | None = None
) -> OperationResult:
    """Push quantity and price changes made since the last sync.

    Only linked listings whose values differ from what was last pushed are sent, and only the
    changed fields. A failed listing stays pending and is sent again next time; a listing
    whose channel product is gone becomes ``broken``. ``dry_run`` lists what would be sent
    and changes nothing. ``context``: the connection opened already (``hub run``).
    """
    ctx = open_run(hub, connection_name, "sync_listings", hub.progress("sync"), context=context)
    channel, view = ctx.channel, ctx.connection
    if dry_run:
        with hub.db.sessions() as session, session.begin():
            updates = pending_updates(session, ctx.row, current_counter(session))
            # Reading must change nothing, not even the pending flags settled on the way.
            session.rollback()
            return OperationResult(
                run_id=None,
                operation="sync_listings",
                status="ok",
                counts={"would_send": len(updates)},
                records=[
                    RecordResult(
                        u.sku, Outcome.SKIPPED.value, "would send " + _describe_changes(u.changes)
                    )
                    for u in updates
                ],
                extra={"dry_run": True},
            )
    with RunRecorder(hub, "sync_listings", context=ctx) as run:
        # Read under the run's lease, so two syncs never both send the same change. Only the
        # ids are held; each chunk's values are read when it is sent (memory stays flat).
        with hub.db.session() as session:
            up_to = current_counter(session)
            listing_ids = pending_listing_ids(session, ctx.row, up_to)
        view.progress.set_total(len(listing_ids))
        # One thread stores a chunk's outcomes while the next chunk is sent. The next chunk
        # is read before that (SQLite would make the read wait for the store's write lock).
        starts = iter(range(0, len(listing_ids), CHUNK))

        def next_chunk() -> list[ListingUpdate] | None:
            """The updates of the next chunk with something to send; None after the last."""
            for start in starts:
                ids = listing_ids[start : start + CHUNK]
                with hub.db.session() as session:
                    found = updates_for(session, ids)
                # Listings found to need nothing count as done.
                view.progress.advance(len(ids) - len(found))
                if found:
                    return found
            return None

        with concurrent.futures.ThreadPoolExecutor(1, "hub-store-sync") as pool:
            storing: concurrent.futures.Future[None] | None = None
            try:
                chunk = next_chunk()
                while chunk is not None:
                    run.commit_point()  # a run that lost its lease sends nothing more
                    outcomes = ctx.call("sync_listings", updates=chunk)
                    _check_answers(channel.name, "sync", [u.sku for u in chunk], outcomes)
                    crash_point("sync_listings.sent")
                    if storing is not None:
                        storing.result()
                    try:
                        following = next_chunk()
                    finally:
                        # Stored whatever happens next: the channel has applied it.
                        storing = pool.submit(_store_sync, hub, ctx.row, chunk, outcomes, run)
                    chunk = following
                if storing is not None:
                    storing.result()
            except BaseException:
                # What the channel applied before the failure is still stored.
                if storing is not None:
                    concurrent.futures.wait([storing])
                raise
        _clear_settled(hub, ctx.row.id, up_to)
        run.count("sent", run.counts.get(Outcome.OK.value, 0))
    return run.result()


def _store_sync(
    hub: Hub,
    connection: Connection,
    updates: Sequence[ListingUpdate],
    outcomes: Sequence[ListingOutcome],
    run: RunRecorder,
) -> None:
    """Store what the channel answered for a chunk: one bulk UPDATE by primary key (plain
    values, no ORM objects: the chunk's listings are written, never read whole)."""
    by_sku = {o.sku: o for o in outcomes}
    with hub.db.session() as session:
        ids = _listing_ids(session, connection.id, [u.sku for u in updates])
        now = utcnow()
        values: list[dict[str, Any]] = []
        for sent in updates:
            outcome = by_sku[sent.sku]
            row: dict[str, Any] = {"id": ids[sent.sku]}
            if outcome.status is not None and outcome.status != ListingStatus.LINKED:
                status = ListingStatus(outcome.status)
                row.update(status=status.value, message=run.clean(outcome.message), pending=False)
                failed = status not in STATES_NOT_FAILURES  # broken needs the merchant
                run.record(
                    sent.sku,
                    Outcome.FAILED if failed else Outcome.SKIPPED,
                    outcome.message or status.value,
                )
                run.count(status.value)
            elif outcome.outcome == Outcome.OK:
                if "quantity" in sent.changes:
                    row["pushed_quantity"] = sent.changes["quantity"]
                if "price" in sent.changes:
                    row["pushed_price"] = sent.changes["price"]
                row.update(pending=False, synced_at=now, message="")
                if outcome.channel_product_id:
                    row["channel_product_id"] = outcome.channel_product_id
                run.record(sent.sku, Outcome.OK, "sent " + _describe_changes(sent.changes))
            else:
                row.update(pending=True, message=run.clean(outcome.message))
                run.record(sent.sku, Outcome(outcome.outcome), outcome.message)
            values.append(row)
        if values:
            session.execute(update(Listing), values)


def _listing_ids(session: Session, connection_id: int, skus: Sequence[str]) -> dict[str, int]:
    """SKU -> listing id of a connection's listings."""
    found: dict[str, int] = {}
    for start in range(0, len(skus), 1000):
        rows = session.execute(
            select(Listing.sku, Listing.id).where(
                Listing.connection_id == connection_id,
                Listing.sku.in_(skus[start : start + 1000]),
            )
        )
        found.update((sku, listing_id) for sku, listing_id in rows)
    return found


def _clear_settled(hub: Hub, connection_id: int, up_to: int) -> None:
    """Advance the connection's cursor: changes up to ``up_to`` are sent or flagged pending."""
    with hub.db.session() as session:
        cursor = session.scalar(
            select(SyncCursor).where(
                SyncCursor.connection_id == connection_id, SyncCursor.name == LISTINGS_CURSOR
            )
        )
        if cursor is None:
            session.add(SyncCursor(connection_id=connection_id, name=LISTINGS_CURSOR, value=up_to))
        elif cursor.value < up_to:
            cursor.value = up_to
