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
* Batches go out in parallel, up to the application's in-flight limit (5): when batches are
  many, their round trips would otherwise add up to more than the rate allows. Answers are
  handled one at a time on the caller's thread, in the order they arrive.
* ``Orders(ID)/Export`` may not be batched (reference §6); callers send it alone.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import requests

from hub_channeladvisor.client import outcomes
from hub_channeladvisor.client.outcomes import Action, Resolution
from hub_channeladvisor.client.retry import Answer, Final
from hub_channeladvisor.client.session import HttpClient
from hub_core.crash import crash_point
from hub_core.errors import ChannelError

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


class PartResult(Final[BatchPart]):
    """The final answer to one part."""

    @property
    def part(self) -> BatchPart:
        """The part answered."""
        return self.item

    @property
    def message(self) -> str:
        """What to tell the user about a failed part."""
        text = super().message
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
        self._lock = threading.Lock()

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

        def report(done: list[Final[BatchPart]]) -> None:
            crash_point("channeladvisor.batch")
            if on_done and done:
                on_done([PartResult(**vars(final)) for final in done])

        finals = self.http.engine(f"POST {self.url}").run(
            parts,
            self._send,
            size=lambda: self.size,
            idempotent=lambda part: part.idempotent,
            on_round=report,
            parallel=self._width(len(parts)),
        )
        return [PartResult(**vars(final)) for final in finals]

    def _width(self, parts: int) -> int:
        """Batches sent at once: up to the in-flight limit, no more than there are batches."""
        limit = getattr(self.http.limiter.in_flight, "limit", 1)
        return max(1, min(int(limit), -(-parts // self.size) if parts else 1))

    def _send(self, chunk: list[BatchPart]) -> list[Answer]:
        """Send one batch: one answer per part; a failure of the whole batch is every part's.

        :raises ChannelError: ChannelAdvisor refused the batch itself (the hub built it wrong).
        """
        envelope = self._post(chunk)
        if isinstance(envelope, list):
            return envelope
        if not envelope.resolution.retriable:
            raise ChannelError(
                "ChannelAdvisor refused a batch request: "
                + outcomes.describe(envelope.resolution, envelope.status, envelope.body),
                detail=f"POST {self.url} -> {envelope.status} {envelope.body!s:.300}",
            )
        return [envelope] * len(chunk)

    def _post(self, chunk: list[BatchPart]) -> Answer | list[Answer]:
        """One round trip: the envelope's failure, or one answer per part."""
        boundary = f"batch_{uuid.uuid4().hex}"
        with self._lock:  # batches go out from several threads
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
            failed = Answer.of_error(exc)
            if failed.resolution.timeout:
                self._shrink()
            return failed
        envelope = Answer.of_response(response)
        if envelope.status == 413:
            # Too big: smaller batches; the parts were not carried out.
            self._shrink()
            return dataclasses.replace(envelope, resolution=outcomes.STATUS_TABLE[408])
        if envelope.resolution.action is not Action.SUCCESS:
            if envelope.resolution.timeout:
                self._shrink()
            return envelope
        body = envelope.body
        responses = body.get("responses") if isinstance(body, dict) else None
        if not isinstance(responses, list):
            return dataclasses.replace(
                envelope, resolution=_unreadable("ChannelAdvisor's batch answer could not be read")
            )
        by_id = {str(r.get("id")): r for r in responses if isinstance(r, dict)}
        answers = []
        for number in range(1, len(chunk) + 1):
            item = by_id.get(str(number))
            if item is None:
                missing = _unreadable("ChannelAdvisor's batch answer left this request out")
                answers.append(Answer(None, None, missing))
                continue
            status = _status(item.get("status"))
            if status is None:
                unreadable = _unreadable(
                    "ChannelAdvisor's batch answer gave this request no readable status"
                )
                answers.append(Answer(None, None, unreadable))
                continue
            part_body = item.get("body")
            headers = item.get("headers") if isinstance(item.get("headers"), dict) else {}
            resolution = outcomes.classify_status(status, part_body)
            answers.append(Answer(status, part_body, resolution, headers))
        return answers

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


def _unreadable(message: str) -> Resolution:
    """A batch answer the hub cannot read: a server error, with what was wrong."""
    return dataclasses.replace(outcomes.STATUS_TABLE[500], message=message)
