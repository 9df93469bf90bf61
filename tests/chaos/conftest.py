"""What the chaos tests with workers need besides PostgreSQL (``postgres_*`` fixtures)."""

from __future__ import annotations

import os

import pytest

#: A Redis database for chaos runs only: the broker's unacknowledged-task index is shared by
#: every queue of a database, and chaos workers hand out again what is a few seconds
#: unacknowledged (``bench/chaos.py`` uses the same one by default).
CHAOS_REDIS_URL = os.environ.get("HUB_TEST_CHAOS_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture(scope="session")
def chaos_redis() -> str:
    """The chaos Redis URL when it answers; else skip naming it (fail under ``CI=true``)."""
    from kombu import Connection

    try:
        with Connection(CHAOS_REDIS_URL, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:
        reason = f"Redis is unreachable at {CHAOS_REDIS_URL} ({exc.__class__.__name__}: {exc})"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"{reason}. CI=true requires Redis.", pytrace=False)
        pytest.skip(reason)
    return CHAOS_REDIS_URL
