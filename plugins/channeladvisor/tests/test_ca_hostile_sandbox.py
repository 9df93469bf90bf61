"""Hostile answers through the CLI, served by the sandbox's fault switches (issue 11).

A second sandbox plays the foreign host: its request log must stay empty, so no request (and
no token) ever left the connection's base URL. What was stored before a failure stays stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

pytest.importorskip("hub_channeladvisor_sandbox")

from hub_channeladvisor.client import auth, limiter
from hub_channeladvisor_sandbox import (
    DEMO_APPLICATION_ID,
    DEMO_PROFILE_ID,
    DEMO_REFRESH_TOKEN,
    DEMO_SHARED_SECRET,
    Sandbox,
)
from hub_channeladvisor_sandbox import testing as sandbox_testing
from hub_core.cli import cli

#: The sandbox's own fixture: a fresh sandbox on a free port, stopped after the test.
ca_sandbox = sandbox_testing.ca_sandbox


@pytest.fixture(autouse=True)
def _fresh_registries() -> Iterator[None]:
    limiter.reset_registry()
    auth.reset_token_stores()
    yield
    limiter.reset_registry()
    auth.reset_token_stores()


@pytest.fixture
def elsewhere() -> Iterator[Sandbox]:
    """Another host (a second sandbox on another port) that must never hear from the hub."""
    other = Sandbox()
    other.start()
    yield other
    other.stop()


def heard(sandbox: Sandbox) -> int:
    """How many requests a sandbox received (API and token calls)."""
    return len(sandbox.request_log()["entries"])


class Hub:
    """``hub --database-url ...`` in-process, asserting exit code and no traceback."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(cli, ["--database-url", self.url, *args], obj={})
        assert "Traceback" not in result.output and "Internal error" not in result.output, (
            result.output
        )
        assert result.exit_code == code, (args, result.exit_code, result.output)
        return result


@pytest.fixture
def hub(tmp_path: Path, ca_sandbox: Sandbox) -> Hub:
    """The CLI with a connection ``ca`` to the sandbox and ``UPS - Ground`` mapped."""
    run = Hub(f"sqlite:///{tmp_path / 'hub.db'}")
    run(
        "connections", "add", "ca", "--channel", "channeladvisor",
        "--set", f"access_token={ca_sandbox.issue_access_token()}",
        "--set", f"refresh_token={DEMO_REFRESH_TOKEN}",
        "--set", f"profile_id={DEMO_PROFILE_ID}",
        "--set", f"application_id={DEMO_APPLICATION_ID}",
        "--set", f"shared_secret={DEMO_SHARED_SECRET}",
        "--set", f"base_url={ca_sandbox.base_url}",
    )  # fmt: skip
    run("shipping-mappings", "add", "ca", "--channel-text", "UPS - Ground", "--policy", "std")
    return run


def seed(sandbox: Sandbox, count: int) -> list[int]:
    return sandbox.seed_orders([{"Items": [{"Sku": "A", "Quantity": 1}]}] * count)


def stored(hub: Hub) -> int:
    return len(json.loads(hub("orders", "list", "--json").stdout))


def test_a_foreign_next_link_fails_the_run_and_keeps_what_was_read(
    hub: Hub, ca_sandbox: Sandbox, elsewhere: Sandbox
) -> None:
    ca_sandbox.configure(orders_page_size=2)
    seed(ca_sandbox, 3)
    hub("orders", "get", "ca")
    assert stored(hub) == 3
    seed(ca_sandbox, 3)
    ca_sandbox.fail_next(
        "foreign_next_link", pattern="/v1/Orders", method="GET", target=elsewhere.base_url
    )
    result = hub("orders", "get", "ca", code=1)
    host = elsewhere.base_url.split("://", 1)[1]
    assert f"another host: a next-page link (@odata.nextLink) to {host}" in result.output
    assert heard(elsewhere) == 0
    # The first page's two orders were stored and exported; the third comes next time.
    assert stored(hub) == 5
    assert ca_sandbox.request_log(entries=False)["counts"]["POST /v1/Orders({id})/Export"] == 5
    hub("orders", "get", "ca")
    assert stored(hub) == 6
    assert heard(elsewhere) == 0


def test_a_redirect_of_the_token_call_is_not_followed(
    hub: Hub, ca_sandbox: Sandbox, elsewhere: Sandbox
) -> None:
    seed(ca_sandbox, 1)
    ca_sandbox.expire_access_tokens()
    ca_sandbox.fail_next("redirect", pattern="/oauth2/token", target=elsewhere.base_url)
    result = hub("orders", "get", "ca", code=1)
    assert "redirect (HTTP 302) to 127.0.0.1" in result.output
    assert DEMO_SHARED_SECRET not in result.output and DEMO_REFRESH_TOKEN not in result.output
    assert heard(elsewhere) == 0 and stored(hub) == 0


def test_a_redirect_of_an_api_call_is_not_followed(
    hub: Hub, ca_sandbox: Sandbox, elsewhere: Sandbox
) -> None:
    seed(ca_sandbox, 1)
    ca_sandbox.fail_next("redirect", pattern="/v1/Orders", status=307, target=elsewhere.base_url)
    assert "redirect (HTTP 307)" in hub("orders", "get", "ca", code=1).output
    assert heard(elsewhere) == 0 and stored(hub) == 0


@pytest.mark.parametrize(
    ("kind", "options", "words"),
    [
        ("html", {"status": 200}, "an HTML page ('200 Error')"),
        ("invalid_json", {}, "text that is not JSON"),
        ("wrong_types", {}, "whose ID is 'ID-"),
    ],
)
def test_unreadable_order_lists_fail_the_run_and_store_nothing(
    hub: Hub, ca_sandbox: Sandbox, kind: str, options: dict[str, Any], words: str
) -> None:
    seed(ca_sandbox, 2)
    ca_sandbox.fail_next(kind, pattern="/v1/Orders", method="GET", **options)
    result = hub("orders", "get", "ca", code=1)
    assert words in result.output, result.output
    assert stored(hub) == 0
    # Nothing was exported: the next run imports both.
    hub("orders", "get", "ca")
    assert stored(hub) == 2


def test_wrong_types_in_lookups_leave_skus_unlinked(
    hub: Hub, ca_sandbox: Sandbox, tmp_path: Path
) -> None:
    ca_sandbox.seed_products([{"Sku": "A", "Quantity": 1}, {"Sku": "B", "Quantity": 1}])
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("sku,title,quantity,price\nA,Apple,1,1\nB,Bean,1,1\n")
    hub("catalog", "import", str(catalog))
    ca_sandbox.fail_next("wrong_types", 2, pattern="/v1/Products", scope="batch")
    result = hub("listings", "link", "ca", code=4)
    assert "whose ID is 'ID-" in result.output
    hub("listings", "link", "ca")
    assert "linked" in hub("listings", "list", "ca").stdout
