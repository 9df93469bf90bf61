"""A short random chaos run (``bench/chaos.py``): faults at a rate of 0.2 and SIGKILLs at
random points, then everything settled; nothing is duplicated, lost or mismatched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHAOS = Path(__file__).resolve().parents[2] / "bench" / "chaos.py"


def test_a_short_chaos_run_loses_and_duplicates_nothing() -> None:
    result = subprocess.run(
        [sys.executable, str(CHAOS), "--cycles", "2", "--kills", "3", "--fault-rate", "0.2",
         "--seed", "11", "--products", "8", "--json"],
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["kills"] >= 1, figures
    assert figures["faults"] >= 1, figures
    assert figures["eligible_orders"] >= 2, figures
    broken = {
        key: figures[key]
        for key in (
            "duplicate_orders",
            "lost_orders",
            "unacknowledged_orders",
            "duplicate_shipments",
            "lost_shipments",
            "mismatched_listings",
        )
    }
    assert broken == dict.fromkeys(broken, 0), figures
    assert result.returncode == 0
