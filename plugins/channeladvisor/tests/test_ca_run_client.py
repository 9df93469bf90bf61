"""One ChannelAdvisor client per run (issue 9): every hook call of a run uses the client kept
on the run's connection (session, token store and limiter included); the core closes it when
the run ends, and the next run builds its own."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hub_channeladvisor import plugin
from hub_channeladvisor.client import api


def test_the_hook_calls_of_a_run_share_one_client(
    ca: Any, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[api.ChannelAdvisorClient] = []
    init = api.ChannelAdvisorClient.__init__

    def counting(client: api.ChannelAdvisorClient, *args: Any, **kwargs: Any) -> None:
        built.append(client)
        init(client, *args, **kwargs)

    monkeypatch.setattr(api.ChannelAdvisorClient, "__init__", counting)
    export = ca.m.post(re.compile(r".*/Orders\(\d+\)/Export$"), status_code=204)
    connection = conn()

    plugin.hub_acknowledge_orders(connection=connection, channel_order_ids=["1"])
    plugin.hub_acknowledge_orders(connection=connection, channel_order_ids=["2"])

    assert export.call_count == 2
    assert len(built) == 1 and connection.resources == {plugin.CLIENT: built[0]}
    closed: list[int] = []
    monkeypatch.setattr(built[0].session, "close", lambda: closed.append(1))

    connection.close_resources()  # what the core does when the run ends

    assert closed == [1] and connection.resources == {}
    plugin.hub_acknowledge_orders(connection=connection, channel_order_ids=["3"])
    assert len(built) == 2 and export.call_count == 3  # the next run, its own client
