"""Property tests (hypothesis) of the OData quoting, the query encoding and the shipping-text
builder, and of SKU lookups through the sandbox's own OData parser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub_channeladvisor import plugin
from hub_channeladvisor.client import auth, limiter
from hub_channeladvisor.client.session import encode_query, odata_string
from hub_channeladvisor.orders import shipping_text
from hub_channeladvisor.schemas import SettingsSchema
from hub_core.channel import CatalogItem, ChannelConnection, ListingStatus

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


def decode_odata_string(literal: str) -> str:
    """An OData string literal read as the standard says: quoted, ``''`` for ``'``."""
    assert literal[0] == literal[-1] == "'"
    inner = literal[1:-1]
    # Every quote inside comes in pairs: a lone one would end the literal early.
    assert re.fullmatch(r"(?:[^']|'')*", inner, flags=re.DOTALL)
    return inner.replace("''", "'")


@given(texts)
def test_odata_string_round_trips(value: str) -> None:
    assert decode_odata_string(odata_string(value)) == value


@given(st.dictionaries(st.sampled_from(["$filter", "$select", "exported", "$expand"]), texts))
def test_encoded_queries_decode_to_what_was_meant(params: dict[str, str]) -> None:
    query = encode_query(params)
    assert " " not in query and "+" not in query and "#" not in query
    assert {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()} == params


carrier_text = st.one_of(st.none(), st.just(""), st.just("  "), texts)


def _half(value: Any) -> str:
    return str(value or "").strip()


def _expected(carrier: Any, klass: Any) -> str:
    parts = [p for p in (_half(carrier), _half(klass)) if p]
    return " - ".join(parts)


@given(carrier_text, carrier_text, carrier_text, carrier_text, st.booleans())
def test_shipping_text_rule(
    carrier: Any, klass: Any, requested_carrier: Any, requested_class: Any, fulfilled: bool
) -> None:
    order: dict[str, Any] = {
        "RequestedShippingCarrier": requested_carrier,
        "RequestedShippingClass": requested_class,
        # The first fulfillment is the one with the lowest ID, wherever it is listed.
        "Fulfillments": (
            [
                {"ID": 2, "ShippingCarrier": "Later", "ShippingClass": "X"},
                {"ID": 1, "ShippingCarrier": carrier, "ShippingClass": klass},
            ]
            if fulfilled
            else []
        ),
    }
    text = shipping_text(order)
    first = _expected(carrier, klass) if fulfilled else ""
    assert text == (first or _expected(requested_carrier, requested_class))
    assert text == text.strip()


# --- through the sandbox --------------------------------------------------------------------

pytest.importorskip("hub_channeladvisor_sandbox")

from hub_channeladvisor_sandbox import (  # noqa: E402
    DEMO_APPLICATION_ID,
    DEMO_PROFILE_ID,
    DEMO_REFRESH_TOKEN,
    DEMO_SHARED_SECRET,
    Sandbox,
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """One sandbox for every example (hypothesis runs many in one test)."""
    server = Sandbox()
    server.start()
    yield server
    server.stop()


# SKUs as merchants write them, quotes, slashes, percent signs and unicode included.
skus = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters="\x00"
    ),
    min_size=1,
    max_size=30,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sku=skus)
def test_any_sku_is_found_exactly_through_the_sandbox(sandbox: Sandbox, sku: str) -> None:
    limiter.reset_registry()
    auth.reset_token_stores()
    sandbox.reset()
    [product_id] = sandbox.seed_products([{"Sku": sku, "Quantity": 1}])
    connection = ChannelConnection(
        name="demo",
        channel="channeladvisor",
        config={
            "access_token": sandbox.issue_access_token(),
            "refresh_token": DEMO_REFRESH_TOKEN,
            "profile_id": DEMO_PROFILE_ID,
            "application_id": DEMO_APPLICATION_ID,
            "shared_secret": DEMO_SHARED_SECRET,
            "base_url": sandbox.base_url,
        },
        settings=SettingsSchema().load({}),
        secret_keys=("access_token", "refresh_token", "shared_secret"),
    )
    [result] = plugin.hub_link_listings(
        connection=connection, items=[CatalogItem(sku, "t", 1, Decimal(1))]
    )
    assert result.status is ListingStatus.LINKED, result.message
    assert result.channel_product_id == str(product_id)
    [entry] = sandbox.request_log()["entries"]
    assert urlsplit(f"http://x/?{entry['query']}").query == entry["query"]
