"""The one table that says what every HTTP outcome means, and how long to wait before a retry.

Every answer of ChannelAdvisor (a status code, inside a ``$batch`` too) and every transport
failure (connection refused or reset, timeouts) is looked up here and resolved to an action:

* ``SUCCESS`` — done;
* ``RETRY`` — a transient failure: wait (exponential backoff with jitter) and send again;
* ``RATE_LIMITED`` — 429: wait ``Retry-After`` when given, else back off, and send again;
* ``REFRESH_THEN_RETRY`` — 401: refresh the access token once and send again;
* ``RECORD_FAILURE`` — this record fails (bad data, unknown id); the operation goes on;
* ``FAIL`` — the operation cannot go on (missing permission, a request the hub built wrong).

``applied_unknown`` marks outcomes after which ChannelAdvisor may have carried the request out
even though no answer arrived (5xx, read timeouts, a connection dropped after sending): a write
that is not idempotent is only sent again after checking that it did not happen.
(The idea is Airbyte's ``default_error_mapping``; the values are ChannelAdvisor's, reference §7.)
"""

from __future__ import annotations

import dataclasses
import enum
import random
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from hub_channeladvisor.client.answers import describe_body, is_html
from hub_core.errors import ChannelError


class Action(enum.StrEnum):
    """What to do after an outcome."""

    SUCCESS = "success"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    REFRESH_THEN_RETRY = "refresh_then_retry"
    RECORD_FAILURE = "record_failure"
    FAIL = "fail"


class Kind(enum.StrEnum):
    """Who can fix a failure."""

    NONE = "none"
    #: The merchant or operator must change credentials or settings.
    CONFIG = "config"
    #: It may work later; nobody has to change anything.
    TRANSIENT = "transient"
    #: This record is wrong on one side (unknown id, data ChannelAdvisor refuses).
    RECORD = "record"
    #: The hub sent something ChannelAdvisor cannot take: a bug in the hub.
    SYSTEM = "system"


@dataclasses.dataclass(frozen=True)
class Resolution:
    """The meaning of one outcome: the action, who can fix it, and a message for the user."""

    action: Action
    kind: Kind
    message: str
    #: ChannelAdvisor may have applied the request although no usable answer came back.
    applied_unknown: bool = False
    #: The request timed out (``$batch`` sends smaller batches afterwards).
    timeout: bool = False

    @property
    def retriable(self) -> bool:
        """Whether the action sends the request again."""
        return self.action in (Action.RETRY, Action.RATE_LIMITED, Action.REFRESH_THEN_RETRY)


_OK = Resolution(Action.SUCCESS, Kind.NONE, "OK")
_SERVER = Resolution(
    Action.RETRY,
    Kind.TRANSIENT,
    "ChannelAdvisor had a server error",
    applied_unknown=True,
)

#: Status code -> resolution (reference §7 and D-status).
STATUS_TABLE: dict[int, Resolution] = {
    200: _OK,
    201: _OK,
    202: _OK,
    204: _OK,
    400: Resolution(Action.RECORD_FAILURE, Kind.RECORD, "ChannelAdvisor refused the request"),
    401: Resolution(
        Action.REFRESH_THEN_RETRY, Kind.CONFIG, "ChannelAdvisor refused the access token"
    ),
    403: Resolution(
        Action.FAIL,
        Kind.CONFIG,
        "ChannelAdvisor does not allow these tokens to do this (a read-only authorization?); "
        "reconnect with an authorization that may write",
    ),
    404: Resolution(Action.RECORD_FAILURE, Kind.RECORD, "ChannelAdvisor has no such record"),
    405: Resolution(Action.FAIL, Kind.SYSTEM, "ChannelAdvisor does not allow this method here"),
    # Seen inside $batch "due to factors on ChannelAdvisor side" (reference §5).
    406: Resolution(
        Action.RETRY,
        Kind.TRANSIENT,
        "ChannelAdvisor could not serve the request now",
        applied_unknown=True,
    ),
    # The server gave up waiting for our request: it was not carried out.
    408: Resolution(Action.RETRY, Kind.TRANSIENT, "ChannelAdvisor timed out reading the request"),
    409: Resolution(Action.RECORD_FAILURE, Kind.RECORD, "ChannelAdvisor reported a conflict"),
    413: Resolution(Action.FAIL, Kind.SYSTEM, "The request was too large for ChannelAdvisor"),
    414: Resolution(Action.FAIL, Kind.SYSTEM, "The request URL was too long for ChannelAdvisor"),
    415: Resolution(Action.FAIL, Kind.SYSTEM, "ChannelAdvisor refused the request's content type"),
    # Throttled before anything was done: safe to send again, writes included.
    429: Resolution(Action.RATE_LIMITED, Kind.TRANSIENT, "ChannelAdvisor's rate limit was reached"),
    500: _SERVER,
    502: dataclasses.replace(_SERVER, message="ChannelAdvisor's gateway failed"),
    503: dataclasses.replace(_SERVER, message="ChannelAdvisor is unavailable"),
    504: dataclasses.replace(_SERVER, message="ChannelAdvisor's gateway timed out", timeout=True),
}
_OTHER_2XX = _OK
_OTHER_4XX = Resolution(Action.RECORD_FAILURE, Kind.RECORD, "ChannelAdvisor refused the request")
_OTHER_5XX = _SERVER
_OTHER_STATUS = Resolution(Action.FAIL, Kind.SYSTEM, "ChannelAdvisor answered unexpectedly")

