"""``hub demo`` tells the whole story against the embedded sandbox and leaves only its database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub_core.cli import cli


def test_demo_runs_the_whole_story_and_leaves_only_its_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    output = result.output
    for expected in (
        "$ hub listings link demo-shop",
        "skipped  GIFT-CARD-25",
        "link — run 2: ok (linked: 6, not_found: 1, ok: 6, skipped: 1)",
        "excluded (was not_found)",
        "broken",
        "Publishing new listings is not supported for ChannelAdvisor",
        "requires shipping mappings",
        "Released 1 held order(s)",
        "would NOT be imported",
        "PaymentStatus is Failed",
        "ShippingStatus PartiallyShipped",
        "ShippingStatus Shipped",
        "Fed Ex/Home Delivery is not valid for this account",
        "Corrected hub-3",
        "ok       hub-3  Sent to ChannelAdvisor.",
        "Cancelled hub-4",
    ):
        assert expected in output
    # Secrets never reach the output.
    assert "sandbox-only-shared-secret" not in output
    assert "sandbox-demo-refresh-token" not in output
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert [n for n in leftovers if not n.startswith("hub-demo.db")] == []
    with sqlite3.connect(tmp_path / "hub-demo.db") as db:
        statuses = dict(db.execute("select status, count(*) from orders group by status"))
        shipments = dict(
            db.execute("select sync_status, count(*) from shipments group by sync_status")
        )
        excluded = db.execute("select sku from listings where status='excluded'").fetchall()
        repaired = db.execute("select carrier, attempts from shipments where id=3").fetchone()
    assert statuses == {"partially_shipped": 1, "shipped": 2}
    assert shipments == {"sent": 3, "cancelled": 1}
    assert excluded == [("GIFT-CARD-25",)]
    assert repaired == ("FedEx", 2)  # refused once, then sent corrected


def test_demo_runs_twice_from_a_fresh_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(cli, ["demo"]).exit_code == 0
    second = CliRunner().invoke(cli, ["demo"])
    assert second.exit_code == 0, second.output
