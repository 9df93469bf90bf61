"""The batcher: many requests in ``POST /v1/$batch`` round trips (reference §6 and §11.9).

* A batch is ``multipart/mixed``; each part is an ``application/http`` request with an
  ABSOLUTE URL and a ``Content-ID``; ``Accept: application/json`` makes ChannelAdvisor answer
  in the JSON batch format ``{"responses": [{"id", "status", "headers", "body"}]}``.
* At most 100 parts per batch. ChannelAdvisor counts every part plus the batch itself against
  the profile's rate, and so does the limiter.
* The envelope may say 200 while parts failed: every part's status goes through the outcome
  table. Only parts whose failure is transient are sent again (in the next batch, after the
  backoff wait); a part that is not idempotent is not sent again when ChannelAdvisor may have
  applied it.
* After a timeout the batcher sends smaller batches (half, down to ``min_parts``).
* ``Orders(ID)/Export`` may not be batched (reference §6); callers send it alone.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import requests

from hub_channeladvisor.client import outcomes
from hub_channeladvisor.client.outcomes import Action, Resolution, RetryBudget
from hub_channeladvisor.client.session import HttpClient, parse_body
from hub_core.crash import crash_point
from hub_core.errors import AuthError, ChannelError

log = logging.getLogger(__name__)

MAX_PARTS = 100
MIN_PARTS = 10


@dataclasses.dataclass(frozen=True)
class BatchPart:
    """One request inside a batch.

    :param url: absolute (``https://api.channeladvisor.com/v1/...``).
    :param idempotent: sending it twice does the same as once.
    :param key: the caller's handle (a SKU, say), returned with the result.
    """

    method: str
    url: str
    body: Any = None
    idempotent: bool = True
    key: Any = None


@dataclasses.dataclass
class PartResult:
    """The final answer to one part."""

    part: BatchPart
    status: int | None
    body: Any
    resolution: Resolution
    attempts: int = 1
    exhausted: bool = False

    @property
    def ok(self) -> bool:
        """Whether the part succeeded."""
        return self.resolution.action is Action.SUCCESS

    @property
    def message(self) -> str:
        """What to tell the user about a failed part."""
        text = outcomes.describe(self.resolution, self.status, self.body)
        if self.exhausted:
            text += f"; gave up after {self.attempts} attempts, it will be sent again next time"
        return text


def build_body(parts: Sequence[BatchPart], boundary: str) -> str:
    """The multipart/mixed body of a batch; Content-ID n is ``parts[n-1]``."""
    lines: list[str] = []
    for number, part in enumerate(parts, 1):
        lines += [
            f"--{boundary}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            f"Content-ID: {number}",
            "",
            f"{part.method} {part.url} HTTP/1.1",
        ]
        if part.body is not None:
            lines += [
                "Content-Type: application/json",
                "",
                json.dumps(part.body, separators=(",", ":")),
            ]
        else:
            # End of the inner headers; the part has no body.
            lines += ["", ""]
    lines.append(f"--{boundary}--")
    return "\r\n".join(lines) + "\r\n"


@dataclasses.dataclass
class _Answer:
    status: int | None
    body: Any
    headers: Mapping[str, str]
    resolution: Resolution


class Batcher:
    """Sends parts in batches and retries the failed-transient ones.

    :param max_parts: the largest batch (ChannelAdvisor recommends 100 at most).
    :param min_parts: the smallest batch after shrinking on timeouts.
    """

    def __init__(
        self, http: HttpClient, *, max_parts: int = MAX_PARTS, min_parts: int = MIN_PARTS
    ) -> None:
        self.http = http
        self.max_parts = min(max_parts, MAX_PARTS)
        self.min_parts = max(1, min(min_parts, self.max_parts))
        self.size = self.max_parts
        #: Batches sent, for tests and benchmarks.
        self.round_trips = 0

    @property
    def url(self) -> str:
        """The batch endpoint."""
        return self.http.url("$batch")

    def run(
        self,
        parts: Sequence[BatchPart],
        on_done: Callable[[list[PartResult]], None] | None = None,
    ) -> list[PartResult]:
        """Send every part and return one result per part, in order.

        :param on_done: called after each batch with the parts that got their final answer.
        :raises AuthError: the access token is refused again right after a refresh.
        :raises ChannelError: ChannelAdvisor refused the batch itself (the hub built it wrong).
        """
        results: dict[int, PartResult] = {}
        attempts = [0] * len(parts)
        queue: collections.deque[int] = collections.deque(range(len(parts)))
        budget = RetryBudget(self.http.policy)
        max_attempts = self.http.policy.max_attempts
        refreshes = 0
        while queue:
            chunk = [queue.popleft() for _ in range(min(self.size, len(queue)))]
            for index in chunk:
                attempts[index] += 1
            token_used = self.http.auth.token()
            envelope, answers = self._send([parts[i] for i in chunk])
            if envelope is not None:
                res = envelope.resolution
                if not res.retriable:
                    raise ChannelError(
                        self.http.redact(
                            "ChannelAdvisor refused a batch request: "
                            + outcomes.describe(res, envelope.status, envelope.body)
                        ),
                        detail=self.http.redact(
                            f"POST {self.url} -> {envelope.status} {envelope.body!s:.300}"
                        ),
                    )
                # The batch as a whole failed: what that means applies to every part.
                answers = [envelope] * len(chunk)

            done: dict[int, PartResult] = {}
            retry: dict[int, _Answer] = {}
            for index, answer in zip(chunk, answers, strict=True):
                res = answer.resolution
                if not res.retriable:
                    done[index] = self._final(parts[index], answer, attempts[index])
                elif res.applied_unknown and not parts[index].idempotent:
                    # ChannelAdvisor may have applied it: sending it again could apply it twice.
                    done[index] = self._final(parts[index], answer, attempts[index], unknown=True)
                elif attempts[index] >= max_attempts:
                    done[index] = self._final(parts[index], answer, attempts[index], exhausted=True)
                else:
                    retry[index] = answer

            if any(a.resolution.action is Action.REFRESH_THEN_RETRY for a in retry.values()):
                refreshes += 1
                # A refresh that did not help: the next batch is refused too.
                if refreshes > 1:
                    raise AuthError(
                        "ChannelAdvisor refused the access token again right after a refresh; "
                        "the authorization may lack access to this profile."
                    )
                self.http.auth.refresh(stale=token_used)
            else:
                refreshes = 0

            waiting = {
                i: a
                for i, a in retry.items()
                if a.resolution.action is not Action.REFRESH_THEN_RETRY
            }
            wait = 0.0
            paused = False
            if waiting:
                pick = max(waiting.values(), key=_retry_after_rank)
                # Parts count their own sends; the wait grows with the most-tried part, and
                # the run's total wait is capped.
                most = max(attempts[i] for i in waiting)
                next_wait = budget.next_wait(pick.resolution, pick.headers, attempt=most)
                if next_wait is None:
                    for index, answer in waiting.items():
                        done[index] = self._final(
                            parts[index], answer, attempts[index], exhausted=True
                        )
                        del retry[index]
                else:
                    wait = next_wait
                    if pick.resolution.action is Action.RATE_LIMITED:
                        # Every request of the profile waits (in the limiter), not only these.
                        self.http.limiter.pause(wait)
                        paused = True

            crash_point("channeladvisor.batch")
            results.update(done)
            if on_done and done:
                on_done(list(done.values()))
            # Failed parts go first in the next batch.
            queue.extendleft(reversed(list(retry)))
            if retry and wait:
                log.warning(
                    self.http.redact(f"$batch: {len(retry)} parts to send again in {wait:.2f} s")
                )
                budget.consume(wait, sleep=not paused)
        return [results[i] for i in range(len(parts))]

    def _final(
        self,
        part: BatchPart,
        answer: _Answer,
        attempts: int,
        *,
        unknown: bool = False,
        exhausted: bool = False,
    ) -> PartResult:
        resolution = outcomes.UNKNOWN_OUTCOME if unknown else answer.resolution
        return PartResult(part, answer.status, answer.body, resolution, attempts, exhausted)

    def _send(self, chunk: Sequence[BatchPart]) -> tuple[_Answer | None, list[_Answer]]:
        """Send one batch: (the envelope's failure, or None and one answer per part)."""
        boundary = f"batch_{uuid.uuid4().hex}"
        self.round_trips += 1
        try:
            response = self.http.send_once(
                "POST",
                self.url,
                data=build_body(chunk, boundary).encode(),
                headers={
                    "Content-Type": f"multipart/mixed; boundary={boundary}",
                    "Accept": "application/json",
                },
                units=len(chunk) + 1,
                timeout=self.http.timeouts.batch,
            )
        except requests.RequestException as exc:
            res = outcomes.classify_exception(exc)
            if res.timeout:
                self._shrink()
            log.warning(
                f"{outcomes.request_line('POST', self.url)} of {len(chunk)} parts failed: "
                f"{outcomes.brief(exc)}"
            )
            return _Answer(None, None, {}, res), []
        body = parse_body(response)
        status = response.status_code
        if status == 413:
            # Too big: smaller batches; the parts were not carried out.
            self._shrink()
            return _Answer(status, body, response.headers, outcomes.STATUS_TABLE[408]), []
        res = outcomes.classify_status(status, body)
        if res.action is not Action.SUCCESS:
            if res.timeout:
                self._shrink()
            return _Answer(status, body, response.headers, res), []
        responses = body.get("responses") if isinstance(body, dict) else None
        if not isinstance(responses, list):
            unreadable = dataclasses.replace(
                outcomes.STATUS_TABLE[500],
                message="ChannelAdvisor's batch answer could not be read",
            )
            return _Answer(status, body, response.headers, unreadable), []
        by_id = {str(r.get("id")): r for r in responses if isinstance(r, dict)}
        answers = []
        for number in range(1, len(chunk) + 1):
            item = by_id.get(str(number))
            if item is None:
                missing = dataclasses.replace(
                    outcomes.STATUS_TABLE[500],
                    message="ChannelAdvisor's batch answer left this request out",
                )
                answers.append(_Answer(None, None, {}, missing))
                continue
            part_status = _status(item.get("status"))
            if part_status is None:
                unreadable = dataclasses.replace(
                    outcomes.STATUS_TABLE[500],
                    message="ChannelAdvisor's batch answer gave this request no readable status",
                )
                answers.append(_Answer(None, None, {}, unreadable))
                continue
            part_body = item.get("body")
            headers = item.get("headers") if isinstance(item.get("headers"), dict) else {}
            answers.append(
                _Answer(
                    part_status,
                    part_body,
                    headers,
                    outcomes.classify_status(part_status, part_body),
                )
            )
        return None, answers

    def _shrink(self) -> None:
        smaller = max(self.min_parts, self.size // 2)
        if smaller < self.size:
            log.warning("$batch timed out; sending batches of %d from now on", smaller)
        self.size = smaller


def _status(value: Any) -> int | None:
    """A part's HTTP status, or None when it is not a three-digit number."""
    if isinstance(value, bool):
        return None
    try:
        status = int(value)
    except (TypeError, ValueError):
        return None
    return status if 100 <= status <= 599 else None


def _retry_after_rank(answer: _Answer) -> float:
    # A Retry-After that ChannelAdvisor asked for wins over an exponential wait.
    if answer.resolution.action is Action.RATE_LIMITED:
        return outcomes.retry_after_seconds(answer.headers) or 0.0
    return -1.0
