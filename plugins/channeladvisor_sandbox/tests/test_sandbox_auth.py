"""The token endpoint and access-token checks on /v1."""

from __future__ import annotations

import time

import requests

from hub_channeladvisor_sandbox import (
    DEMO_APPLICATION_ID,
    DEMO_PROFILE_ID,
    DEMO_REFRESH_TOKEN,
    DEMO_SHARED_SECRET,
    OTHER_PROFILE_ID,
    Sandbox,
)
from hub_channeladvisor_sandbox.testing import SandboxApi, fetch_access_token

DENIED = {"error": {"code": "", "message": "Authorization has been denied for this request."}}


def test_token_call_issues_a_bearer_token(ca_sandbox: Sandbox) -> None:
    response = fetch_access_token(ca_sandbox.base_url)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    api = requests.get(
        f"{ca_sandbox.base_url}/v1/Profiles",
        headers={"Authorization": f"Bearer {body['access_token']}"},
        timeout=5,
    )
    assert api.status_code == 200
    assert {p["ID"] for p in api.json()["value"]} == {DEMO_PROFILE_ID, OTHER_PROFILE_ID}


def test_expires_in_follows_the_configured_ttl(ca_sandbox: Sandbox) -> None:
    ca_sandbox.configure(token_ttl=120)
    assert fetch_access_token(ca_sandbox.base_url).json()["expires_in"] == 120


def test_wrong_secret_is_a_plain_text_400_when_token_errors_are_text(ca_sandbox: Sandbox) -> None:
    ca_sandbox.configure(token_errors="text")
    for refused in (
        fetch_access_token(ca_sandbox.base_url, shared_secret="nope"),
        fetch_access_token(ca_sandbox.base_url, refresh_token="unknown"),
    ):
        assert refused.status_code == 400
        assert refused.headers["Content-Type"].startswith("text/plain")
        assert refused.text == "Bad Request"


def test_refusals_name_invalid_client_or_invalid_grant(ca_sandbox: Sandbox) -> None:
    base = ca_sandbox.base_url
    for refused in (
        fetch_access_token(base, shared_secret="nope"),
        fetch_access_token(base, application_id="other"),
    ):
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_client"
    ca_sandbox.add_application("second-app", "second-secret")
    ca_sandbox.add_refresh_token("second-refresh", "second-app", [DEMO_PROFILE_ID])
    for refused in (
        fetch_access_token(base, refresh_token="unknown"),
        fetch_access_token(base, refresh_token="second-refresh"),  # another application's
    ):
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_grant"
    # A wrong secret with a revoked token: the client is checked first.
    assert ca_sandbox.revoke_refresh_token(DEMO_REFRESH_TOKEN)
    assert fetch_access_token(base, shared_secret="nope").json()["error"] == "invalid_client"
    assert fetch_access_token(base).json()["error"] == "invalid_grant"


def test_unknown_application_and_refresh_token_are_400(ca_sandbox: Sandbox) -> None:
    assert fetch_access_token(ca_sandbox.base_url, application_id="other").status_code == 400
    assert fetch_access_token(ca_sandbox.base_url, refresh_token="unknown").status_code == 400


def test_refresh_token_of_another_application_is_refused(ca_sandbox: Sandbox) -> None:
    ca_sandbox.add_application("second-app", "second-secret")
    ca_sandbox.add_refresh_token("second-refresh", "second-app", [DEMO_PROFILE_ID])
    ok = fetch_access_token(
        ca_sandbox.base_url,
        application_id="second-app",
        shared_secret="second-secret",
        refresh_token="second-refresh",
    )
    assert ok.status_code == 200
    crossed = fetch_access_token(ca_sandbox.base_url, refresh_token="second-refresh")
    assert crossed.status_code == 400


