"""Shipping mappings: a channel's shipping text (matched exactly) -> the hub's policy."""

from __future__ import annotations

import difflib
import shlex
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub_core.errors import InvalidInput, NotFound
from hub_core.models import Connection, Order, ShippingMapping
from hub_core.services.connections import get_connection
from hub_core.services.context import Hub

HELD = "held"
IMPORTED = "imported"


def mappings_of(session: Session, connection: Connection) -> dict[str, str]:
    """The connection's mappings: channel text -> policy."""
    rows = session.execute(
        select(ShippingMapping.channel_text, ShippingMapping.policy).where(
            ShippingMapping.connection_id == connection.id
        )
    )
    return {text: policy for text, policy in rows}


def shell_word(text: str) -> str:
    """``text`` as one word of a shell command: ``"USPS - Priority"``, ready to paste."""
    if text and all(c.isalnum() or c in "-_.,:/@+=" for c in text):
        return text
    if not any(c in text for c in '"$`\\!'):
        return f'"{text}"'
    return shlex.quote(text)


def hold_reason(text: str, mappings: dict[str, str], connection_name: str) -> str:
    """Why an order with shipping ``text`` is held: the text, the nearest mapping, the fix.

    The fix is the command to paste, with the connection and the text filled in; only the
    policy, which is the merchant's choice, is left to fill.
    """
    shown = text or "(empty)"
    reason = f"no shipping mapping for the channel shipping text {shown!r}"
    nearest = difflib.get_close_matches(text, list(mappings), n=1, cutoff=0.0) if mappings else []
    if nearest:
        reason += f"; nearest mapping: {nearest[0]!r}"
    return reason + (
        f"; add one with: hub shipping-mappings add {shell_word(connection_name)} "
        f"--channel-text {shell_word(text)} --policy POLICY"
    )


def add_mapping(hub: Hub, connection_name: str, channel_text: str, policy: str) -> dict[str, Any]:
    """Add a mapping and release the held orders whose shipping text it matches."""
    if not channel_text.strip():
        raise InvalidInput("--channel-text must not be empty.")
    if not policy.strip():
        raise InvalidInput("--policy must not be empty.")
    with hub.db.session() as session:
        connection = get_connection(session, connection_name)
        existing = session.scalar(
            select(ShippingMapping).where(
                ShippingMapping.connection_id == connection.id,
                ShippingMapping.channel_text == channel_text,
            )
        )
        if existing is not None:
            raise InvalidInput(
                f"{connection_name!r} already maps {channel_text!r} to {existing.policy!r}. "
                f"Remove it first with 'hub shipping-mappings remove {connection_name} "
                f'--channel-text "{channel_text}"\'.'
            )
        session.add(
            ShippingMapping(connection_id=connection.id, channel_text=channel_text, policy=policy)
        )
        held = session.scalars(
            select(Order).where(
                Order.connection_id == connection.id,
                Order.status == HELD,
                Order.shipping_text == channel_text,
            )
        ).all()
        for order in held:
            order.status = IMPORTED
            order.hold_reason = None
            order.shipping_policy = policy
        return {
            "connection": connection_name,
            "channel_text": channel_text,
            "policy": policy,
            "released_orders": [o.channel_order_id for o in held],
        }


def list_mappings(hub: Hub, connection_name: str) -> list[dict[str, Any]]:
    """The connection's mappings."""
    with hub.db.session() as session:
        connection = get_connection(session, connection_name)
        return [
            {"channel_text": text, "policy": policy}
            for text, policy in sorted(mappings_of(session, connection).items())
        ]


def remove_mapping(hub: Hub, connection_name: str, channel_text: str) -> None:
    """Remove a mapping (orders already imported keep their policy)."""
    with hub.db.session() as session:
        connection = get_connection(session, connection_name)
        mapping = session.scalar(
            select(ShippingMapping).where(
                ShippingMapping.connection_id == connection.id,
                ShippingMapping.channel_text == channel_text,
            )
        )
        if mapping is None:
            known = ", ".join(repr(t) for t in sorted(mappings_of(session, connection))) or "none"
            raise NotFound(
                f"{connection_name!r} has no mapping for {channel_text!r}. Mappings: {known}."
            )
        session.delete(mapping)
