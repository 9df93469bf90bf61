"""Fixtures for the fake channel's tests: a store in a temporary directory and connections to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hub_core.channel import ChannelConnection
from hub_fake_channel.plugin import FakeConnectionSchema, FakeSettingsSchema
from hub_fake_channel.store import FakeStore

Connect = Callable[..., ChannelConnection]


@pytest.fixture
def store(tmp_path: Any) -> FakeStore:
    """An empty fake channel store file."""
    fake = FakeStore(tmp_path / "fake.json")
    fake.create()
    return fake


@pytest.fixture
def connect(store: FakeStore) -> Connect:
    """Build a connection to ``store`` the way the core does: values loaded by the schemas."""

    def build(settings: dict[str, Any] | None = None, **config: Any) -> ChannelConnection:
        values = {"store": str(store.path), **config}
        schema = FakeConnectionSchema
        return ChannelConnection(
            name="shop",
            channel="fake",
            config=schema().load(values),
            settings=FakeSettingsSchema().load(settings or {}),
            secret_keys=tuple(schema.Meta.secret_fields),
        )

    return build


@pytest.fixture
def conn(connect: Connect) -> ChannelConnection:
    """A connection to ``store`` with default settings and no API key."""
    return connect()
