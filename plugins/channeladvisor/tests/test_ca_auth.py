"""The authenticator: refresh before expiry and on a 401, store tokens, refused refresh."""

from __future__ import annotations

import base64
import logging
import threading
import time
from decimal import Decimal
from typing import Any

import pytest
import time_machine

from hub_channeladvisor import plugin
from hub_channeladvisor.client import auth
from hub_channeladvisor.client.api import ChannelAdvisorClient
from hub_core.channel import CatalogItem, ChannelConnection, ListingUpdate
from hub_core.errors import AuthError, ChannelError, InvalidInput, NeedsReauth
from hub_core.plugins import Registry

ITEM = CatalogItem(sku="A-1", title="A", quantity=3, price=Decimal("9.99"))
ROW = {"json": {"value": [{"ID": 11, "Sku": "A-1"}]}}


def link(connection: ChannelConnection) -> Any:
    return plugin.hub_link_listings(connection=connection, items=[ITEM])


def through_the_core(connection: ChannelConnection, operation: str, **kwargs: Any) -> Any:
    """Call an operation the way the core does: its errors and log lines leave the plugin
    masked with the connection's redactor (the plugin itself masks nothing)."""
    registry = Registry.load(load_entrypoints=False, plugins=[(plugin, "channeladvisor")])
    channel = registry.channel("channeladvisor")
    return registry.call(channel, operation, connection=connection, **kwargs)


def bearer(request: Any) -> str:
    return request.headers["Authorization"]


def test_expired_token_is_refreshed_with_basic_auth_and_stored(ca, conn, h) -> None:
    connection = conn(expires_at=time.time() - 5)
    token = ca.token()
    ca.get("Products", ROW)
    before = time.time()
    assert link(connection)[0].channel_product_id == "11"

    call = token.last_request
    expected = base64.b64encode(f"{h.APP_ID}:{h.SECRET}".encode()).decode()
    assert call.headers["Authorization"] == f"Basic {expected}"
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert call.text == f"grant_type=refresh_token&refresh_token={h.REFRESH}"
    assert bearer(ca.sent("GET")[0]) == f"Bearer {h.FRESH}"
    # Stored on the connection, so that a later command does not refresh again.
    (saved,) = connection.recorder.saved
    assert saved["access_token"] == h.FRESH
    assert before + 3600 <= saved["access_token_expires_at"] <= time.time() + 3600
    assert connection.config["access_token"] == h.FRESH


def test_a_later_command_does_not_refresh_again(ca, conn, h) -> None:
    first = conn(expires_at=time.time() - 5)
    token = ca.token()
    ca.get("Products", ROW, ROW)
    link(first)
    # A new process: nothing cached, the connection read back from the database.
    auth.reset_token_stores()
    later = conn(config=dict(first.config))
    link(later)
    assert token.call_count == 1
    assert [bearer(r) for r in ca.sent("GET")] == [f"Bearer {h.FRESH}"] * 2


@pytest.mark.parametrize(
    ("left", "refreshes"),
    [pytest.param(59, 1, id="59s-left-refresh"), pytest.param(61, 0, id="61s-left-keep")],
)
def test_refresh_happens_60_seconds_before_expiry(ca, conn, left: int, refreshes: int) -> None:
    with time_machine.travel(1_700_000_000, tick=False):
        connection = conn(expires_at=1_700_000_000 + left)
        token = ca.token()
        ca.get("Products", ROW)
        link(connection)
    assert token.call_count == refreshes


def test_token_of_unknown_age_is_used_until_a_401(ca, conn, h) -> None:
    connection = conn(expires_at=None)
    token = ca.token()
    ca.get(
        "Products",
        {
            "status_code": 401,
            "json": {"error": {"message": "Authorization has been denied for this request."}},
        },
        ROW,
    )
    link(connection)
    assert token.call_count == 1
    assert [bearer(r) for r in ca.sent("GET")] == [f"Bearer {h.ACCESS}", f"Bearer {h.FRESH}"]


