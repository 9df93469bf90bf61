"""HUB_CHANNELADVISOR_READ_TIMEOUT sets the client's read timeouts (the chaos run uses it)."""

from __future__ import annotations

import pytest

from hub_channeladvisor.client.session import READ_TIMEOUT_ENV, Timeouts


def test_the_defaults_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(READ_TIMEOUT_ENV, raising=False)
    assert Timeouts.from_environment() == Timeouts()
    assert Timeouts().default == (10.0, 60.0)
    assert Timeouts().batch == (10.0, 180.0)


def test_the_variable_sets_every_read_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(READ_TIMEOUT_ENV, "2.5")
    timeouts = Timeouts.from_environment()
    assert timeouts.default == (10.0, 2.5)
    assert timeouts.batch == (10.0, 2.5)


@pytest.mark.parametrize("value", ["", "soon", "0", "-3"])
def test_an_unusable_value_keeps_the_defaults(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(READ_TIMEOUT_ENV, value)
    assert Timeouts.from_environment() == Timeouts()
