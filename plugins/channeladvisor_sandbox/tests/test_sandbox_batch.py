"""POST /v1/$batch: multipart parsing, JSON and multipart answers, per-part failures."""

from __future__ import annotations

from typing import Any

import requests

from hub_channeladvisor_sandbox import DEMO_PROFILE_ID, Sandbox
from hub_channeladvisor_sandbox.testing import SandboxApi, build_batch

QTY = {"Value": {"UpdateType": "Absolute", "Updates": [{"DistributionCenterID": 0, "Quantity": 3}]}}


def responses(response: requests.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return response.json()["responses"]


def test_mixed_success_and_failure_in_a_200_envelope(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    pid = catalog["CG0001"]
    result = responses(
        ca_api.batch(
            [
                (
                    "GET",
                    "Products?$filter=Sku%20eq%20'AL-85590-SHOE'%20and%20ProfileID%20eq"
                    f"%20{DEMO_PROFILE_ID}&$select=ID,Sku",
                    None,
                ),
                ("POST", f"Products({pid})/UpdateQuantity", QTY),
                ("POST", "Products(1)/UpdateQuantity", QTY),
                ("PATCH", f"Products({pid})", {"RetailPrice": 33.0}),
                ("PATCH", f"Products({pid})", {"Nope": 1}),
            ]
        )
    )
    assert [r["id"] for r in result] == ["1", "2", "3", "4", "5"]
    assert [r["status"] for r in result] == [200, 204, 404, 204, 400]
    assert result[0]["body"]["value"] == [{"ID": catalog["AL-85590-SHOE"], "Sku": "AL-85590-SHOE"}]
    assert result[0]["headers"]["odata-version"] == "4.0"
    assert result[0]["body"]["@odata.context"].endswith("#Products(ID,Sku)")
    assert result[1]["body"] is None
    assert result[2]["body"] == {
        "error": {"code": "", "message": "No product with ID 1 was found."}
    }
    product = ca_sandbox.get_product(pid)
    assert product is not None
    assert product["TotalAvailableQuantity"] == 3 and product["RetailPrice"] == 33.0


def test_parts_are_logged_and_each_counts_against_the_budget(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    parts = [("POST", f"Products({pid})/UpdateQuantity", QTY) for pid in catalog.values()]
    assert len(responses(ca_api.batch(parts))) == 5
    log = ca_sandbox.request_log()
    assert log["batches"] == 1 and log["batch_parts"] == 5
    assert log["total_units"] == 6  # 1 for the batch + 1 per part
    assert log["units_by_profile"] == {str(DEMO_PROFILE_ID): 6}
    envelope = [e for e in log["entries"] if not e["in_batch"]]
    inner = [e for e in log["entries"] if e["in_batch"]]
    assert [e["endpoint"] for e in envelope] == ["POST /v1/$batch"]
    assert {e["batch_seq"] for e in inner} == {envelope[0]["seq"]}
    assert log["counts"]["POST /v1/Products({id})/UpdateQuantity"] == 5


def test_export_is_refused_inside_a_batch(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    [order_id] = ca_sandbox.seed_orders([{"Items": [{"Sku": "A"}]}])
    result = responses(
        ca_api.batch(
            [("POST", f"Orders({order_id})/Export", None), ("GET", f"Orders({order_id})", None)]
        )
    )
    assert [r["status"] for r in result] == [400, 200]
    assert "batch" in result[0]["body"]["error"]["message"]
    assert ca_sandbox.get_order(order_id)["exported_by"] == []  # type: ignore[index]


def test_more_than_100_parts_fail_the_whole_batch(
    ca_sandbox: Sandbox, ca_api: SandboxApi, catalog: dict[str, int]
) -> None:
    pid = catalog["CG0001"]
    parts = [("POST", f"Products({pid})/UpdateQuantity", QTY)] * 101
    response = ca_api.batch(parts)
    assert response.status_code == 400
    assert "at most 100" in response.json()["error"]["message"]
    assert ca_sandbox.get_product(pid)["TotalAvailableQuantity"] is None  # type: ignore[index]
    assert ca_sandbox.request_log()["batch_parts"] == 0
    assert len(responses(ca_api.batch(parts[:100]))) == 100


def test_relative_urls_and_bad_parts_fail_per_part(ca_sandbox: Sandbox) -> None:
    token = ca_sandbox.issue_access_token()
    body = (
        "--b1\r\nContent-Type: application/http\r\nContent-ID: 7\r\n\r\n"
        "GET /v1/Profiles HTTP/1.1\r\n\r\n"
        "--b1\r\nContent-Type: text/plain\r\nContent-ID: 8\r\n\r\nhello\r\n"
        f"--b1\r\nContent-Type: application/http\r\nContent-ID: 9\r\n\r\n"
        f"GET {ca_sandbox.base_url}/v1/Profiles HTTP/1.1\r\n\r\n"
        f"--b1\r\nContent-Type: application/http\r\nContent-ID: 10\r\n\r\n"
        f"POST {ca_sandbox.base_url}/v1/$batch HTTP/1.1\r\n\r\n"
        "--b1--\r\n"
    )
    response = requests.post(
        f"{ca_sandbox.base_url}/v1/$batch",
        data=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "multipart/mixed; boundary=b1",
            "Accept": "application/json",
        },
        timeout=5,
    )
    result = responses(response)
    assert [(r["id"], r["status"]) for r in result] == [
        ("7", 400),
        ("8", 400),
        ("9", 200),
        ("10", 400),
    ]
    assert "absolute" in result[0]["body"]["error"]["message"]


def test_lf_line_breaks_and_changesets_are_accepted(ca_sandbox: Sandbox) -> None:
    token = ca_sandbox.issue_access_token()
    base = ca_sandbox.base_url
    body = (
        "--outer\n"
        "Content-Type: multipart/mixed; boundary=cs\n\n"
        "--cs\nContent-Type: application/http\nContent-ID: 1\n\n"
        f"GET {base}/v1/DistributionCenters(0) HTTP/1.1\n\n"
        "--cs--\n"
        "--outer\nContent-Type: application/http\nContent-ID: 2\n\n"
        f"GET {base}/v1/Profiles(12345678) HTTP/1.1\n\n"
        "--outer--\n"
    )
    response = requests.post(
        f"{base}/v1/$batch?access_token={token}",
        data=body,
        headers={"Content-Type": "multipart/mixed; boundary=outer", "Accept": "application/json"},
        timeout=5,
    )
    result = responses(response)
    assert [(r["id"], r["status"]) for r in result] == [("1", 200), ("2", 200)]
    assert result[0]["body"]["Code"] == "MAIN"


def test_multipart_answer_without_accept_json(ca_api: SandboxApi, catalog: dict[str, int]) -> None:
    response = ca_api.batch(
        [("GET", f"Products({catalog['CG0001']})?$select=Sku", None), ("GET", "Products(1)", None)],
        accept_json=False,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("multipart/mixed; boundary=batchresponse_")
    text = response.text
    assert "HTTP/1.1 200 OK" in text and "HTTP/1.1 404 Not Found" in text
    assert '"Sku":"CG0001"' in text and "Content-ID: 2" in text


def test_batch_needs_a_multipart_content_type_and_auth(ca_sandbox: Sandbox) -> None:
    token = ca_sandbox.issue_access_token()
    url = f"{ca_sandbox.base_url}/v1/$batch"
    wrong = requests.post(
        url, json={"requests": []}, headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert wrong.status_code == 400
    assert "multipart/mixed" in wrong.json()["error"]["message"]
    headers, body = build_batch([("GET", f"{ca_sandbox.base_url}/v1/Profiles", None)])
    assert requests.post(url, data=body, headers=headers, timeout=5).status_code == 401
    assert (
        requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code
        == 405
    )


def test_links_inside_parts_are_token_free_and_absolute(
    ca_sandbox: Sandbox, ca_api: SandboxApi
) -> None:
    ca_sandbox.seed_products(count=3)
    ca_sandbox.configure(products_page_size=2)
    [result] = responses(ca_api.batch([("GET", "Products?$select=ID", None)]))
    link = result["body"]["@odata.nextLink"]
    assert link.startswith(f"{ca_api.base_url}/v1/Products?") and "access_token" not in link
