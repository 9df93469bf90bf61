"""The HTTP engine: one ``requests.Session``, explicit timeouts, the limiter, the authenticator,
and the retry engine (:mod:`.retry`) that follows the outcome table.

:meth:`HttpClient.send_once` sends one request through the limits; :meth:`HttpClient.request`
sends it through the retry engine until the outcome table says it is done. A write
that is not idempotent is sent again after an unclear failure only when the caller can check
that it did not happen (``verify``) — ChannelAdvisor's Ship, say.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import requests

from hub_channeladvisor.client import outcomes
from hub_channeladvisor.client.answers import (
    MalformedAnswer,
    describe_body,
    read_capped,
    refuse_redirect,
)
from hub_channeladvisor.client.auth import Authenticator
from hub_channeladvisor.client.limiter import Limiter
from hub_channeladvisor.client.outcomes import Action, BackoffPolicy, RetriesExhausted
from hub_channeladvisor.client.retry import Answer, Final, RetryEngine
from hub_core.errors import AuthError, ChannelError, RateLimited

USER_AGENT = "hub-channeladvisor/0.1"
READ_TIMEOUT_ENV = "HUB_CHANNELADVISOR_READ_TIMEOUT"
# Characters left as they are in query values: OData needs $ ' ( ) , : and / readable, and
# spaces must become %20 (never '+') to survive inside a $batch request line.
_QUERY_SAFE = "$',():/"


@dataclasses.dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for a connection and for an answer (``requests``' (connect, read))."""

    connect: float = 10.0
    read: float = 60.0
    #: Read timeout of a ``$batch`` (up to 100 requests behind one answer).
    batch_read: float = 180.0

    @classmethod
    def from_environment(cls) -> Timeouts:
        """The defaults, with ``HUB_CHANNELADVISOR_READ_TIMEOUT`` (seconds) as the read
        timeout of every request, ``$batch`` included, when it is set to a positive number."""
        try:
            read = float(os.environ.get(READ_TIMEOUT_ENV, ""))
        except ValueError:
            return cls()
        return cls(read=read, batch_read=read) if read > 0 else cls()

    @property
    def default(self) -> tuple[float, float]:
        """The (connect, read) pair of a plain request."""
        return (self.connect, self.read)

    @property
    def batch(self) -> tuple[float, float]:
        """The (connect, read) pair of a ``$batch``."""
        return (self.connect, self.batch_read)


def new_session() -> requests.Session:
    """The one session of a client: JSON by default, a recognizable user agent."""
    session = requests.Session()
    session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
    return session


def encode_query(params: Mapping[str, Any]) -> str:
    """``$filter=ProfileID%20eq%201&$select=ID,Sku``: OData-readable, spaces as %20."""
    return "&".join(
        f"{quote(str(key), safe='$')}={quote(str(value), safe=_QUERY_SAFE)}"
        for key, value in params.items()
    )


def odata_string(value: str) -> str:
    """An OData string literal: quoted, with ``'`` doubled (reference §2.4)."""
    return "'" + value.replace("'", "''") + "'"


#: The final answer to one request, after retries (``.ok``, ``.status``, ``.body``,
#: ``.message``, ``.confirmed``).
ApiResult = Final


