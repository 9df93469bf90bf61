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
        "broken",
        "Publishing new listings is not supported for ChannelAdvisor",
        "requires shipping mappings",
        "Released 1 held order(s)",
        "would NOT be imported",
        "PaymentStatus is Failed",
        "ShippingStatus PartiallyShipped",
        "ShippingStatus Shipped",
    ):
        assert expected in output
    # Secrets never reach the output.
    assert "sandbox-only-shared-secret" not in output
    assert "sandbox-demo-refresh-token" not in output
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert [n for n in leftovers if not n.startswith("hub-demo.db")] == []
    with sqlite3.connect(tmp_path / "hub-demo.db") as db:
        statuses = dict(db.execute("select status, count(*) from orders group by status"))
        shipments = db.execute("select count(*) from shipments where sync_status='sent'")
        assert statuses == {"partially_shipped": 1, "shipped": 1, "imported": 1}
        assert shipments.fetchone()[0] == 2


def test_demo_runs_twice_from_a_fresh_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(cli, ["demo"]).exit_code == 0
    second = CliRunner().invoke(cli, ["demo"])
    assert second.exit_code == 0, second.output
