"""Fixtures of the ChannelAdvisor plugin's requests-mock tests (files ``test_ca_*.py``).

* every test starts with empty process-wide registries (limiters, token stores);
* no test ever sleeps: the client's sleep records the waits it was asked for (``waits``);
* ``conn`` builds a :class:`~hub_core.channel.ChannelConnection` as the core hands it over
  (settings loaded by the settings schema, defaults applied) that records what the plugin
  stores on it, and ends its run (closes what the plugin kept) after the test; ``ca``
  registers ChannelAdvisor answers on ``requests_mock`` and reads back
  what was sent, ``$batch`` parts included.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests_mock as rm

from hub_channeladvisor.client import auth, limiter, outcomes
from hub_channeladvisor.schemas import SHARED_SECRET_ENV, SettingsSchema
from hub_core.channel import ChannelConnection

BASE = "https://ca.test"
API = f"{BASE}/v1"
TOKEN_URL = f"{BASE}/oauth2/token"
PROFILE = 12345678
APP_ID = "app-id-1"
SECRET = "shared-secret-XYZ"
ACCESS = "access-token-OLD"
REFRESH = "refresh-token-ABC"
FRESH = "access-token-NEW"


@pytest.fixture(autouse=True)
def _fresh_registries() -> Iterator[None]:
    limiter.reset_registry()
    auth.reset_token_stores()
    yield
    limiter.reset_registry()
    auth.reset_token_stores()


@pytest.fixture(autouse=True)
def _no_shared_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process limiter, whatever the environment says (Redis tests set it back)."""
    monkeypatch.delenv(limiter.REDIS_URL_ENV, raising=False)


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the client chose, in order (nothing really sleeps)."""
    chosen: list[float] = []
    monkeypatch.setattr(outcomes, "sleep", chosen.append)
    return chosen


@dataclasses.dataclass
class Recorder:
    """What the plugin stored on a connection."""

    saved: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    health: list[tuple[str, str]] = dataclasses.field(default_factory=list)


class RecordingProgress:
    """A Progress that remembers what it was told."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.done = 0

    def set_total(self, total: int) -> None:
        self.total = total

    def advance(self, count: int = 1) -> None:
        self.done += count


@pytest.fixture
def conn() -> Iterator[Callable[..., ChannelConnection]]:
    """Build a connection; ``conn.recorder`` of the result holds what the plugin stored.

    Every hook call with one connection is a call of the same run (one client); the runs end
    when the test does."""
    made: list[ChannelConnection] = []

    def make(
        *,
        config: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
        health: str = "ok",
        expires_at: float | None = 4102444800.0,  # 2100-01-01: valid unless a test says not
    ) -> ChannelConnection:
        recorder = Recorder()
        values = {
            "access_token": ACCESS,
            "refresh_token": REFRESH,
            "profile_id": PROFILE,
            "application_id": APP_ID,
            "shared_secret": SECRET,
            "base_url": BASE,
            "access_token_expires_at": expires_at,
            **(config or {}),
        }
        connection = ChannelConnection(
            name="shop",
            channel="channeladvisor",
            config=values,
            settings=SettingsSchema().load(dict(settings or {})),
            health=health,
            secret_keys=("access_token", "refresh_token", "shared_secret"),
            secret_env=(SHARED_SECRET_ENV,),  # as the core builds it (the channel declares it)
            progress=RecordingProgress(),
            on_save_config=recorder.saved.append,
            on_health=lambda h, m: recorder.health.append((h, m)),
        )
        connection.recorder = recorder  # type: ignore[attr-defined]
        made.append(connection)
        return connection

    yield make
    for connection in made:
        connection.close_resources()


