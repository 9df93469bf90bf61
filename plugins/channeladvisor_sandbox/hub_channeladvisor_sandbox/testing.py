"""Pytest fixtures and request helpers for tests that talk to a sandbox.

A conftest can import the fixtures::

    from hub_channeladvisor_sandbox.testing import ca_api, ca_sandbox  # noqa: F401

* `ca_sandbox`: a fresh `Sandbox` on a free port (function scope), stopped afterwards;
* `ca_api`: a `SandboxApi` on it (a `requests` session with a valid Bearer token).
"""

from __future__ import annotations

import json as json_module
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import requests

from . import constants as c
from .server import Sandbox


def fetch_access_token(
    base_url: str,
    *,
    application_id: str = c.DEMO_APPLICATION_ID,
    shared_secret: str = c.DEMO_SHARED_SECRET,
    refresh_token: str = c.DEMO_REFRESH_TOKEN,
    timeout: float = 10,
) -> requests.Response:
    """POST the token call exactly as a client must (Basic auth, form body)."""
    return requests.post(
        f"{base_url}/oauth2/token",
        auth=(application_id, shared_secret),
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        timeout=timeout,
    )


def bearer_headers(sandbox: Sandbox, refresh_token: str = c.DEMO_REFRESH_TOKEN) -> dict[str, str]:
    """`Authorization: Bearer <token>` with a token issued in-process (no HTTP)."""
    return {"Authorization": f"Bearer {sandbox.issue_access_token(refresh_token)}"}


def build_batch(
    parts: Sequence[tuple[str, str, Any]], boundary: str = "changeset"
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a `$batch` with parts `(method, absolute_url, json_or_None)`."""
    chunks = []
    for number, (method, url, body) in enumerate(parts, 1):
        lines = [
            f"--{boundary}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            f"Content-ID: {number}",
            "",
            f"{method} {url} HTTP/1.1",
        ]
        if body is not None:
            lines += ["Content-Type: application/json", "", json_module.dumps(body)]
        else:
            lines += [""]
        chunks.append("\r\n".join(lines))
    text = "\r\n".join(chunks) + f"\r\n--{boundary}--\r\n"
    headers = {
        "Content-Type": f"multipart/mixed; boundary={boundary}",
        "Accept": "application/json",
    }
    return headers, text.encode()


class SandboxApi:
    """A `requests` session on a sandbox's `/v1`, authenticated with a Bearer token."""

    def __init__(self, sandbox: Sandbox, refresh_token: str = c.DEMO_REFRESH_TOKEN) -> None:
        self.sandbox = sandbox
        self.base_url = sandbox.base_url
        self.session = requests.Session()
        self.session.headers.update(bearer_headers(sandbox, refresh_token))
        self.timeout = 10.0

    def url(self, path: str) -> str:
        """Absolute URL of `/v1/<path>` (or of an absolute path/URL as given)."""
        if path.startswith("http"):
            return path
        if path.startswith("/"):
            return f"{self.base_url}{path}"
        return f"{self.base_url}/v1/{path}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Any request; `path` is relative to `/v1/` unless absolute."""
        kwargs.setdefault("timeout", self.timeout)
        return self.session.request(method, self.url(path), **kwargs)

    def get(self, path: str, **params: Any) -> requests.Response:
        """GET with query options, e.g. `get("Products", **{"$filter": "ID eq 1"})`."""
        return self.request("GET", path, params=params or None)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        """POST a JSON body."""
        return self.request("POST", path, json=json, **kwargs)

    def patch(self, path: str, json: Any) -> requests.Response:
        """PATCH a JSON body."""
        return self.request("PATCH", path, json=json)

    def delete(self, path: str) -> requests.Response:
        """DELETE."""
        return self.request("DELETE", path)

    def batch(
        self, parts: Sequence[tuple[str, str, Any]], *, accept_json: bool = True
    ) -> requests.Response:
        """POST a `$batch`; part URLs may be relative to `/v1/` (made absolute here)."""
        absolute = [(m, self.url(u), b) for m, u, b in parts]
        headers, body = build_batch(absolute)
        if not accept_json:
            headers.pop("Accept")
        return self.request("POST", "$batch", data=body, headers=headers)

    def close(self) -> None:
        """Close the session."""
        self.session.close()


@pytest.fixture
def ca_sandbox() -> Iterator[Sandbox]:
    """A fresh sandbox on a free port, stopped after the test."""
    sandbox = Sandbox(seed=0)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def ca_api(ca_sandbox: Sandbox) -> Iterator[SandboxApi]:
    """A Bearer-authenticated session on `ca_sandbox`."""
    api = SandboxApi(ca_sandbox)
    try:
        yield api
    finally:
        api.close()
