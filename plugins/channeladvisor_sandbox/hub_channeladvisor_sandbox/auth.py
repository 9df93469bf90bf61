"""OAuth2 credentials of the sandbox: applications, refresh tokens and access tokens.

Reference §1: the token call takes `Authorization: Basic base64(app_id:secret)` and a form
body `grant_type=refresh_token&refresh_token=...`; the same refresh token is reused forever
(no rotation). Choices where the reference is UNCERTAIN:

- Refresh tokens never expire by time (one version of the docs); they die only when revoked.
- Revoking a refresh token also kills the access tokens issued from it (the authorization
  is gone), so the next API call gets 401 and the refresh gets 400.
- `client_id`/`client_secret` in the form body (one script's variant) is NOT accepted: every
  other source uses Basic auth, and the hub must too.
- A refusal names its cause with the OAuth 2 error code (RFC 6749 §5.2), in a JSON 400:
  `invalid_client` (application id or shared secret) or `invalid_grant` (refresh token).
  The setting `token_errors="text"` answers the plain-text `Bad Request` CA has also been seen
  to send (reference §1, SV a8b73af), which says neither.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

#: OAuth 2 error codes of the token endpoint (RFC 6749 §5.2).
INVALID_CLIENT = "invalid_client"
INVALID_GRANT = "invalid_grant"


@dataclass
class RefreshToken:
    """A refresh token: the application it belongs to and the profiles it authorizes."""

    token: str
    application_id: str
    profile_ids: tuple[int, ...]
    revoked: bool = False


@dataclass
class AccessToken:
    """An access token issued by the token endpoint (or in-process for tests)."""

    token: str
    application_id: str
    profile_ids: tuple[int, ...]
    refresh_token: str
    expires_at: float


@dataclass(frozen=True)
class Principal:
    """Who is calling: application and authorized profiles (the first is the primary one)."""

    token: str
    application_id: str
    profile_ids: frozenset[int]
    primary_profile: int


@dataclass
class Credentials:
    """Thread-safe registry of applications and tokens."""

    applications: dict[str, str] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add_application(self, application_id: str, shared_secret: str) -> None:
        """Register (or replace) an application and its shared secret."""
        with self._lock:
            self.applications[application_id] = shared_secret

    def add_refresh_token(
        self, token: str, application_id: str, profile_ids: list[int] | tuple[int, ...]
    ) -> None:
        """Register a refresh token of an application covering the given profiles."""
        if not profile_ids:
            raise ValueError("a refresh token needs at least one profile id")
        with self._lock:
            if application_id not in self.applications:
                raise ValueError(f"unknown application id {application_id!r}")
            self.refresh_tokens[token] = RefreshToken(
                token, application_id, tuple(int(p) for p in profile_ids)
            )

    def revoke(self, token: str) -> bool:
        """Revoke a refresh token and every access token issued from it."""
        with self._lock:
            record = self.refresh_tokens.get(token)
            if record is None:
                return False
            record.revoked = True
            for key in [k for k, v in self.access_tokens.items() if v.refresh_token == token]:
                del self.access_tokens[key]
            return True

    def expire_all(self) -> int:
        """Expire every access token now; return how many were live."""
        now = time.time()
        with self._lock:
            live = sum(1 for t in self.access_tokens.values() if t.expires_at > now)
            for record in self.access_tokens.values():
                record.expires_at = min(record.expires_at, now)
            return live

    def exchange(
        self, application_id: str, shared_secret: str, refresh_token: str, ttl: float
    ) -> AccessToken | str:
        """The token call: an access token, or the OAuth error code of the refusal.

        ``invalid_client``: the application id is unknown or the shared secret wrong (the
        operator's credentials). ``invalid_grant``: the refresh token is unknown, revoked or
        another application's (the merchant's authorization).
        """
        with self._lock:
            secret = self.applications.get(application_id)
            if secret is None or not secrets.compare_digest(secret, shared_secret):
                return INVALID_CLIENT
            record = self.refresh_tokens.get(refresh_token)
            if record is None or record.revoked or record.application_id != application_id:
                return INVALID_GRANT
            return self._issue(record, ttl)

    def issue(self, refresh_token: str, ttl: float) -> AccessToken:
        """Issue an access token without HTTP (tests); raise ValueError if unusable."""
        with self._lock:
            record = self.refresh_tokens.get(refresh_token)
            if record is None or record.revoked:
                raise ValueError("unknown or revoked refresh token")
            return self._issue(record, ttl)

    def _issue(self, record: RefreshToken, ttl: float) -> AccessToken:
        now = time.time()
        if len(self.access_tokens) > 10_000:
            # Keep the registry small in long benchmarks: drop tokens that are long dead.
            for key in [k for k, v in self.access_tokens.items() if v.expires_at < now - 60]:
                del self.access_tokens[key]
        token = AccessToken(
            secrets.token_urlsafe(32),
            record.application_id,
            record.profile_ids,
            record.token,
            now + ttl,
        )
        self.access_tokens[token.token] = token
        return token

    def authenticate(self, token: str | None) -> Principal | None:
        """The caller behind an access token, or None if it is unknown or expired."""
        if not token:
            return None
        with self._lock:
            record = self.access_tokens.get(token)
            if record is None or record.expires_at <= time.time():
                return None
            return Principal(
                record.token,
                record.application_id,
                frozenset(record.profile_ids),
                record.profile_ids[0],
            )

    def to_doc(self) -> dict[str, Any]:
        """Applications and refresh tokens for persistence (access tokens are not kept)."""
        with self._lock:
            return {
                "applications": dict(self.applications),
                "refresh_tokens": [
                    {
                        "token": r.token,
                        "application_id": r.application_id,
                        "profile_ids": list(r.profile_ids),
                        "revoked": r.revoked,
                    }
                    for r in self.refresh_tokens.values()
                ],
            }

    def load_doc(self, doc: dict[str, Any]) -> None:
        """Restore applications and refresh tokens saved by `to_doc`."""
        with self._lock:
            self.applications.update(doc.get("applications", {}))
            for item in doc.get("refresh_tokens", []):
                self.refresh_tokens[item["token"]] = RefreshToken(
                    item["token"],
                    item["application_id"],
                    tuple(item["profile_ids"]),
                    bool(item.get("revoked")),
                )

    def summary(self) -> dict[str, Any]:
        """Admin view: applications (ids only), refresh tokens, live access token count."""
        now = time.time()
        with self._lock:
            return {
                "applications": sorted(self.applications),
                "refresh_tokens": [
                    {
                        "refresh_token": r.token,
                        "application_id": r.application_id,
                        "profile_ids": list(r.profile_ids),
                        "revoked": r.revoked,
                    }
                    for r in self.refresh_tokens.values()
                ],
                "live_access_tokens": sum(
                    1 for t in self.access_tokens.values() if t.expires_at > now
                ),
            }