#: Transport failure -> resolution. Looked up along the exception's class hierarchy, so the
#: most specific entry wins (a ConnectTimeout is also a ConnectionError).
EXCEPTION_TABLE: dict[type[BaseException], Resolution] = {
    # Never connected: nothing was sent, so a retry is safe for every request.
    requests.exceptions.ConnectTimeout: Resolution(
        Action.RETRY, Kind.TRANSIENT, "Could not connect to ChannelAdvisor (timeout)", timeout=True
    ),
    # Sent, but no answer in time: ChannelAdvisor may have carried it out.
    requests.exceptions.ReadTimeout: Resolution(
        Action.RETRY,
        Kind.TRANSIENT,
        "ChannelAdvisor did not answer in time",
        applied_unknown=True,
        timeout=True,
    ),
    requests.exceptions.ChunkedEncodingError: Resolution(
        Action.RETRY, Kind.TRANSIENT, "ChannelAdvisor's answer was cut off", applied_unknown=True
    ),
    requests.exceptions.ContentDecodingError: Resolution(
        Action.RETRY, Kind.TRANSIENT, "ChannelAdvisor's answer was garbled", applied_unknown=True
    ),
    # Refused or reset: we cannot tell whether the request reached the server.
    requests.exceptions.ConnectionError: Resolution(
        Action.RETRY,
        Kind.TRANSIENT,
        "The connection to ChannelAdvisor failed",
        applied_unknown=True,
    ),
    requests.exceptions.RequestException: Resolution(
        Action.FAIL, Kind.SYSTEM, "The request to ChannelAdvisor could not be made"
    ),
}

#: A write whose answer was lost and which the hub cannot check: not sent again.
UNKNOWN_OUTCOME = Resolution(
    Action.RECORD_FAILURE,
    Kind.TRANSIENT,
    "ChannelAdvisor's answer was lost and the change cannot be checked, so it was not sent "
    "again (sending it twice would apply it twice); check the value in ChannelAdvisor",
    applied_unknown=True,
)

# ChannelAdvisor has answered this inside 200 envelopes (reference §1, SV d2a27f6).
_DENIED = "authorization has been denied"


def error_message(body: Any) -> str:
    """ChannelAdvisor's own error text: ``error.message``, a top-level ``Message``, or text."""
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str) and error:
            return error
        for key in ("Message", "message"):
            if body.get(key):
                return str(body[key])
        return ""
    if is_html(body):
        # A proxy's error page: its title says enough; its markup would bury the message.
        return describe_body(body)
    if isinstance(body, str):
        return body.strip()[:300]
    return ""


def classify_status(status: int, body: Any = None) -> Resolution:
    """The resolution of an HTTP status (with its body, for the 'denied' message)."""
    if status != 401 and _DENIED in error_message(body).lower():
        return STATUS_TABLE[401]
    if status in STATUS_TABLE:
        return STATUS_TABLE[status]
    if 200 <= status < 300:
        return _OTHER_2XX
    if 400 <= status < 500:
        return _OTHER_4XX
    if 500 <= status < 600:
        return _OTHER_5XX
    return _OTHER_STATUS


def classify_exception(exc: BaseException) -> Resolution:
    """The resolution of a transport failure."""
    for cls in type(exc).__mro__:
        if cls in EXCEPTION_TABLE:
            return EXCEPTION_TABLE[cls]
    return EXCEPTION_TABLE[requests.exceptions.RequestException]


def describe(resolution: Resolution, status: int | None, body: Any = None) -> str:
    """A user message: the table's text, the status, and ChannelAdvisor's own words."""
    text = resolution.message
    if status is not None:
        text += f" (HTTP {status})"
    detail = error_message(body)
    if detail:
        text += f": {detail}"
    return text


# --------------------------------------------------------------------------------------------
# Short notes and the unreachable server
# --------------------------------------------------------------------------------------------


def request_line(method: str, url: str) -> str:
    """``GET /v1/Products``: a request by method and path; the query (filters) is left out."""
    return f"{method} {urlsplit(url).path or '/'}"