class HttpClient:
    """Sends ChannelAdvisor requests through the limiter, the authenticator and the backoff.

    :param base_url: ``https://api.channeladvisor.com`` (the API lives under ``/v1``).
    """

    def __init__(
        self,
        *,
        base_url: str,
        session: requests.Session,
        auth: Authenticator,
        limiter: Limiter,
        policy: BackoffPolicy,
        timeouts: Timeouts,
    ) -> None:
        self.base_url = base_url
        self.api_url = f"{base_url}/v1"
        self.session = session
        self.auth = auth
        self.limiter = limiter
        self.policy = policy
        self.timeouts = timeouts
        #: Requests sent (every send, retries included), for tests and benchmarks.
        self.sent = 0

    def url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        """The absolute URL of ``/v1/{path}`` with an OData query."""
        url = f"{self.api_url}/{path.lstrip('/')}"
        return f"{url}?{encode_query(query)}" if query else url

    def send_once(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        data: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        units: int = 1,
        timeout: tuple[float, float] | None = None,
    ) -> requests.Response:
        """Send one request through the limits; transport errors are raised as they come."""
        # Get a valid token BEFORE taking a slot: a refresh must never wait behind the slots.
        self.auth.token()
        extra = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":"))
            extra.setdefault("Content-Type", "application/json")
        with self.limiter.slot(units):
            self.sent += 1
            response = self.session.request(
                method,
                url,
                data=data,
                headers=extra,
                auth=self.auth,
                timeout=timeout or self.timeouts.default,
                # Never followed: a redirect could carry the Bearer token to another host.
                allow_redirects=False,
                stream=True,
            )
            refuse_redirect(response, url, self.base_url)
            read_capped(response)
        return response

    def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        idempotent: bool = True,
        verify: Callable[[], bool] | None = None,
        timeout: tuple[float, float] | None = None,
    ) -> ApiResult:
        """Send a request until the outcome table says it is done.

        :param idempotent: sending it twice does the same as once (GET, PATCH, an Absolute
            UpdateQuantity); otherwise it is only sent again when ChannelAdvisor surely did not
            carry it out, or when ``verify`` says so.
        :param verify: for a write that is not idempotent: returns True when ChannelAdvisor
            has carried it out after all (checked before any retry).
        :return: the final answer: a success, or a failure of this record (4xx).
        :raises AuthError: the access token is refused even after a refresh, or forbidden.
        :raises NeedsReauth: the refresh token is refused.
        :raises RateLimited: 429 until the retries ran out.
        :raises RetriesExhausted: a transient failure until the retries ran out.
        :raises ChannelError: an outcome the hub cannot go on from.
        """
        target = f"{method} {url}"

        def send() -> Answer:
            try:
                response = self.send_once(method, url, json_body=json_body, timeout=timeout)
            except requests.RequestException as exc:
                return Answer.of_error(exc)
            return Answer.of_response(response)

        final = self.engine(target).run_one(send, idempotent=idempotent, verify=verify)
        if final.resolution.action in (Action.SUCCESS, Action.RECORD_FAILURE):
            return final
        detail = final.detail(target)
        if final.exhausted:
            message = final.gave_up_message(self.base_url, self.auth.connection.name)
            if final.resolution.action is Action.RATE_LIMITED:
                raise RateLimited(message, detail=detail)
            raise RetriesExhausted(
                message, resolution=final.resolution, status=final.status, detail=detail
            )
        message = final.message
        if final.resolution.kind is outcomes.Kind.CONFIG:
            raise AuthError(message, detail=detail)
        raise ChannelError(message, detail=detail)

    def engine(self, target: str) -> RetryEngine:
        """The retry engine of one request or one ``$batch`` run to ``target`` (``METHOD URL``)."""
        method, _, url = target.partition(" ")
        return RetryEngine(
            self.policy,
            target=target,
            line=outcomes.request_line(method, url),
            auth=self.auth,
            limiter=self.limiter,
        )

    def get_json(self, url: str) -> Any:
        """GET a URL and return its JSON; None when ChannelAdvisor answers 404.

        :raises ChannelError: any other failure, or an answer that is not JSON.
        """
        result = self.request("GET", url)
        if result.status == 404:
            return None
        if not result.ok:
            raise ChannelError(result.message, detail=f"GET {url} -> {result.status}")
        if not isinstance(result.body, dict | list):
            raise MalformedAnswer(
                f"ChannelAdvisor answered with {describe_body(result.body)} where the hub "
                "expected JSON; nothing was taken from that answer. Try again later.",
                detail=f"GET {url} -> {str(result.body)[:200]}",
            )
        return result.body