def parse_batch(request: Any) -> list[dict[str, Any]]:
    """The parts of a ``$batch`` request: id, method, absolute url, headers and JSON body."""
    boundary = request.headers["Content-Type"].split("boundary=", 1)[1]
    body = request.body.decode() if isinstance(request.body, bytes) else request.body
    assert body.endswith(f"--{boundary}--\r\n")
    parts = []
    for chunk in body.split(f"--{boundary}")[1:-1]:
        assert chunk.startswith("\r\n")
        head, _, inner = chunk[2:].partition("\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.split("\r\n"))
        request_line, _, rest = inner.partition("\r\n")
        method, url, version = request_line.split(" ")
        inner_head, _, inner_body = rest.partition("\r\n\r\n")
        if not inner_body:
            inner_body = inner_head if inner_head.startswith("{") else ""
        inner_body = inner_body.rstrip("\r\n")
        parts.append(
            {
                "id": headers["Content-ID"],
                "headers": headers,
                "method": method,
                "url": url,
                "version": version,
                "inner_headers": inner_head,
                "body": json.loads(inner_body) if inner_body else None,
            }
        )
    return parts


def query(url: str) -> dict[str, str]:
    """The decoded query of a URL, one value per key."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


class CAMock:
    """ChannelAdvisor answers on requests-mock, and what the plugin sent."""

    def __init__(self, mocker: rm.Mocker) -> None:
        self.m = mocker
        self.batches: list[list[dict[str, Any]]] = []

    # -- answers -------------------------------------------------------------------------

    def token(self, *responses: dict[str, Any]) -> Any:
        """The token endpoint; by default it issues FRESH for an hour."""
        answers = list(responses) or [
            {"json": {"access_token": FRESH, "token_type": "bearer", "expires_in": 3600}}
        ]
        return self.m.post(TOKEN_URL, answers)

    def get(self, path: str, *responses: dict[str, Any]) -> Any:
        """``GET /v1/{path}`` (the path may carry a query; matched as a prefix otherwise)."""
        return self.m.get(f"{API}/{path}", list(responses) or [{"json": {"value": []}}])

    def get_re(self, pattern: str, *responses: dict[str, Any]) -> Any:
        """``GET`` of any API URL matching ``pattern`` (searched in the unquoted URL)."""
        matcher = re.compile(pattern)

        def match(request: Any) -> bool:
            return bool(matcher.search(unquote(request.url)))

        return self.m.get(rm.ANY, additional_matcher=match, response_list=list(responses))

    def cancellations(self, *orders: dict[str, Any]) -> Any:
        """The cancellation check of get orders (``Orders?exported=true…``), one page of
        ``orders`` (none by default); registered last, it wins over a broader ``Orders``."""
        return self.m.get(f"{API}/Orders?exported=true", json={"value": list(orders)})

    def post(self, path: str, *responses: dict[str, Any]) -> Any:
        """``POST /v1/{path}``."""
        return self.m.post(f"{API}/{path}", list(responses) or [{"status_code": 204}])

    def batch(self, handler: Callable[[list[dict[str, Any]]], Any]) -> Any:
        """``POST /v1/$batch``: ``handler(parts)`` returns the list of part answers
        (``{"status", "body", "headers"?}``, ids added) or a full response dict with
        ``"envelope_status"``/``"exc"``.
        """

        def respond(request: Any, context: Any) -> Any:
            parts = parse_batch(request)
            self.batches.append(parts)
            answer = handler(parts)
            if isinstance(answer, dict) and "exc" in answer:
                raise answer["exc"]
            if isinstance(answer, dict) and "envelope_status" in answer:
                context.status_code = answer["envelope_status"]
                context.headers.update(answer.get("headers", {}))
                return json.dumps(answer.get("body", {}))
            context.status_code = 200
            return json.dumps(
                {
                    "responses": [
                        {"id": part["id"], "headers": {}, **reply}
                        for part, reply in zip(parts, answer, strict=True)
                    ]
                }
            )

        return self.m.post(f"{API}/$batch", text=respond)

    # -- what was sent -------------------------------------------------------------------

    def sent(self, method: str | None = None, contains: str = "") -> list[Any]:
        """The requests sent (optionally one method, with ``contains`` in the unquoted URL)."""
        return [
            r
            for r in self.m.request_history
            if (method is None or r.method == method) and contains in unquote(r.url)
        ]

    def api_sent(self) -> list[Any]:
        """Every request except the token calls."""
        return [r for r in self.m.request_history if r.url.startswith(API)]


@pytest.fixture
def ca(requests_mock: rm.Mocker) -> CAMock:
    """ChannelAdvisor on requests-mock (unmatched requests fail)."""
    return CAMock(requests_mock)


@pytest.fixture
def h() -> Any:
    """Module-level helpers of this conftest, for test modules (no import between tests)."""

    class H:
        BASE = BASE
        API = API
        TOKEN_URL = TOKEN_URL
        PROFILE = PROFILE
        APP_ID = APP_ID
        SECRET = SECRET
        ACCESS = ACCESS
        REFRESH = REFRESH
        FRESH = FRESH
        parse_batch = staticmethod(parse_batch)
        query = staticmethod(query)

    return H
