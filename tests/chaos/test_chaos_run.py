"""A short random chaos run (``bench/chaos.py``): faults at a rate of 0.2 and SIGKILLs at
random points, then everything settled; nothing is duplicated, lost or mismatched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CHAOS = Path(__file__).resolve().parents[2] / "bench" / "chaos.py"


def _short_run(*options: str, cycles: int = 2, kills: int = 3) -> dict[str, Any]:
    """Run the chaos benchmark briefly; its figures, every exactly-once count checked."""
    result = subprocess.run(
        [sys.executable, str(CHAOS), "--cycles", str(cycles), "--kills", str(kills),
         "--fault-rate", "0.2", "--seed", "11", "--products", "8", *options, "--json"],
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr[-3000:]
    figures: dict[str, Any] = json.loads(result.stdout)
    assert figures["kills"] >= 1, figures
    assert figures["faults"] >= 1, figures
    assert figures["eligible_orders"] >= cycles, figures
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
    return figures


# A few minutes on a loaded 2-core machine: more than the suite's default timeout.
@pytest.mark.timeout(900)
def test_a_short_chaos_run_loses_and_duplicates_nothing() -> None:
    figures = _short_run("--via", "cli")
    assert figures["database"] == "sqlite"
    assert figures["kills_by_process"] == {"cli": figures["kills"]}


@pytest.mark.timeout(900)
def test_a_short_chaos_run_killing_workers_loses_and_duplicates_nothing(
    postgres_database: str, chaos_redis: str
) -> None:
    """Every operation a task of a worker on PostgreSQL and Redis (one cycle: a killed task
    waits for the broker's visibility timeout); the killed worker's task is handed out again
    to the restarted one."""
    figures = _short_run(
        "--via", "worker", "--postgres", postgres_database, "--broker", chaos_redis,
        cycles=1, kills=2,
    )  # fmt: skip
    assert figures["database"] == "postgresql"
    assert figures["kills_by_process"] == {"worker": figures["kills"]}
    assert figures["operations_by_process"] == {"worker": 4}
    # Each task in hand at a kill came back; a task outliving the visibility timeout may too.
    assert figures["redeliveries"] >= figures["worker_tasks_killed"] >= 1, figures