def test_missing_basic_auth_and_form_credentials_are_refused(ca_sandbox: Sandbox) -> None:
    url = f"{ca_sandbox.base_url}/oauth2/token"
    form = {"grant_type": "refresh_token", "refresh_token": DEMO_REFRESH_TOKEN}
    assert requests.post(url, data=form, timeout=5).status_code == 400
    # client_id/client_secret in the body instead of Basic auth is not accepted.
    with_body = {**form, "client_id": DEMO_APPLICATION_ID, "client_secret": DEMO_SHARED_SECRET}
    assert requests.post(url, data=with_body, timeout=5).status_code == 400


def test_unsupported_grant_type(ca_sandbox: Sandbox) -> None:
    response = requests.post(
        f"{ca_sandbox.base_url}/oauth2/token",
        auth=(DEMO_APPLICATION_ID, DEMO_SHARED_SECRET),
        data={"grant_type": "authorization_code", "code": "x"},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json() == {"error": "unsupported_grant_type"}


def test_token_endpoint_only_accepts_post(ca_sandbox: Sandbox) -> None:
    response = requests.get(f"{ca_sandbox.base_url}/oauth2/token", timeout=5)
    assert response.status_code == 405


def test_revoked_refresh_token_gets_400_and_kills_its_access_tokens(ca_sandbox: Sandbox) -> None:
    api = SandboxApi(ca_sandbox)
    assert api.get("Profiles").status_code == 200
    assert ca_sandbox.revoke_refresh_token(DEMO_REFRESH_TOKEN)
    refused = fetch_access_token(ca_sandbox.base_url)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    after = api.get("Profiles")
    assert after.status_code == 401
    assert after.json() == DENIED


def test_missing_or_unknown_token_is_401_with_the_odata_body(ca_sandbox: Sandbox) -> None:
    base = ca_sandbox.base_url
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eA=="}):
        response = requests.get(f"{base}/v1/Products", headers=headers, timeout=5)
        assert response.status_code == 401
        assert response.json() == DENIED
    log = ca_sandbox.request_log()
    assert log["status_counts"] == {"401": 3}
    # 401s are answered before any limit: they spend no rate budget.
    assert log["total_units"] == 0


def test_token_in_query_string_is_accepted(ca_sandbox: Sandbox) -> None:
    token = ca_sandbox.issue_access_token()
    response = requests.get(
        f"{ca_sandbox.base_url}/v1/Profiles", params={"access_token": token}, timeout=5
    )
    assert response.status_code == 200


def test_expire_now_makes_tokens_401_until_refreshed(ca_sandbox: Sandbox) -> None:
    api = SandboxApi(ca_sandbox)
    assert api.get("DistributionCenters").status_code == 200
    assert ca_sandbox.expire_access_tokens() >= 1
    assert api.get("DistributionCenters").status_code == 401
    fresh = fetch_access_token(ca_sandbox.base_url).json()["access_token"]
    api.session.headers["Authorization"] = f"Bearer {fresh}"
    assert api.get("DistributionCenters").status_code == 200


def test_short_ttl_expires_by_itself(ca_sandbox: Sandbox) -> None:
    ca_sandbox.configure(token_ttl=0.05)
    token = fetch_access_token(ca_sandbox.base_url).json()["access_token"]
    time.sleep(0.1)
    response = requests.get(
        f"{ca_sandbox.base_url}/v1/Profiles",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert response.status_code == 401


def test_token_limited_to_one_profile_sees_only_it(ca_sandbox: Sandbox) -> None:
    ca_sandbox.add_refresh_token("one-profile", DEMO_APPLICATION_ID, [OTHER_PROFILE_ID])
    api = SandboxApi(ca_sandbox, refresh_token="one-profile")
    assert [p["ID"] for p in api.get("Profiles").json()["value"]] == [OTHER_PROFILE_ID]
    assert api.get(f"Profiles({DEMO_PROFILE_ID})").status_code == 404


def test_query_string_tokens_are_masked_in_the_log(ca_sandbox: Sandbox) -> None:
    token = ca_sandbox.issue_access_token()
    requests.get(f"{ca_sandbox.base_url}/v1/Profiles", params={"access_token": token}, timeout=5)
    [entry] = ca_sandbox.request_log()["entries"]
    assert entry["query"] == "access_token=***"
