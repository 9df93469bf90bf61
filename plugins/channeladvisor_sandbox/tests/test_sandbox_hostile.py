"""The sandbox's hostile-answer switches: html, redirect, invalid_json, wrong_types and
foreign_next_link (issue 11), through Python and through the admin API."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from hub_channeladvisor_sandbox import FaultRule, Sandbox
from hub_channeladvisor_sandbox.testing import SandboxApi, fetch_access_token


def last_entry(sandbox: Sandbox) -> dict[str, Any]:
    return sandbox.request_log()["entries"][-1]


def test_html_error_page(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    ca_sandbox.fail_next("html", pattern="Profiles")
    page = ca_api.get("Profiles")
    assert page.status_code == 502 and page.headers["Content-Type"].startswith("text/html")
    assert "<title>502 Bad Gateway</title>" in page.text
    assert last_entry(ca_sandbox)["fault"] == "html"
    ca_sandbox.fail_next("html", pattern="Profiles", status=200)
    assert ca_api.get("Profiles").status_code == 200
    assert ca_api.get("Profiles").json()["value"]  # one time only


def test_redirect_is_not_applied(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    pid = catalog["CG0001"]
    ca_sandbox.fail_next("redirect", pattern=f"Products({pid})", target="http://evil.example:81")
    answer = ca_api.session.patch(
        ca_api.url(f"Products({pid})"), json={"RetailPrice": 5.0}, allow_redirects=False
    )
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"http://evil.example:81/v1/Products({pid})"
    assert ca_sandbox.get_product(pid)["RetailPrice"] is None  # type: ignore[index]


def test_invalid_json_applies_the_request(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    ca_sandbox.fail_next("invalid_json", pattern="Products")
    answer = ca_api.get("Products")
    assert answer.status_code == 200
    with pytest.raises(ValueError):
        answer.json()
    assert answer.text.startswith('{"')


def test_wrong_types(ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]) -> None:
    ca_sandbox.fail_next("wrong_types", pattern="Products")
    body = ca_api.get("Products", **{"$count": "true"}).json()
    assert body["@odata.count"] == "many"
    assert all(str(row["ID"]).startswith("ID-") for row in body["value"])
    assert all(row["Sku"] == 12345 for row in body["value"])


def test_foreign_next_link_keeps_the_path(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    ca_sandbox.configure(products_page_size=2)
    ca_sandbox.fail_next("foreign_next_link", pattern="Products")
    body = ca_api.get("Products").json()
    assert len(body["value"]) == 2
    assert body["@odata.nextLink"].startswith("https://elsewhere.example/v1/Products?")
    # Without a next link of its own, the answer gets one anyway.
    ca_sandbox.fail_next("foreign_next_link", pattern="Profiles", target="http://x.example")
    assert ca_api.get("Profiles").json()["@odata.nextLink"] == "http://x.example/v1/Profiles"


def test_token_endpoint_switches(ca_sandbox: Sandbox) -> None:
    ca_sandbox.fail_next("redirect", pattern="oauth2/token")
    answer = requests.post(f"{ca_sandbox.base_url}/oauth2/token", allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    assert answer.headers["Location"] == "https://elsewhere.example/oauth2/token"
    ca_sandbox.fail_next("html", pattern="oauth2/token")
    assert fetch_access_token(ca_sandbox.base_url).status_code == 502


def test_admin_api_takes_the_new_keys_and_checks_them(ca_sandbox: Sandbox) -> None:
    url = f"{ca_sandbox.base_url}/_sandbox/faults"
    added = requests.post(
        url, json={"add": {"kind": "redirect", "status": 301, "target": "http://a.b"}}, timeout=10
    )
    assert added.status_code == 200
    assert (
        added.json()["rules"][0] | {"status": 301, "target": "http://a.b"}
        == (added.json()["rules"][0])
    )
    for rule, words in [
        ({"kind": "redirect", "status": 200}, "301, 302"),
        ({"kind": "html", "target": "http://a.b"}, "takes no target"),
        ({"kind": "invalid_json", "status": 500}, "takes no status"),
        ({"kind": "foreign_next_link", "target": "evil"}, "scheme://host"),
    ]:
        refused = requests.post(url, json={"add": rule}, timeout=10)
        assert refused.status_code == 400 and words in refused.json()["error"], refused.text


def test_hostile_kinds_in_batch_parts() -> None:
    assert FaultRule("wrong_types").matches("GET", "/v1/Products", in_batch=True)
    for kind in ("html", "redirect", "invalid_json", "foreign_next_link"):
        assert not FaultRule(kind).matches("GET", "/v1/Products", in_batch=True)
        assert FaultRule(kind).matches("GET", "/v1/Products", in_batch=False)