def test_token_expiring_mid_run_is_refreshed_between_pages(ca, conn, h) -> None:
    with time_machine.travel(1_700_000_000, tick=False) as traveller:
        connection = conn(expires_at=1_700_000_000 + 600)
        token = ca.token()
        pages = [
            {"value": [], "@odata.nextLink": f"{h.API}/Orders?$skip=20"},
            {"value": [], "@odata.nextLink": f"{h.API}/Orders?$skip=40"},
            {"value": []},
            {"value": []},  # the cancellation check
        ]

        def page(request: Any, context: Any) -> dict[str, Any]:
            served = pages.pop(0)
            if len(pages) == 2:
                traveller.shift(3600)  # the hour passes while page 2 is read
            return served

        ca.m.get(f"{h.API}/Orders", json=page)
        list(plugin.hub_get_orders(connection=connection, days=7))
    assert token.call_count == 1
    assert [bearer(r) for r in ca.sent("GET")] == [
        f"Bearer {h.ACCESS}",
        f"Bearer {h.ACCESS}",
        f"Bearer {h.FRESH}",
        f"Bearer {h.FRESH}",
    ]


def test_401_refreshes_once_and_retries(ca, conn, h) -> None:
    connection = conn()
    token = ca.token()
    ca.get("Products", {"status_code": 401}, ROW)
    assert link(connection)[0].channel_product_id == "11"
    assert token.call_count == 1
    assert [bearer(r) for r in ca.sent("GET")] == [f"Bearer {h.ACCESS}", f"Bearer {h.FRESH}"]


def test_401_again_after_the_refresh_fails_cleanly(ca, conn, h) -> None:
    connection = conn()
    token = ca.token()
    ca.get("Products", {"status_code": 401, "json": {"error": {"message": f"bad token {h.FRESH}"}}})
    with pytest.raises(AuthError) as caught:
        through_the_core(connection, "link_listings", items=[ITEM])
    assert token.call_count == 1
    assert len(ca.sent("GET")) == 2
    assert "refused the access token again right after a refresh" in str(caught.value)
    for secret in (h.ACCESS, h.FRESH, h.REFRESH, h.SECRET):
        assert secret not in str(caught.value) + caught.value.detail


def every_operation(connection: ChannelConnection) -> list[Any]:
    """Call every operation hook; each must fail at once."""
    calls = [
        lambda: plugin.hub_link_listings(connection=connection, items=[ITEM]),
        lambda: plugin.hub_sync_listings(
            connection=connection,
            updates=[ListingUpdate("A-1", "11", {"quantity": 1}, ITEM)],
        ),
        lambda: list(plugin.hub_get_orders(connection=connection, days=7)),
        lambda: plugin.hub_acknowledge_orders(connection=connection, channel_order_ids=["1"]),
        lambda: plugin.hub_sync_orders(connection=connection, shipments=[]),
        lambda: plugin.hub_explain_order(connection=connection, ref="1", days=7),
    ]
    errors = []
    for call in calls:
        with pytest.raises(NeedsReauth) as caught:
            call()
        errors.append(caught.value)
    return errors


@pytest.mark.parametrize(
    "refusal",
    [
        pytest.param({"status_code": 400, "text": "Bad Request"}, id="plain-text-400"),
        pytest.param({"status_code": 400, "json": {"error": "invalid_grant"}}, id="json-400"),
    ],
)
def test_refused_refresh_marks_needs_reauth_and_later_operations_send_nothing(
    ca, conn, h, caplog: pytest.LogCaptureFixture, refusal: dict[str, Any]
) -> None:
    caplog.set_level(logging.DEBUG)
    connection = conn(expires_at=time.time() - 5)
    token = ca.token(refusal)
    with pytest.raises(NeedsReauth) as caught:
        link(connection)
    message = str(caught.value)
    assert "ChannelAdvisor refused the refresh token of connection 'shop'" in message
    # What happened only: the core adds the one command, the channel's reauth advice.
    assert "hub connections" not in message
    assert connection.health == "needs_reauth"
    assert connection.recorder.health == [("needs_reauth", message)]
    assert token.call_count == 1 and ca.api_sent() == []

    # Later operations, in this process and in a new one, stop before sending anything.
    sent = len(ca.m.request_history)
    every_operation(connection)
    auth.reset_token_stores()
    for error in every_operation(conn(health="needs_reauth")):
        assert "ChannelAdvisor refused the refresh token of connection 'shop'" in str(error)
    assert len(ca.m.request_history) == sent
    for secret in (h.ACCESS, h.REFRESH, h.SECRET):
        assert secret not in caplog.text + message + caught.value.detail


