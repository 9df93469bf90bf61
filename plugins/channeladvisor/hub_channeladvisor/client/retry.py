"""The one retry engine: every request of the client is sent again by it, or not at all.

A plain request, the token refresh and the parts of a ``$batch`` all go through
:meth:`RetryEngine.run`: it sends items (one request, or many parts per round trip), looks
each answer up in the outcome table (:mod:`.outcomes`) and decides, the same way whichever
path met the answer:

* success or a failure that a retry cannot mend (a 4xx, a refused operation): done;
* 401: refresh the access token and send again; a refresh that does not help (the next send
  is refused again) fails the operation;
* a transient failure (5xx, 408, a dropped connection) or 429: wait and send again, failed
  items first, until an item has been sent ``max_attempts`` times (every send counts) or the
  waits of the run would pass ``max_total_wait``; a 429 waits its ``Retry-After`` in the
  limiter, so every request of the profile waits, not only this one;
* a write that is not idempotent is not sent again after an answer that may hide its having
  been applied, unless ``verify`` finds that it was not.

What the caller makes of a final answer (a result, or an exception) stays with the caller;
the messages are built here and in :mod:`.outcomes`, once.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

import requests

from hub_channeladvisor.client import outcomes
from hub_channeladvisor.client.answers import parse_body
from hub_channeladvisor.client.outcomes import Action, BackoffPolicy, Resolution, RetryBudget
from hub_core.errors import AuthError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The operation fails when the access token is refused right after a refresh.
REFRESHED_AGAIN = (
    "ChannelAdvisor refused the access token again right after a refresh; "
    "the authorization may lack access to this profile."
)


@dataclasses.dataclass(frozen=True)
class Answer:
    """What one send brought back: an HTTP answer, or the transport failure instead."""

    status: int | None
    body: Any
    resolution: Resolution
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    error: BaseException | None = None

    @classmethod
    def of_response(cls, response: requests.Response) -> Answer:
        """The answer of a response, its body read and its status looked up in the table."""
        body = parse_body(response)
        resolution = outcomes.classify_status(response.status_code, body)
        return cls(response.status_code, body, resolution, response.headers)

    @classmethod
    def of_error(cls, exc: requests.RequestException) -> Answer:
        """The answer of a transport failure, looked up in the table."""
        return cls(None, None, outcomes.classify_exception(exc), error=exc)

    @property
    def failure(self) -> str:
        """A few words for a retry note: ``HTTP 503``, ``connection refused``."""
        return outcomes.brief(self.error) if self.error else f"HTTP {self.status}"

    @property
    def unreachable(self) -> str | None:
        """Why no connection could be made at all, or None."""
        return outcomes.unreachable_reason(self.error) if self.error else None

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.resolution.action is Action.SUCCESS

    @property
    def message(self) -> str:
        """What to tell the user about a failure (the table's text and ChannelAdvisor's)."""
        return outcomes.describe(self.resolution, self.status, self.body)

    def detail(self, target: str) -> str:
        """The internal detail of an error: the request and what came back (secrets are masked
        by the core as the error leaves the plugin)."""
        if self.error is not None:
            return f"{target} -> {type(self.error).__name__}: {self.error}"
        return f"{target} -> HTTP {self.status}: {outcomes.error_message(self.body)}"


@dataclasses.dataclass(frozen=True)
class Final(Answer, Generic[T]):
    """The final answer to one item, after every retry the engine allowed. Its resolution
    may be what the engine made of the last answer (an unknown outcome, a success that
    ``verify`` found)."""

    _: dataclasses.KW_ONLY
    item: T
    #: Sends of this item, the first included.
    attempts: int = 1
    #: Seconds the run had waited by then.
    waited: float = 0.0
    #: The attempts or the total wait ran out.
    exhausted: bool = False
    #: The answer was lost, but ``verify`` showed that ChannelAdvisor carried the request out.
    confirmed: bool = False

    def gave_up_message(self, base_url: str, connection_name: str) -> str:
        """The user message after the retries ran out: the unreachable server named, or the
        last failure with the attempts and the wait."""
        if self.unreachable:
            return outcomes.unreachable_message(
                base_url, connection_name, self.unreachable, self.attempts
            )
        return outcomes.exhausted_message(
            self.resolution, self.status, self.body, self.attempts, self.waited
        )


class TokenOwner(Protocol):
    """What the engine needs of the authenticator to refresh after a 401."""

    def token(self) -> str: ...

    def refresh(self, stale: str | None = None) -> str: ...


class Pausable(Protocol):
    """What the engine needs of the limiter: pause the whole profile after a 429."""

    def pause(self, seconds: float) -> None: ...


@dataclasses.dataclass
class RetryEngine:
    """Sends items until the outcome table says each is done (see the module's text)."""

    #: The attempts and the total wait allowed, and the backoff.
    policy: BackoffPolicy
    #: The request (``POST https://…/v1/$batch``) for error details.
    target: str
    #: The request in a few words (``GET /v1/Products``) for retry notes.
    line: str
    #: Refreshes the token after a 401; without it a 401 is final.
    auth: TokenOwner | None = None
    #: Paused for a 429's wait; without it the engine sleeps.
    limiter: Pausable | None = None

    def run_one(
        self,
        send: Callable[[], Answer],
        *,
        idempotent: bool = True,
        verify: Callable[[], bool] | None = None,
    ) -> Final[None]:
        """Send one request until it is done (see :meth:`run`)."""
        return self.run(
            [None],
            lambda _chunk: [send()],
            idempotent=lambda _item: idempotent,
            verify=(lambda _item: verify()) if verify else None,
        )[0]

    def run(
        self,
        items: Sequence[T],
        send: Callable[[list[T]], list[Answer]],
        *,
        size: Callable[[], int] = lambda: 1,
        idempotent: Callable[[T], bool] = lambda _item: True,
        verify: Callable[[T], bool] | None = None,
        on_round: Callable[[list[Final[T]]], None] | None = None,
        parallel: int = 1,
    ) -> list[Final[T]]:
        """Send every item until it is done; one final answer per item, in order.

        :param send: sends a chunk of items in one round trip; one answer per item.
        :param size: the largest chunk now (the batcher shrinks it after timeouts).
        :param idempotent: whether sending an item twice does the same as once.
        :param verify: for an item that is not idempotent whose answer was lost: True when
            ChannelAdvisor has carried it out after all (asked before any retry).
        :param on_round: called after each round trip with the items done in it.
        :param parallel: round trips in flight at once (a thread pool when more than one);
            answers are handled here, on the caller's thread, as they arrive.
        :raises AuthError: the access token was refused again right after a refresh.
        """
        finals: dict[int, Final[T]] = {}
        sends = [0] * len(items)
        queue: collections.deque[int] = collections.deque(range(len(items)))
        budget = RetryBudget(self.policy)
        refreshed = False
        width = max(1, parallel)
        # Tokens already refreshed from, when rounds overlap (None: one round at a time).
        refreshed_from: set[str | None] | None = set() if width > 1 else None
        sending: dict[concurrent.futures.Future[list[Answer]], tuple[list[int], str | None]] = {}
        with contextlib.ExitStack() as stack:
            pool: concurrent.futures.Executor = (
                stack.enter_context(concurrent.futures.ThreadPoolExecutor(width))
                if width > 1
                else _Inline()
            )
            while queue or sending:
                while queue and len(sending) < width:
                    chunk = [queue.popleft() for _ in range(min(size(), len(queue)))]
                    for index in chunk:
                        sends[index] += 1
                    token_used = self.auth.token() if self.auth else None
                    future = pool.submit(send, [items[i] for i in chunk])
                    sending[future] = (chunk, token_used)
                arrived, _ = concurrent.futures.wait(
                    sending, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in arrived:
                    chunk, token_used = sending.pop(future)
                    refreshed = self._round(
                        items,
                        chunk,
                        future.result(),
                        token_used,
                        sends,
                        finals,
                        queue,
                        budget,
                        refreshed,
                        refreshed_from,
                        idempotent,
                        verify,
                        on_round,
                    )
        return [finals[i] for i in range(len(items))]

    def _round(
        self,
        items: Sequence[T],
        chunk: list[int],
        answers: list[Answer],
        token_used: str | None,
        sends: list[int],
        finals: dict[int, Final[T]],
        queue: collections.deque[int],
        budget: RetryBudget,
        refreshed: bool,
        refreshed_from: set[str | None] | None,
        idempotent: Callable[[T], bool],
        verify: Callable[[T], bool] | None,
        on_round: Callable[[list[Final[T]]], None] | None,
    ) -> bool:
        """Handle one round trip's answers; return whether it led to a token refresh."""
        done: dict[int, Final[T]] = {}
        retry: dict[int, Answer] = {}
        for index, answer in zip(chunk, answers, strict=True):
            final = self._settle(items[index], answer, sends[index], budget, idempotent, verify)
            if final is None:
                retry[index] = answer
            else:
                done[index] = final

        refresh = [a for a in retry.values() if a.resolution.action is Action.REFRESH_THEN_RETRY]
        # A round sent in parallel with the one that led to a refresh carried the same
        # old token: it needs no refresh of its own.
        if refresh and self.auth and not (refreshed_from and token_used in refreshed_from):
            if refreshed:
                raise AuthError(REFRESHED_AGAIN, detail=refresh[0].detail(self.target))
            if refreshed_from is not None:
                refreshed_from.add(token_used)
            self.auth.refresh(stale=token_used)
        refreshed = bool(refresh)

        waiting = {
            i: a for i, a in retry.items() if a.resolution.action is not Action.REFRESH_THEN_RETRY
        }
        wait: float | None = None
        paused = False
        if waiting:
            chosen = self._wait(waiting, sends, budget)
            if chosen is None:
                for index, answer in waiting.items():
                    done[index] = self._final(
                        items[index], answer, sends[index], budget, exhausted=True
                    )
                    del retry[index]
            else:
                wait, paused = chosen

        if on_round:
            on_round(list(done.values()))
        finals.update(done)
        # Failed items go first in the next round.
        queue.extendleft(reversed(list(retry)))
        if wait is not None:
            # One short line: the query (filters with SKUs) and the transport's long text
            # stay in the error's detail.
            failure = next(iter(waiting.values())).failure
            if len(chunk) > 1:
                failure = f"{len(retry)} of {len(chunk)} failed ({failure})"
            attempt = max(sends[i] for i in waiting)
            log.warning(outcomes.retry_note(self.line, failure, attempt, wait))
            budget.consume(wait, sleep=not paused)
        return refreshed

    def _settle(
        self,
        item: T,
        answer: Answer,
        sends: int,
        budget: RetryBudget,
        idempotent: Callable[[T], bool],
        verify: Callable[[T], bool] | None,
    ) -> Final[T] | None:
        """The final answer of an item, or None when it is to be sent again."""
        action = answer.resolution.action
        if not answer.resolution.retriable or (
            action is Action.REFRESH_THEN_RETRY and self.auth is None
        ):
            return self._final(item, answer, sends, budget)
        if answer.resolution.applied_unknown and not idempotent(item):
            if verify is None:
                # Sending it again could apply it twice.
                return self._final(item, answer, sends, budget, outcomes.UNKNOWN_OUTCOME)
            if verify(item):
                log.info(f"{answer.detail(self.target)}: answer lost, found applied")
                success = outcomes.STATUS_TABLE[200]
                return self._final(item, answer, sends, budget, success, confirmed=True)
        if sends >= self.policy.max_attempts:
            return self._final(item, answer, sends, budget, exhausted=True)
        return None

    def _wait(
        self, waiting: Mapping[int, Answer], sends: Sequence[int], budget: RetryBudget
    ) -> tuple[float, bool] | None:
        """The wait before the next round and whether the limiter waits it (a 429), or None
        when the attempts or the total wait are used up."""
        # A Retry-After that ChannelAdvisor asked for wins over an exponential wait, which
        # grows with the most-tried item.
        pick = max(waiting.values(), key=_retry_after_rank)
        most = max(sends[i] for i in waiting)
        wait = budget.next_wait(pick.resolution, pick.headers, attempt=most)
        if wait is None:
            return None
        if pick.resolution.action is Action.RATE_LIMITED and self.limiter is not None:
            # Every request of the profile waits (in the limiter), this one like the others.
            self.limiter.pause(wait)
            return wait, True
        return wait, False

    def _final(
        self,
        item: T,
        answer: Answer,
        sends: int,
        budget: RetryBudget,
        resolution: Resolution | None = None,
        **flags: bool,
    ) -> Final[T]:
        fields = {**vars(answer), "resolution": resolution or answer.resolution}
        return Final(**fields, item=item, attempts=sends, waited=budget.waited, **flags)


def _retry_after_rank(answer: Answer) -> float:
    if answer.resolution.action is Action.RATE_LIMITED:
        return outcomes.retry_after_seconds(answer.headers) or 0.0
    return -1.0


class _Inline(concurrent.futures.Executor):
    """Runs a submitted call at once, on the caller's thread (one round trip at a time)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # raised again by future.result(), as from a thread
            future.set_exception(exc)
        return future
