"""No secret anywhere (issue 11, deliverable 3): a whole story of CLI commands with known secret
values, on the fake channel and on the ChannelAdvisor sandbox (its access token expires on the
way and is refreshed, a refresh token is revoked, a shared secret is wrong for a while, the key
is rotated), then every captured stdout and stderr, the log, every row of the database (run
records included) and the raw database file are searched for each secret: zero hits.
"""

from __future__ import annotations

import csv
import logging
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hub_channeladvisor_sandbox import DEMO_PROFILE_ID, Sandbox
from hub_channeladvisor_sandbox.demo import CATALOG, ORDERS, PRODUCTS
from hub_core.db import Database
from hub_core.plugins import Registry
from hub_core.services import Hub
from hub_core.services.connections import open_run
from hub_fake_channel.store import FakeStore

APPLICATION_ID = "story-application"
SHARED_SECRET = "story-shared-secret-5e1c0a7b"
REFRESH_TOKEN = "story-refresh-token-93d2f6e8"
FAKE_API_KEY = "story-fake-api-key-4b7a19c3"
CA = "ca-shop"
FAKE = "fake-shop"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A ChannelAdvisor sandbox that knows the story's application and refresh token."""
    started = Sandbox(seed=11)
    started.start()
    try:
        started.add_application(APPLICATION_ID, SHARED_SECRET)
        started.add_refresh_token(REFRESH_TOKEN, APPLICATION_ID, [DEMO_PROFILE_ID])
        started.seed_products(
            [
                {"Sku": sku, "Title": title, "Quantity": qty, "BuyItNowPrice": price}
                for sku, title, qty, price in PRODUCTS
            ]
        )
        yield started
    finally:
        started.stop()


class Transcript:
    """Every stdout and stderr of the story's commands, with what each was."""

    def __init__(self, cli: Any) -> None:
        self.cli = cli
        self.outputs: list[tuple[str, str]] = []

    def __call__(self, *args: str, code: int | None = 0) -> Any:
        result = self.cli(*args, code=code)
        command = "hub " + " ".join(args)
        self.outputs += [
            (f"{command} (stdout)", result.stdout),
            (f"{command} (stderr)", result.stderr),
        ]
        return result


def _issued_access_tokens(sandbox: Sandbox) -> set[str]:
    return set(sandbox.credentials.access_tokens)


