"""GET /v1/Products with OData options, Products(ID) GET/PATCH/PUT/DELETE, $count, paging."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from hub_channeladvisor_sandbox import DEMO_PROFILE_ID, OTHER_PROFILE_ID, Sandbox
from hub_channeladvisor_sandbox.testing import SandboxApi

P = DEMO_PROFILE_ID


def skus(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [row["Sku"] for row in response.json()["value"]]


def odata_error(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == ""
    return body["error"]["message"]


def test_lookup_by_sku_and_profile(ca_api: SandboxApi, catalog: dict[str, int]) -> None:
    response = ca_api.get(
        "Products",
        **{"$filter": f"Sku eq 'AL-85590-SHOE' and ProfileID eq {P}", "$select": "ID,Sku"},
    )
    body = response.json()
    assert body == {
        "@odata.context": f"{ca_api.base_url}/v1/$metadata#Products(ID,Sku)",
        "value": [{"ID": catalog["AL-85590-SHOE"], "Sku": "AL-85590-SHOE"}],
    }


def test_without_profile_filter_every_authorized_profile_answers(
    ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    rows = ca_api.get(
        "Products", **{"$filter": "Sku eq 'AL-85590-SHOE'", "$select": "ID,Sku,ProfileID"}
    ).json()["value"]
    assert sorted(r["ProfileID"] for r in rows) == [DEMO_PROFILE_ID, OTHER_PROFILE_ID]


def test_sku_comparison_is_case_insensitive(ca_api: SandboxApi, catalog: dict[str, int]) -> None:
    assert skus(
        ca_api.get("Products", **{"$filter": f"Sku eq 'al-85590-shoe' and ProfileID eq {P}"})
    ) == ["AL-85590-SHOE"]
    assert skus(ca_api.get("Products", **{"$filter": "Sku eq 'LOWER-SKU'"})) == ["lower-sku"]


def test_quote_escaping_and_missing_sku(ca_api: SandboxApi, catalog: dict[str, int]) -> None:
    assert skus(ca_api.get("Products", **{"$filter": "Sku eq 'O''NEIL-CAP'"})) == ["O'NEIL-CAP"]
    empty = ca_api.get("Products", **{"$filter": "Sku eq 'OLD''S-SKU' and ProfileID eq 1"})
    assert empty.json()["value"] == []


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ("ID eq {CG0001}", ["CG0001"]),
        (
            "ID ne {CG0001} and ProfileID eq 12345678 and Sku ne 'MUG-1'",
            ["AL-85590-SHOE", "O'NEIL-CAP", "lower-sku"],
        ),
        ("UPC eq '012345678905'", ["AL-85590-SHOE"]),
        ("BuyItNowPrice gt 20 and ProfileID eq 12345678", ["AL-85590-SHOE", "CG0001"]),
        ("BuyItNowPrice ge 24.5 and BuyItNowPrice le 24.5", ["CG0001"]),
        ("BuyItNowPrice lt 9 and ProfileID eq 12345678", ["lower-sku"]),
        ("(Sku eq 'CG0001' or Sku eq 'MUG-1') and ProfileID eq 12345678", ["CG0001", "MUG-1"]),
        ("not (ProfileID eq 12345678)", ["AL-85590-SHOE", "OTHER-ONLY"]),
        ("ProfileID eq 12345678 and TotalAvailableQuantity eq null", ["CG0001"]),
        ("TotalAvailableQuantity gt 10 and ProfileID eq 12345678", ["AL-85590-SHOE", "MUG-1"]),
        ("UpdateDateUtc gt 2020-01-01 and ProfileID eq 12345678 and Sku eq 'CG0001'", ["CG0001"]),
        ("UpdateDateUtc lt 2020-01-01T00:00:00Z", []),
        ("QuantityUpdateDateUtc eq null and ProfileID eq 87654321", ["OTHER-ONLY"]),
        ("startswith(Sku, 'al-') and ProfileID eq 12345678", ["AL-85590-SHOE"]),
        ("ID in ({CG0001}, {MUG-1})", ["CG0001", "MUG-1"]),
        ("Labels/any(l: l/Name eq 'Sale')", ["MUG-1"]),
        ("Sku EQ 'CG0001' AND ProfileID EQ 12345678", ["CG0001"]),
    ],
)
def test_filter_operators(
    ca_api: SandboxApi, catalog: dict[str, int], flt: str, expected: list[str]
) -> None:
    text = flt
    for sku, pid in catalog.items():
        text = text.replace("{" + sku + "}", str(pid))
    assert skus(ca_api.get("Products", **{"$filter": text, "$orderby": "Sku"})) == sorted(
        expected, key=str.lower
    )


def test_dates_filter_after_a_quantity_update(ca_api: SandboxApi, catalog: dict[str, int]) -> None:
    pid = catalog["CG0001"]
    before = ca_api.get(f"Products({pid})").json()["UpdateDateUtc"]
    assert before == "2024-05-02T13:41:07.517Z"  # seeded
    update = {
        "Value": {"UpdateType": "Absolute", "Updates": [{"DistributionCenterID": 0, "Quantity": 2}]}
    }
    assert ca_api.post(f"Products({pid})/UpdateQuantity", json=update).status_code == 204
    flt = f"QuantityUpdateDateUtc gt {before} and ProfileID eq {P}"
    assert skus(ca_api.get("Products", **{"$filter": flt})) == ["CG0001"]


@pytest.mark.parametrize(
    ("flt", "needle"),
    [
        ("Colour eq 'x'", "Could not find a property named 'Colour'"),
        ("Sku eq", "Syntax error"),
        ("Sku eq 'unterminated", "Syntax error"),
        ("Sku eq 5", "incompatible types"),
        ("ProductType eq 'Widget'", "not a valid enumeration"),
        ("ID", "boolean"),
    ],
)
def test_bad_filters_are_400_naming_the_problem(ca_api: SandboxApi, flt: str, needle: str) -> None:
    assert needle in odata_error(ca_api.get("Products", **{"$filter": flt}), 400)


def test_bad_query_options(ca_api: SandboxApi) -> None:
    assert "Nope" in odata_error(ca_api.get("Products", **{"$select": "ID,Nope"}), 400)
    assert "Nope" in odata_error(ca_api.get("Products", **{"$orderby": "Nope desc"}), 400)
    assert "$top" in odata_error(ca_api.get("Products", **{"$top": "-1"}), 400)
    assert "$skip" in odata_error(ca_api.get("Products", **{"$skip": "x"}), 400)
    assert "$count" in odata_error(ca_api.get("Products", **{"$count": "maybe"}), 400)
    assert "Nope" in odata_error(ca_api.get("Products", **{"$expand": "Nope"}), 400)


def test_select_top_skip_count_orderby(ca_api: SandboxApi, catalog: dict[str, int]) -> None:
    response = ca_api.get(
        "Products",
        **{
            "$filter": f"ProfileID eq {P}",
            "$select": "Sku,BuyItNowPrice",
            "$orderby": "BuyItNowPrice desc",
            "$top": "2",
            "$skip": "1",
            "$count": "true",
        },
    )
    body = response.json()
    assert body["@odata.count"] == 5
    assert body["value"] == [
        {"Sku": "CG0001", "BuyItNowPrice": 24.5},
        {"Sku": "O'NEIL-CAP", "BuyItNowPrice": 12.0},
    ]
    assert "@odata.nextLink" not in body  # $top satisfied within one page


def test_products_count_endpoint(ca_api: SandboxApi, catalog: dict[str, int]) -> None:
    response = ca_api.get("Products/$count", **{"$filter": f"ProfileID eq {P}"})
    assert response.status_code == 200
    assert response.text == "5"
    assert ca_api.get("Products/$count").text == "7"


def follow(api: SandboxApi, first: requests.Response) -> tuple[list[dict[str, Any]], list[str]]:
    rows, links = [], []
    response = first
    while True:
        body = response.json()
        rows += body["value"]
        link = body.get("@odata.nextLink")
        if not link:
            return rows, links
        links.append(link)
        response = api.session.get(link, timeout=10)
        assert response.status_code == 200


def test_paging_follows_next_links_to_the_end(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    ca_sandbox.seed_products(count=23)
    ca_sandbox.configure(products_page_size=5)
    first = ca_api.get(
        "Products", **{"$filter": f"ProfileID eq {P}", "$select": "ID,Sku", "$count": "true"}
    )
    assert first.json()["@odata.count"] == 23
    rows, links = follow(ca_api, first)
    assert [r["Sku"] for r in rows] == [f"SKU-{n:06d}" for n in range(1, 24)]
    assert len(links) == 4
    for number, link in enumerate(links, 1):
        assert link.startswith(f"{ca_api.base_url}/v1/Products?")
        assert "access_token" not in link  # the client used the Bearer header
        query = parse_qs(urlsplit(link).query)
        assert query["$skip"] == [str(5 * number)]
        assert query["$filter"] == [f"ProfileID eq {P}"]
    assert ca_sandbox.request_log()["counts"]["GET /v1/Products"] == 5


def test_next_link_echoes_a_query_string_token(ca_sandbox: Sandbox) -> None:
    ca_sandbox.seed_products(count=3)
    ca_sandbox.configure(products_page_size=2)
    token = ca_sandbox.issue_access_token()
    first = requests.get(
        f"{ca_sandbox.base_url}/v1/Products", params={"access_token": token}, timeout=5
    ).json()
    assert f"access_token={token}" in first["@odata.nextLink"]
    second = requests.get(first["@odata.nextLink"], timeout=5)
    assert second.status_code == 200 and len(second.json()["value"]) == 1


def test_top_above_the_page_size_is_paged(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    ca_sandbox.seed_products(count=12)
    ca_sandbox.configure(products_page_size=5)
    rows, links = follow(ca_api, ca_api.get("Products", **{"$top": "7", "$select": "ID"}))
    assert len(rows) == 7 and len(links) == 1
    assert "%24top=2" in links[0] or "$top=2" in links[0]


def test_next_link_uses_the_request_host(ca_sandbox: Sandbox) -> None:
    ca_sandbox.seed_products(count=3)
    ca_sandbox.configure(products_page_size=1)
    port = ca_sandbox.base_url.rsplit(":", 1)[1]
    response = requests.get(
        f"http://localhost:{port}/v1/Products",
        headers={"Authorization": f"Bearer {ca_sandbox.issue_access_token()}"},
        timeout=5,
    )
    assert response.json()["@odata.nextLink"].startswith(f"http://localhost:{port}/v1/")


def test_get_one_product_and_404(ca_api: SandboxApi, catalog: dict[str, int]) -> None:
    pid = catalog["MUG-1"]
    body = ca_api.get(f"Products({pid})", **{"$expand": "DCQuantities"}).json()
    assert body["@odata.context"].endswith("#Products(DCQuantities())/$entity")
    assert body["ID"] == pid and body["Sku"] == "MUG-1"
    assert body["TotalAvailableQuantity"] == 40
    assert body["DCQuantities"] == [
        {"ProductID": pid, "DistributionCenterID": 0, "AvailableQuantity": 40}
    ]
    selected = ca_api.get(f"Products({pid})", **{"$select": "ID,Sku"}).json()
    assert set(selected) == {"@odata.context", "ID", "Sku"}
    missing = ca_api.get("Products(1)")
    assert "No product with ID 1" in odata_error(missing, 404)


def test_other_profile_product_is_invisible_to_a_single_profile_token(
    ca_sandbox: Sandbox, catalog: dict[str, int]
) -> None:
    ca_sandbox.add_refresh_token("demo-only", "hub-sandbox-demo-application", [P])
    api = SandboxApi(ca_sandbox, refresh_token="demo-only")
    other = ca_sandbox.find_products("OTHER-ONLY")[0]["ID"]
    assert api.get(f"Products({other})").status_code == 404
    assert skus(api.get("Products", **{"$filter": "Sku eq 'OTHER-ONLY'"})) == []


def test_patch_changes_only_the_fields_sent(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    pid = catalog["AL-85590-SHOE"]
    before = ca_sandbox.get_product(pid)
    response = ca_api.patch(f"Products({pid})", {"BuyItNowPrice": 74.99})
    assert response.status_code == 204 and response.content == b""
    after = ca_sandbox.get_product(pid)
    assert after["BuyItNowPrice"] == 74.99
    assert after["RetailPrice"] == before["RetailPrice"] == 89.99
    assert after["UpdateDateUtc"] >= before["UpdateDateUtc"]
    assert after["QuantityUpdateDateUtc"] == before["QuantityUpdateDateUtc"]


def test_put_is_a_partial_update_too(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    pid = catalog["CG0001"]
    assert ca_api.request("PUT", f"Products({pid})", json={"RetailPrice": 30}).status_code == 204
    product = ca_sandbox.get_product(pid)
    assert product["RetailPrice"] == 30 and product["BuyItNowPrice"] == 24.5


def test_patch_errors(ca_api: SandboxApi, catalog: dict[str, int]) -> None:
    pid = catalog["CG0001"]
    assert "Colour" in odata_error(ca_api.patch(f"Products({pid})", {"Colour": "x"}), 400)
    assert "TotalAvailableQuantity" in odata_error(
        ca_api.patch(f"Products({pid})", {"TotalAvailableQuantity": 5}), 400
    )
    assert "number" in odata_error(ca_api.patch(f"Products({pid})", {"RetailPrice": "x"}), 400)
    odata_error(ca_api.patch("Products(1)", {"RetailPrice": 1}), 404)
    not_json = ca_api.request(
        "PATCH",
        f"Products({pid})",
        data="RetailPrice=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert not_json.status_code == 415
    assert "media type" in not_json.json()["Message"]


def test_sku_patch_reindexes(ca_api: SandboxApi, catalog: dict[str, int]) -> None:
    pid = catalog["CG0001"]
    assert ca_api.patch(f"Products({pid})", {"Sku": "CG0002"}).status_code == 204
    assert skus(ca_api.get("Products", **{"$filter": "Sku eq 'CG0001'"})) == []
    assert skus(ca_api.get("Products", **{"$filter": "Sku eq 'cg0002'"})) == ["CG0002"]


def test_delete_then_404_and_empty_sku_lookup(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    pid = catalog["MUG-1"]
    assert ca_api.delete(f"Products({pid})").status_code == 204
    assert ca_sandbox.get_product(pid) is None
    odata_error(ca_api.get(f"Products({pid})"), 404)
    odata_error(ca_api.delete(f"Products({pid})"), 404)
    assert skus(ca_api.get("Products", **{"$filter": f"Sku eq 'MUG-1' and ProfileID eq {P}"})) == []


def test_unknown_urls_and_methods(ca_api: SandboxApi) -> None:
    unknown = ca_api.get("Widgets")
    assert unknown.status_code == 404
    assert "No HTTP resource was found" in unknown.json()["Message"]
    assert ca_api.post("Products", json={"Sku": "x"}).status_code == 405
    assert ca_api.request("DELETE", "Profiles(12345678)").status_code == 405
