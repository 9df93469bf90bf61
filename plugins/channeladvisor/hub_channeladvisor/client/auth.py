"""The authenticator: owns the access token of a connection (reference §1, design §6).

* Sends ``Authorization: Bearer <access token>``; never puts a token in a URL.
* Refreshes 60 s before the stored expiry, and once when ChannelAdvisor answers 401 (the
  client asks for it), with ``POST {base_url}/oauth2/token``, Basic auth
  ``application_id:shared_secret`` and the form ``grant_type=refresh_token&refresh_token=…``.
* Stores the new access token and its expiry on the connection (``save_config``), so a later
  command does not refresh again.
* A refused refresh is told apart by the OAuth error code (design §6): ``invalid_client``
  means the operator's application id or shared secret is wrong — an
  :class:`~hub_core.errors.AuthError` saying to fix those, the merchant's authorization is
  untouched; ``invalid_grant`` (and a refusal without a code: a 400 whose body may be plain
  text) marks the connection ``needs_reauth`` and raises
  :class:`~hub_core.errors.NeedsReauth`; from then on no request is sent for that connection
  until it is reconnected.
* A bare 401 from the token endpoint (no OAuth error) is not a documented refusal (reference
  §1: refusals are 400s) and says nothing about the refresh token, so it is retried once, as
  a transient failure; a second one in a row is taken as a refusal (``needs_reauth``).
* Thread-safe: the token state lives in a process-wide :class:`TokenStore` per refresh token,
  so several threads (and several operations) refresh once between them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from hub_channeladvisor.client import outcomes
from hub_channeladvisor.client.answers import refuse_redirect
from hub_channeladvisor.client.outcomes import Action, BackoffPolicy, Kind, Resolution
from hub_channeladvisor.client.retry import Answer, RetryEngine
from hub_channeladvisor.schemas import (
    APPLICATION_ID_ENV,
    SHARED_SECRET_ENV,
    env_fallback_message,
)
from hub_core.channel import ChannelConnection
from hub_core.crash import crash_point
from hub_core.errors import AuthError, ChannelError, InvalidInput, NeedsReauth

log = logging.getLogger(__name__)

#: Refresh this many seconds before the stored expiry.
REFRESH_MARGIN = 60.0
#: The start of a message when the token endpoint kept failing or refused the request.
REFRESH_FAILED = "Could not refresh the ChannelAdvisor access token: "
#: Lifetime assumed when the token answer has no ``expires_in`` (reference §1: one hour).
DEFAULT_LIFETIME = 3600.0
#: A 401 from the token endpoint without an OAuth error: retried once (see the module docs).
BARE_401 = Resolution(Action.RETRY, Kind.TRANSIENT, "ChannelAdvisor's token endpoint answered 401")


def client_refused_message(name: str) -> str:
    """What to tell the operator whose application id or shared secret was refused."""
    return (
        f"ChannelAdvisor refused the application id or shared secret used by connection "
        f"'{name}' (invalid_client): they belong to whoever operates the hub, not to the "
        "merchant, whose authorization is untouched (do not re-authorize). Fix them in the "
        f"environment ({APPLICATION_ID_ENV}, {SHARED_SECRET_ENV}) or on the connection: "
        f"hub connections configure {name} --set application_id=... --set shared_secret=..."
    )


def oauth_error(text: str) -> str:
    """The OAuth ``error`` code of a token endpoint answer (``invalid_grant``…), or ``""``."""
    try:
        body = json.loads(text)
    except ValueError:
        return ""
    code = body.get("error") if isinstance(body, dict) else None
    return code.strip() if isinstance(code, str) else ""


def reauth_message(name: str) -> str:
    """What happened, for a merchant whose refresh token was refused (the core adds the one
    command that reconnects it: the channel's ``reauth_advice``)."""
    return (
        f"ChannelAdvisor refused the refresh token of connection '{name}' (the authorization "
        "was revoked, or the refresh token, application id or shared secret is wrong)"
    )


@dataclasses.dataclass
class TokenStore:
    """The current access token of one refresh token, shared by every client of the process."""

    access_token: str | None = None
    expires_at: float | None = None
    refused: str | None = None
    refreshes: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


_STORES: dict[tuple[str, str, str], TokenStore] = {}
_STORES_LOCK = threading.Lock()


def token_store(token_url: str, application_id: str, refresh_token: str) -> TokenStore:
    """The process-wide token state for these credentials."""
    with _STORES_LOCK:
        return _STORES.setdefault((token_url, application_id, refresh_token), TokenStore())


def reset_token_stores() -> None:
    """Forget every cached token (tests)."""
    with _STORES_LOCK:
        _STORES.clear()


def resolve_credentials(config: dict[str, Any] | Any) -> tuple[str, str]:
    """The application id and shared secret: the connection's, else the environment's.

    :raises InvalidInput: either is missing both ways; the message names the ``--set`` key and
        the environment variable.
    """
    missing = []
    app_id = config.get("application_id") or os.environ.get(APPLICATION_ID_ENV)
    secret = config.get("shared_secret") or os.environ.get(SHARED_SECRET_ENV)
    if not app_id:
        missing.append(env_fallback_message("application_id", APPLICATION_ID_ENV))
    if not secret:
        missing.append(env_fallback_message("shared_secret", SHARED_SECRET_ENV))
    if missing:
        raise InvalidInput("The ChannelAdvisor connection lacks credentials:", errors=missing)
    return str(app_id), str(secret)


class Authenticator(requests.auth.AuthBase):
    """A ``requests`` auth object that owns a connection's tokens.

    :param connection: the connection; its config holds the tokens.
    :param session: the client's session, used for the token call too.
    :param honour_health: refuse to work for a connection marked ``needs_reauth`` (False
        only for the connection test, which is how a merchant checks new tokens).
    :param persist: runs a change of the connection (``save_config``, ``mark_needs_reauth``)
        on the thread that owns the connection; by default, at once.
    """

    def __init__(
        self,
        connection: ChannelConnection,
        *,
        base_url: str,
        session: requests.Session,
        policy: BackoffPolicy,
        timeout: tuple[float, float],
        persist: Callable[[Callable[[], None]], None] | None = None,
        clock: Callable[[], float] = time.time,
        honour_health: bool = True,
    ) -> None:
        self.connection = connection
        self.base_url = base_url
        self.token_url = f"{base_url}/oauth2/token"
        self.session = session
        self.policy = policy
        self.timeout = timeout
        self.persist = persist or (lambda change: change())
        self.clock = clock
        self.honour_health = honour_health
        #: Whether the refresh in progress has had its one retry of a bare 401.
        self._bare_401_retried = False
        self.application_id, self._shared_secret = resolve_credentials(connection.config)
        self._refresh_token = str(connection.config["refresh_token"])
        self.store = token_store(self.token_url, self.application_id, self._refresh_token)
        with self.store.lock:
            self._adopt_connection_token()

    # -- state ---------------------------------------------------------------------------

    @property
    def secrets(self) -> list[str]:
        """Every secret this object knows, for redaction."""
        return [s for s in (self._shared_secret, self._refresh_token, self.store.access_token) if s]

    def _adopt_connection_token(self) -> None:
        # The connection may carry a newer token than the store (another process refreshed).
        token = self.connection.config.get("access_token")
        expires = self.connection.config.get("access_token_expires_at")
        if not token:
            return
        store = self.store
        if store.access_token is None or (
            expires is not None and (store.expires_at is None or expires > store.expires_at)
        ):
            store.access_token = str(token)
            store.expires_at = float(expires) if expires is not None else None

    def _valid(self) -> bool:
        store = self.store
        if not store.access_token:
            return False
        # An access token of unknown age (given by the merchant) is tried; a 401 refreshes it.
        return store.expires_at is None or self.clock() < store.expires_at - REFRESH_MARGIN

    def check_usable(self) -> None:
        """Stop at once when the connection must be reconnected.

        :raises NeedsReauth: the connection is marked ``needs_reauth`` (unless this
            authenticator was made to test the connection) or a refresh was refused.
        """
        marked = self.honour_health and self.connection.health == "needs_reauth"
        if marked or self.store.refused:
            raise NeedsReauth(reauth_message(self.connection.name))

    # -- tokens --------------------------------------------------------------------------

    def token(self) -> str:
        """A valid access token, refreshed first when it is (about to be) expired."""
        self.check_usable()
        if self._valid():
            return str(self.store.access_token)
        with self.store.lock:
            # Another thread may have refreshed while this one waited for the lock.
            if self._valid():
                return str(self.store.access_token)
            return self._refresh_locked()

    def refresh(self, stale: str | None = None) -> str:
        """Refresh the access token after a 401 (unless another thread already did).

        :param stale: the token ChannelAdvisor refused; if the store holds another one by now,
            that one is returned without a new refresh.
        """
        self.check_usable()
        with self.store.lock:
            if stale is not None and self.store.access_token not in (None, stale) and self._valid():
                return str(self.store.access_token)
            return self._refresh_locked()

    def _refresh_locked(self) -> str:
        self.check_usable()
        target = f"POST {self.token_url}"
        engine = RetryEngine(
            self.policy,
            target=target,
            line="token refresh " + outcomes.request_line("POST", self.token_url),
        )
        # One bare 401 may be retried in each refresh.
        self._bare_401_retried = False
        final = engine.run_one(self._post_token)
        if final.ok:
            return self._store_token(final.body)
        detail = final.detail(target)
        if final.exhausted:
            message = final.gave_up_message(self.base_url, self.connection.name)
            if not final.unreachable:
                message = REFRESH_FAILED + message
            raise ChannelError(message, detail=detail)
        raise AuthError(REFRESH_FAILED + final.message, detail=detail)

    def _post_token(self) -> Answer:
        """One ``POST`` to the token endpoint; a refusal or an answer without a token raises."""
        try:
            response = self.session.post(
                self.token_url,
                auth=(self.application_id, self._shared_secret),
                data={"grant_type": "refresh_token", "refresh_token": self._refresh_token},
                headers={"Accept": "application/json"},
                timeout=self.timeout,
                # Never followed: the form carries the refresh token and the secret.
                allow_redirects=False,
            )
            refuse_redirect(response, self.token_url, self.token_url)
        except requests.RequestException as exc:
            return Answer.of_error(exc)
        # A refusal may come as plain text (reference §1, SV a8b73af): check the status
        # before reading JSON.
        if (
            response.status_code == 401
            and not self._bare_401_retried
            and not oauth_error(response.text)
        ):
            # Unexplained (a gateway's, a glitch's): worth one more try before the merchant
            # is asked to reconnect.
            self._bare_401_retried = True
            return dataclasses.replace(Answer.of_response(response), resolution=BARE_401)
        if response.status_code in (400, 401):
            self._refused(response.status_code, response.text)
        answer = Answer.of_response(response)
        if answer.status == 200 and not (
            isinstance(answer.body, dict) and answer.body.get("access_token")
        ):
            raise ChannelError(
                "ChannelAdvisor's token endpoint answered without an access token.",
                detail=f"token answer: {str(answer.body)[:300]}",
            )
        return answer

    def _refused(self, status: int, text: str) -> None:
        detail = f"token endpoint HTTP {status}: {text.strip()[:200]}"
        if oauth_error(text) == "invalid_client":
            # The operator's credentials: another connection with the same ones fails alike,
            # and nothing about this merchant's refresh token is known.
            log.error(detail)
            raise AuthError(client_refused_message(self.connection.name), detail=detail)
        message = reauth_message(self.connection.name)
        self.store.refused = message
        log.error(detail)
        self.persist(lambda: self.connection.mark_needs_reauth(message))
        raise NeedsReauth(message, detail=detail)

    def _store_token(self, body: dict[str, Any]) -> str:
        token = str(body["access_token"])
        try:
            lifetime = float(body.get("expires_in") or DEFAULT_LIFETIME)
        except (TypeError, ValueError):
            lifetime = DEFAULT_LIFETIME
        expires_at = self.clock() + lifetime
        self.store.access_token = token
        self.store.expires_at = expires_at
        self.store.refreshes += 1
        log.info("Refreshed the ChannelAdvisor access token of connection %s", self.connection.name)
        crash_point("channeladvisor.token")
        self.persist(
            lambda: self.connection.save_config(
                access_token=token, access_token_expires_at=expires_at
            )
        )
        return token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Put the Bearer header on an API request."""
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request