def test_a_whole_story_leaves_no_secret_in_output_logs_records_or_the_database_file(
    tmp_path: Path,
    hub_cli: Any,
    sandbox: Sandbox,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    db_snapshot: Callable[[str], dict[str, list[tuple[Any, ...]]]],
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, requests and urllib3 included
    monkeypatch.delenv("HUB_CHANNELADVISOR_SHARED_SECRET", raising=False)
    db_path = tmp_path / "story.db"
    url = f"sqlite:///{db_path}"
    hub = Transcript(type(hub_cli)(url))
    first_access_token = sandbox.issue_access_token(REFRESH_TOKEN)
    store = FakeStore(tmp_path / "fake.json")
    store.create()
    for sku, title, *_ in CATALOG[:4]:
        store.add_product(sku, title, 0, "1.00")
    catalog = tmp_path / "catalog.csv"
    with catalog.open("w", newline="") as handle:
        csv.writer(handle).writerows([("sku", "title", "quantity", "price"), *CATALOG])

    # Connect both channels, with every secret given on the command line.
    hub("connections", "add", CA, "--channel", "channeladvisor",
        "--set", f"access_token={first_access_token}",
        "--set", f"refresh_token={REFRESH_TOKEN}",
        "--set", f"profile_id={DEMO_PROFILE_ID}",
        "--set", f"application_id={APPLICATION_ID}",
        "--set", f"shared_secret={SHARED_SECRET}",
        "--set", f"base_url={sandbox.url}", "--json")  # fmt: skip
    hub("connections", "add", FAKE, "--channel", "fake",
        "--set", f"store={store.path}", "--set", f"api_key={FAKE_API_KEY}")  # fmt: skip
    for name in (CA, FAKE):
        hub("connections", "test", name)
        hub("connections", "show", name)
        hub("connections", "show", name, "--json")
    hub("connections", "list")
    hub("connections", "list", "--json")
    hub("secrets", "status")

    # Catalog and listings; the access token expires half-way and is refreshed.
    hub("catalog", "import", str(catalog))
    for name in (CA, FAKE):
        hub("listings", "link", name, "--json", code=None)
        hub("listings", "sync", name, "--dry-run")
    assert sandbox.expire_access_tokens() >= 1
    hub("catalog", "set", "MUG-12OZ", "--quantity", "35")
    for name in (CA, FAKE):
        hub("listings", "sync", name, "--json")
        hub("listings", "list", name, "--json")

    # Orders: mappings, import, ship, send tracking back.
    sandbox.seed_orders(ORDERS[:2])
    store.add_order([("TSHIRT-M", 1)], shipping_text="UPS - Ground")
    for name in (CA, FAKE):
        for text in ("UPS - Ground", "USPS - Priority Mail"):
            hub("shipping-mappings", "add", name, "--channel-text", text, "--policy", "standard")
        hub("orders", "get", name, "--json")
    orders = hub.cli.json("orders", "list")
    assert {o["status"] for o in orders} == {"imported"} and len(orders) == 3
    for order in orders:
        connection = CA if order["channel_order_id"].isdigit() else FAKE
        hub("orders", "ship", connection, order["channel_order_id"], "--tracking", "1Z999",
            "--carrier", "UPS", "--class", "Ground")  # fmt: skip
        hub("orders", "show", connection, order["channel_order_id"], "--json")
    for name in (CA, FAKE):
        hub("orders", "sync", name, "--json")
        hub("run", name, "--json", code=None)

    # The key is rotated; everything still works with the new one.
    hub("secrets", "rotate-key")
    hub("secrets", "status", "--json")
    hub("connections", "test", CA)

    # Failures carry no secret either: a wrong shared secret, then a revoked refresh token.
    assert sandbox.expire_access_tokens() >= 1
    hub("connections", "configure", CA, "--set", f"shared_secret={SHARED_SECRET}-wrong")
    hub("connections", "test", CA, code=1)
    hub("catalog", "set", "MUG-12OZ", "--quantity", "36")
    hub("listings", "sync", CA, code=1)
    hub("connections", "configure", CA, "--set", f"shared_secret={SHARED_SECRET}")
    hub("connections", "configure", CA, "--set", f"access_token={first_access_token}x",
        "--set", "no_such_key=1", code=2)  # fmt: skip
    refreshed = _issued_access_tokens(sandbox)
    assert sandbox.revoke_refresh_token(REFRESH_TOKEN)
    hub("connections", "test", CA, code=1)
    hub("listings", "sync", CA, code=1)
    hub("run", CA, "--json", code=1)
    for run in hub.cli.json("runs", "list"):
        hub("runs", "show", str(run["run_id"]))
        hub("runs", "show", str(run["run_id"]), "--json")
    hub("connections", "show", CA)

    # The story did what it says: tokens were refreshed and secrets were used and stored.
    secrets = {
        "shared secret": SHARED_SECRET,
        "refresh token": REFRESH_TOKEN,
        "fake api key": FAKE_API_KEY,
        **{f"access token {n}": token for n, token in enumerate(sorted(refreshed))},
        "first access token": first_access_token,
    }
    assert len(refreshed - {first_access_token}) >= 2, "the access token was never refreshed"
    assert store.calls()  # the fake channel was called
    assert db_path.exists() and stat.S_IMODE(db_path.stat().st_mode) == 0o600

    # Search: every output, the log, every row of every table, the raw database file.
    haystacks = list(hub.outputs)
    haystacks.append(("the log", caplog.text))
    rows = db_snapshot(url)
    assert rows["runs"] and rows["run_records"] and rows["connections"]
    haystacks.append(("database rows", repr(rows)))
    raw = b"".join(p.read_bytes() for p in (db_path, Path(f"{db_path}-wal")) if p.exists()).decode(
        "latin-1"
    )
    haystacks.append(("the raw database file", raw))
    hits = [(where, what) for where, text in haystacks for what, v in secrets.items() if v in text]
    assert hits == []
    # The search would have found them: plain values of the story are in each kind of haystack.
    assert "story-application" in raw and "UPS - Ground" in raw
    assert any("MUG-12OZ" in text for _, text in hub.outputs)
    assert "UPS - Ground" in haystacks[-2][1]


def test_the_stored_secrets_are_the_ones_given_and_survive_a_rotation(
    hub_cli: Any, store: FakeStore, registry: Registry
) -> None:
    hub_cli("connections", "add", FAKE, "--channel", "fake",
            "--set", f"store={store.path}", "--set", f"api_key={FAKE_API_KEY}")  # fmt: skip
    hub_cli("secrets", "rotate-key")
    hub = Hub(db=Database(hub_cli.url), registry=registry)
    try:
        view = open_run(hub, FAKE).connection
        assert view.config["api_key"] == FAKE_API_KEY
    finally:
        hub.db.dispose()
