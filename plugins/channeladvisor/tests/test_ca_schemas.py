"""The connection and settings schemas, and what the plugin declares."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from hub_channeladvisor import plugin
from hub_channeladvisor.schemas import ConnectionSchema, SettingsSchema
from hub_core.plugins import Registry, get_plugin_manager

REQUIRED = {"access_token": "a", "refresh_token": "r", "profile_id": "12345678"}


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_CHANNELADVISOR_APPLICATION_ID", raising=False)
    monkeypatch.delenv("HUB_CHANNELADVISOR_SHARED_SECRET", raising=False)


def test_connection_defaults_and_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_CHANNELADVISOR_APPLICATION_ID", "app")
    monkeypatch.setenv("HUB_CHANNELADVISOR_SHARED_SECRET", "sec")
    loaded = ConnectionSchema().load(REQUIRED)
    assert loaded == {
        "access_token": "a",
        "refresh_token": "r",
        "profile_id": 12345678,
        # Not copied from the environment: the operator may rotate them.
        "application_id": None,
        "shared_secret": None,
        "base_url": "https://api.channeladvisor.com",
        "access_token_expires_at": None,
    }
    assert ConnectionSchema.Meta.secret_fields == ("access_token", "refresh_token", "shared_secret")


def test_connection_names_every_missing_key_at_once(no_env: None) -> None:
    with pytest.raises(ValidationError) as caught:
        ConnectionSchema().load({})
    messages = caught.value.messages
    assert set(messages) == {
        "access_token",
        "refresh_token",
        "profile_id",
        "application_id",
        "shared_secret",
    }
    assert messages["application_id"] == [
        "application_id is missing: set it on the connection with --set application_id=... "
        "or in the environment variable HUB_CHANNELADVISOR_APPLICATION_ID."
    ]
    assert "HUB_CHANNELADVISOR_SHARED_SECRET" in messages["shared_secret"][0]
    assert "--set shared_secret=..." in messages["shared_secret"][0]


def test_connection_refuses_unknown_keys_and_accepts_a_local_base_url(no_env: None) -> None:
    values = {**REQUIRED, "application_id": "a", "shared_secret": "s"}
    loaded = ConnectionSchema().load({**values, "base_url": "http://127.0.0.1:8765/"})
    assert loaded["base_url"] == "http://127.0.0.1:8765"
    with pytest.raises(ValidationError) as caught:
        ConnectionSchema().load({**values, "profile": "1"})
    assert "profile" in caught.value.messages


def test_partial_load_does_not_demand_credentials(no_env: None) -> None:
    assert ConnectionSchema().load({"refresh_token": "new"}, partial=True) == {
        "refresh_token": "new"
    }


def test_settings_defaults_are_the_contract() -> None:
    assert SettingsSchema().load({}) == {
        "order_days": 7,
        "checkout_statuses": "Completed,CompletedAndVisited,CompletedOffline",
        "payment_statuses": "Cleared,Submitted,Deposited",
        "shipping_statuses": "Unshipped,PartiallyShipped,PendingShipment",
        "quantity_update_type": "UnShipped",
        "distribution_center_id": 0,
        "price_field": "BuyItNowPrice",
    }


def test_settings_normalize_and_report_every_error() -> None:
    loaded = SettingsSchema().load(
        {"payment_statuses": " cleared , Failed,Cleared", "quantity_update_type": "absolute"}
    )
    assert loaded["payment_statuses"] == "Cleared,Failed"
    assert loaded["quantity_update_type"] == "Absolute"
    with pytest.raises(ValidationError) as caught:
        SettingsSchema().load(
            {
                "checkout_statuses": "Completed,Paid",
                "shipping_statuses": "",
                "quantity_update_type": "Unconfirmed",
                "price_field": "Title",
                "order_days": 0,
                "distribution_center_id": -1,
            }
        )
    messages = caught.value.messages
    assert set(messages) == {
        "checkout_statuses",
        "shipping_statuses",
        "quantity_update_type",
        "price_field",
        "order_days",
        "distribution_center_id",
    }
    assert messages["checkout_statuses"] == [
        "'Paid' is not a CheckoutStatus; valid values: NotVisited, Completed, Visited, "
        "CompletedAndVisited, Disabled, CompletedOffline, OnHold."
    ]
    assert "BuyItNowPrice" in messages["price_field"][0]


def test_the_plugin_declares_the_channel_through_its_entry_point() -> None:
    registry = Registry(get_plugin_manager(load_entrypoints=True))
    channel = registry.channel("channeladvisor")
    assert channel.title == "ChannelAdvisor"
    assert channel.describe() == {
        "name": "channeladvisor",
        "capabilities": {
            "link_listings": "supported",
            "sync_listings": "supported",
            "publish_listings": "not_supported",
            "get_orders": "supported",
            "sync_orders": "supported",
        },
        "requirements": {"shipping_mappings": "required"},
    }
    assert channel.connection_schema is ConnectionSchema
    assert channel.plugin is plugin or channel.plugin.__name__ == plugin.__name__