@pytest.mark.parametrize("status", [400, 401])
def test_invalid_client_says_to_fix_the_operator_credentials_not_to_reauthorize(
    ca, conn, h, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    caplog.set_level(logging.DEBUG)
    connection = conn(expires_at=time.time() - 5)
    token = ca.token({"status_code": status, "json": {"error": "invalid_client"}})
    with pytest.raises(AuthError) as caught:
        link(connection)
    assert not isinstance(caught.value, NeedsReauth)
    message = str(caught.value)
    assert message == (
        "ChannelAdvisor refused the application id or shared secret used by connection 'shop' "
        "(invalid_client): they belong to whoever operates the hub, not to the merchant, whose "
        "authorization is untouched (do not re-authorize). Fix them in the environment "
        "(HUB_CHANNELADVISOR_APPLICATION_ID, HUB_CHANNELADVISOR_SHARED_SECRET) or on the "
        "connection: hub connections configure shop --set application_id=... "
        "--set shared_secret=..."
    )
    # The merchant's connection is not marked; once fixed, the next operation just works.
    assert connection.health == "ok" and connection.recorder.health == []
    assert token.call_count == 1 and ca.api_sent() == []
    ca.token()
    ca.get("Products", ROW)
    assert link(connection)[0].channel_product_id == "11"
    for secret in (h.ACCESS, h.REFRESH, h.SECRET):
        assert secret not in caplog.text + message + caught.value.detail


def test_a_bare_401_from_the_token_endpoint_is_retried_once(ca, conn, h, waits) -> None:
    """No OAuth error, no documented refusal (those are 400s): one more try, not needs_reauth."""
    connection = conn(expires_at=time.time() - 5)
    token = ca.token(
        {"status_code": 401, "text": ""},
        {"json": {"access_token": h.FRESH, "expires_in": 3600}},
    )
    ca.get("Products", ROW)
    assert link(connection)[0].channel_product_id == "11"
    assert token.call_count == 2 and len(waits) == 1
    assert connection.health == "ok" and connection.recorder.health == []
    assert bearer(ca.sent("GET")[0]) == f"Bearer {h.FRESH}"


@pytest.mark.parametrize(
    "second",
    [
        pytest.param({"status_code": 401, "text": ""}, id="bare-401-twice"),
        pytest.param({"status_code": 400, "text": "Bad Request"}, id="then-plain-400"),
    ],
)
def test_a_bare_401_refused_again_marks_needs_reauth(
    ca, conn, waits, second: dict[str, Any]
) -> None:
    connection = conn(expires_at=time.time() - 5)
    token = ca.token({"status_code": 401, "text": "Unauthorized"}, second)
    with pytest.raises(NeedsReauth):
        link(connection)
    assert token.call_count == 2 and len(waits) == 1
    assert connection.health == "needs_reauth" and ca.api_sent() == []


def test_a_401_naming_invalid_grant_marks_needs_reauth_at_once(ca, conn, waits) -> None:
    connection = conn(expires_at=time.time() - 5)
    token = ca.token({"status_code": 401, "json": {"error": "invalid_grant"}})
    with pytest.raises(NeedsReauth):
        link(connection)
    assert token.call_count == 1 and waits == []
    assert connection.health == "needs_reauth" and ca.api_sent() == []


def test_token_endpoint_server_error_is_retried(ca, conn, waits) -> None:
    connection = conn(expires_at=time.time() - 5)
    token = ca.token(
        {"status_code": 503},
        {"json": {"access_token": "tok-2", "expires_in": 3600}},
    )
    ca.get("Products", ROW)
    link(connection)
    assert token.call_count == 2
    assert len(waits) == 1 and 0.5 <= waits[0] <= 1.0


def test_threads_share_one_refresh(ca, conn) -> None:
    connection = conn(expires_at=time.time() - 5)
    token = ca.token()
    client = ChannelAdvisorClient(connection)
    start = threading.Barrier(8)
    got: list[str] = []

    def work() -> None:
        start.wait()
        got.append(client.auth.token())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    assert token.call_count == 1
    assert set(got) == {"access-token-NEW"}
    # The refresh happened on a worker thread: stored once, on the owner's thread, at close.
    assert len(connection.recorder.saved) == 1


def test_missing_application_credentials_send_nothing(ca, conn, monkeypatch) -> None:
    monkeypatch.delenv("HUB_CHANNELADVISOR_APPLICATION_ID", raising=False)
    monkeypatch.delenv("HUB_CHANNELADVISOR_SHARED_SECRET", raising=False)
    connection = conn(config={"application_id": None, "shared_secret": None})
    with pytest.raises(InvalidInput) as caught:
        link(connection)
    assert "HUB_CHANNELADVISOR_APPLICATION_ID" in str(caught.value)
    assert "--set shared_secret=..." in str(caught.value)
    assert ca.m.request_history == []


def test_environment_credentials_are_used_and_redacted(ca, conn, monkeypatch, h) -> None:
    monkeypatch.setenv("HUB_CHANNELADVISOR_APPLICATION_ID", "env-app")
    monkeypatch.setenv("HUB_CHANNELADVISOR_SHARED_SECRET", "env-secret-123")
    connection = conn(config={"application_id": None, "shared_secret": None}, expires_at=0)
    token = ca.token({"status_code": 500, "text": "oops env-secret-123"})
    ca.get("Products", ROW)
    with pytest.raises(ChannelError) as caught:
        through_the_core(connection, "link_listings", items=[ITEM])
    expected = base64.b64encode(b"env-app:env-secret-123").decode()
    assert token.last_request.headers["Authorization"] == f"Basic {expected}"
    assert "env-secret-123" not in caught.value.message + caught.value.detail


def test_tokens_echoed_by_channeladvisor_never_reach_any_output(
    ca, conn, h, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"token {h.ACCESS} refresh_token={h.REFRESH} secret {h.SECRET}"
    ca.batch(
        lambda parts: (
            [
                {"status": 400, "body": {"error": {"message": echo}}},
                {"status": 503, "body": {"Message": echo}},
            ]
            if len(parts) == 2
            else [{"status": 503, "body": {"Message": echo}}]
        )
    )
    connection = conn()
    outcomes = through_the_core(
        connection,
        "sync_listings",
        updates=[
            ListingUpdate("A-1", "11", {"quantity": 1}, ITEM),
            ListingUpdate("B-2", "12", {"quantity": 2}, ITEM),
        ],
    )
    ca.get("Products", {"status_code": 500, "text": echo})
    with pytest.raises(ChannelError) as caught:
        through_the_core(conn(), "link_listings", items=[ITEM])
    # Record messages are masked where the core stores them (the run recorder), with the
    # redactor of the connection: the one that masked the error and the log lines here.
    stored = [connection.redactor.text(o.message) for o in outcomes]
    assert echo in outcomes[0].message  # the plugin masks nothing itself
    texts = [*stored, caught.value.message, caught.value.detail, caplog.text]
    assert "***" in stored[0]
    for text in texts:
        for secret in (h.ACCESS, h.REFRESH, h.SECRET):
            assert secret not in text


def test_through_the_core_a_refused_refresh_names_one_command(ca, conn, h) -> None:
    """The hub's message: what ChannelAdvisor said, then the channel's advice, once."""
    registry = Registry.load(load_entrypoints=False, plugins=[(plugin, "channeladvisor")])
    connection = conn(expires_at=time.time() - 5)
    ca.token({"status_code": 400, "json": {"error": "invalid_grant"}})
    with pytest.raises(NeedsReauth) as caught:
        registry.call(
            registry.channel("channeladvisor"), "link_listings", connection=connection, items=[ITEM]
        )
    message = caught.value.message
    assert message.startswith("Connection 'shop' must be reconnected: ChannelAdvisor refused")
    assert message.count("hub connections") == 1
    assert message.endswith(
        "run 'hub connections configure shop --set refresh_token=... --set access_token=...'."
    )
    for secret in (h.ACCESS, h.REFRESH, h.SECRET):
        assert secret not in message
