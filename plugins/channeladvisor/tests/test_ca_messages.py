"""Messages through the CLI (issue 15): an unreachable base_url names the URL and the key to
check; retry notes on stderr are one short line each, without the query string."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from hub_channeladvisor import plugin
from hub_core.channel import CatalogItem
from hub_core.cli import cli
from hub_core.errors import ChannelError

PROFILE = 12345678


def _hub(tmp_path: Path, *args: str) -> Result:
    obj: dict[str, Any] = {}
    result = CliRunner().invoke(
        cli,
        ["--database-url", f"sqlite:///{tmp_path / 'hub.db'}", *args],
        obj=obj,
        catch_exceptions=False,
    )
    if "hub" in obj:
        obj["hub"].db.dispose()
    assert "Traceback" not in result.output, result.output
    return result


def _connect(tmp_path: Path, base_url: str, *extra: str) -> None:
    values = {
        "access_token": "access-token-OLD",
        "refresh_token": "refresh-token-ABC",
        "profile_id": str(PROFILE),
        "application_id": "app-id-1",
        "shared_secret": "shared-secret-XYZ",
        "base_url": base_url,
    }
    sets = [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]
    added = _hub(tmp_path, "connections", "add", "shop", "--channel", "channeladvisor", *sets)
    assert added.exit_code == 0, added.output


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_base_url_names_the_url_and_the_key_to_check(
    tmp_path: Path, waits: list[float]
) -> None:
    base_url = f"http://127.0.0.1:{_closed_port()}"
    _connect(tmp_path, base_url)
    result = _hub(tmp_path, "connections", "test", "shop")
    assert result.exit_code == 1
    assert f"Could not reach ChannelAdvisor at {base_url} (connection refused" in result.stdout
    assert "hub connections configure shop --set base_url=URL" in result.stdout
    # Each retry is one short note on stderr; the transport's long text is not.
    notes = result.stderr.splitlines()
    assert len(notes) == len(waits) == 4
    for note in notes:
        assert note.startswith("token refresh POST /oauth2/token: connection refused; retry ")
        assert len(note) < 80 and "HTTPConnectionPool" not in note
    assert "shared-secret-XYZ" not in result.output and "refresh-token-ABC" not in result.output


def test_an_api_request_to_an_unreachable_base_url_names_it_too(
    conn: Any, waits: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    # A valid access token: no refresh, the first request is the API's own.
    base_url = f"http://127.0.0.1:{_closed_port()}"
    item = CatalogItem(sku="A-1", title="A", quantity=1, price=None)
    with pytest.raises(ChannelError) as caught:
        plugin.hub_link_listings(connection=conn(config={"base_url": base_url}), items=[item])
    assert str(caught.value).startswith(f"Could not reach ChannelAdvisor at {base_url} (")
    assert "--set base_url=URL" in str(caught.value)
    notes = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(notes) == len(waits) == 4
    assert all(n.startswith("GET /v1/Products: connection refused; retry ") for n in notes)


def test_an_unreachable_base_url_under_json_is_one_error_document(
    tmp_path: Path, waits: list[float]
) -> None:
    base_url = f"http://127.0.0.1:{_closed_port()}"
    _connect(tmp_path, base_url)
    _hub(tmp_path, "catalog", "import", str(_catalog(tmp_path)))
    result = _hub(tmp_path, "listings", "link", "shop", "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["error"]["code"] == 1
    assert f"Could not reach ChannelAdvisor at {base_url}" in document["error"]["message"]
    assert "base_url" in document["error"]["message"]


def _catalog(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.csv"
    path.write_text("sku,title,quantity,price\nA-1,Mug,3,9.99\n")
    return path


def test_retry_notes_are_one_short_line_each_without_the_query(
    tmp_path: Path, ca: Any, waits: list[float]
) -> None:
    _connect(tmp_path, "https://ca.test")
    ca.token()
    ca.get(
        "Products",
        {"status_code": 503, "json": {"Message": "down " * 300}},
        {"status_code": 500, "text": "<html>" + "x" * 1400 + "</html>"},
        {"json": {"value": [{"ID": 11, "Sku": "A-1"}]}},
    )
    _hub(tmp_path, "catalog", "import", str(_catalog(tmp_path)))
    result = _hub(tmp_path, "listings", "link", "shop")
    assert result.exit_code == 0, result.output
    assert len(ca.sent("GET", "Products")) == 3
    assert [note.rsplit(" in ", 1)[0] for note in result.stderr.splitlines()] == [
        "GET /v1/Products: HTTP 503; retry 1",
        "GET /v1/Products: HTTP 500; retry 2",
    ]