def unreachable_reason(exc: BaseException) -> str | None:
    """Why no connection to the server could be made, or None if one was made.

    requests wraps urllib3's errors (``MaxRetryError`` around ``NewConnectionError``): the
    cause is read from there rather than from its 1,000-character text.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return None
    cause: Any = exc.args[0] if exc.args else None
    cause = getattr(cause, "reason", cause)
    if isinstance(cause, urllib3.exceptions.NameResolutionError):
        return "host name not found"
    if isinstance(cause, urllib3.exceptions.NewConnectionError):
        refused = isinstance(cause.__cause__ or cause.__context__, ConnectionRefusedError)
        return "connection refused" if refused or "refused" in str(cause) else "cannot connect"
    return None


def brief(exc: BaseException) -> str:
    """A transport failure in a few words (``connection refused``, ``ReadTimeout``)."""
    return unreachable_reason(exc) or type(exc).__name__


def retry_note(what: str, failure: str, attempt: int, wait: float) -> str:
    """One short line for stderr: ``GET /v1/Products: HTTP 503; retry 2 in 1.5 s``."""
    return f"{what}: {failure}; retry {attempt} in {wait:.1f} s"


def unreachable_message(base_url: str, connection_name: str, reason: str, attempts: int) -> str:
    """The user message when ChannelAdvisor could never be reached: the URL and what to check."""
    return (
        f"Could not reach ChannelAdvisor at {base_url} ({reason}; {attempts} attempts). "
        f"Check the connection's base_url ('hub connections show {connection_name}'; change it "
        f"with 'hub connections configure {connection_name} --set base_url=URL') and the "
        "network."
    )


# --------------------------------------------------------------------------------------------
# Backoff
# --------------------------------------------------------------------------------------------


def sleep(seconds: float) -> None:
    """Wait ``seconds``. Every wait of the client goes through here (tests replace it)."""
    time.sleep(seconds)


def retry_after_seconds(
    headers: Mapping[str, str] | None, now: float | None = None
) -> float | None:
    """The wait asked for by a ``Retry-After`` header (seconds or an HTTP date), if any."""
    if not headers:
        return None
    value = None
    for key, header in headers.items():
        if key.lower() == "retry-after":
            value = str(header).strip()
            break
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclasses.dataclass
class BackoffPolicy:
    """How often and how long to retry: capped in attempts and in total wait.

    The wait before retry ``n`` (1-based) is ``Retry-After`` when ChannelAdvisor sends one,
    else ``min(cap, base * 2**(n-1))`` with "equal jitter": half of it fixed, half random, so
    that several clients throttled together do not come back together.
    """

    #: Sends of one request, the first included.
    max_attempts: int = 5
    #: Seconds of waiting, summed over the retries of one request (or one ``$batch`` run).
    max_total_wait: float = 120.0
    base: float = 1.0
    cap: float = 30.0
    rng: random.Random = dataclasses.field(default_factory=random.Random)
    #: The sleep function; None means :func:`sleep` of this module, looked up at call time.
    sleeper: Callable[[float], None] | None = None

    def exponential(self, retry: int) -> float:
        """The jittered exponential wait before retry number ``retry`` (1-based)."""
        full = min(self.cap, self.base * (2 ** max(0, retry - 1)))
        return full / 2 + self.rng.uniform(0, full / 2)

    def sleep(self, seconds: float) -> None:
        """Wait, through the configured sleeper."""
        if seconds > 0:
            (self.sleeper or sleep)(seconds)


class RetryBudget:
    """The retries left to one request, or one ``$batch`` run: sends and time spent waiting."""

    def __init__(self, policy: BackoffPolicy) -> None:
        self.policy = policy
        self.attempts = 1
        self.waited = 0.0
        self.last_wait: float | None = None

    def next_wait(
        self,
        resolution: Resolution,
        headers: Mapping[str, str] | None = None,
        *,
        attempt: int | None = None,
    ) -> float | None:
        """The wait before the next send, or None when the attempts or the wait are used up.

        :param attempt: the sends so far of what is retried, when the caller counts them
            itself (a batch counts per part); by default this budget's own count.
        """
        sends = self.attempts if attempt is None else attempt
        if sends >= self.policy.max_attempts:
            return None
        asked = retry_after_seconds(headers) if resolution.action is Action.RATE_LIMITED else None
        wait = asked if asked is not None else self.policy.exponential(sends)
        if self.waited + wait > self.policy.max_total_wait:
            return None
        return wait

    def consume(self, wait: float, *, sleep: bool = True) -> None:
        """Record a retry after waiting ``wait`` seconds, and wait (unless the limiter will)."""
        self.attempts += 1
        self.waited += wait
        self.last_wait = wait
        if sleep:
            self.policy.sleep(wait)


class RetriesExhausted(ChannelError):
    """A request kept failing with a transient outcome until the retries ran out."""

    def __init__(
        self, message: str, *, resolution: Resolution, status: int | None, detail: str | None = None
    ) -> None:
        super().__init__(message, detail=detail)
        self.resolution = resolution
        self.status = status


def exhausted_message(
    resolution: Resolution, status: int | None, body: Any, attempts: int, waited: float
) -> str:
    """The user message after the retries ran out; a rate limit reads differently."""
    if resolution.action is Action.RATE_LIMITED:
        return (
            f"ChannelAdvisor kept refusing requests for going over its rate limit (HTTP 429) "
            f"after {attempts} attempts and {waited:.0f} s of waiting; "
            "try again in a few minutes."
        )
    return (
        f"{describe(resolution, status, body)}; gave up after {attempts} attempts and "
        f"{waited:.0f} s of waiting. Try again later."
    )
