"""Client-side limits, shared by every operation of the process (reference §5, design §6).

ChannelAdvisor allows 2,000 requests a minute per profile — every part of a ``$batch`` counts,
plus the batch itself — and 5 requests in flight per application. Two registries hold the
state so that every client of the process shares it: the rate window is keyed by
``(base_url, profile_id)``, the in-flight cap by ``(base_url, application_id)``.

Rules:

* a request of ``units`` (1, or parts + 1 for a batch) waits until the units sent in the last
  60 seconds plus its own fit in the limit (a sliding window, so no 60-second span ever holds
  more than the limit, whatever window ChannelAdvisor counts with);
* it then waits for one of the in-flight slots and holds it until the answer is read;
* a 429 pauses the whole profile for the wait chosen, not only the request that got it;
* token calls (``/oauth2/token``) are not API requests and pass outside the limiter, so a
  refresh never waits behind requests that are themselves waiting for a token.

The limits are constructor arguments (and environment defaults,
``HUB_CHANNELADVISOR_REQUESTS_PER_MINUTE`` / ``HUB_CHANNELADVISOR_MAX_IN_FLIGHT``) independent of
the connection settings, so benchmarks can scale them.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator

from hub_channeladvisor.client import outcomes

REQUESTS_PER_MINUTE = 2000
MAX_IN_FLIGHT = 5
WINDOW_SECONDS = 60.0
REQUESTS_PER_MINUTE_ENV = "HUB_CHANNELADVISOR_REQUESTS_PER_MINUTE"
MAX_IN_FLIGHT_ENV = "HUB_CHANNELADVISOR_MAX_IN_FLIGHT"


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


class RateWindow:
    """At most ``per_minute`` units in any ``window`` seconds (a sliding log of sends)."""

    def __init__(
        self,
        per_minute: int = REQUESTS_PER_MINUTE,
        *,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.per_minute = per_minute
        self.window = window
        self.clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._log: collections.deque[tuple[float, int]] = collections.deque()
        self._used = 0
        self._paused_until = 0.0
        #: Units sent so far, and seconds spent waiting (for tests and benchmarks).
        self.total_units = 0
        self.total_waited = 0.0

    def _prune(self, now: float) -> None:
        while self._log and self._log[0][0] <= now - self.window:
            _, units = self._log.popleft()
            self._used -= units

    def used(self) -> int:
        """Units counted in the current window."""
        with self._lock:
            self._prune(self.clock())
            return self._used

    def available(self) -> int:
        """Units that could be sent now without waiting."""
        return max(0, self.per_minute - self.used())

    def pause(self, seconds: float) -> None:
        """Hold every request of the profile for ``seconds`` (after a 429)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock() + seconds)

    def acquire(self, units: int = 1) -> float:
        """Wait until ``units`` more fit in the window, count them, and return the wait."""
        units = max(1, min(units, self.per_minute))
        sleep = self._sleep or outcomes.sleep
        with self._lock:
            pause = self._paused_until - self.clock()
        # A pause (after a 429) is waited out once, by every request that meets it.
        waited = pause if pause > 0 else 0.0
        if waited:
            sleep(waited)
        # After sleeping s seconds, at least s seconds have passed, whatever the clock says (a
        # test's sleep does not move it): never compute the same wait twice.
        floor = self.clock() + waited
        while True:
            with self._lock:
                now = max(self.clock(), floor)
                self._prune(now)
                if self._used + units <= self.per_minute:
                    self._log.append((now, units))
                    self._used += units
                    self.total_units += units
                    self.total_waited += waited
                    return waited
                # Wait until enough of the oldest sends leave the window.
                need = self._used + units - self.per_minute
                freed = 0
                wait = 0.0
                for sent_at, sent_units in self._log:
                    freed += sent_units
                    wait = sent_at + self.window - now
                    if freed >= need:
                        break
            wait = max(wait, 0.001)
            sleep(wait)
            waited += wait
            floor = now + wait


class InFlight:
    """At most ``limit`` requests at once; remembers the highest number reached."""

    def __init__(self, limit: int = MAX_IN_FLIGHT) -> None:
        self.limit = limit
        self._cond = threading.Condition()
        self.current = 0
        self.peak = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one slot while the block runs."""
        with self._cond:
            while self.current >= self.limit:
                self._cond.wait()
            self.current += 1
            self.peak = max(self.peak, self.current)
        try:
            yield
        finally:
            with self._cond:
                self.current -= 1
                self._cond.notify()


class Limiter:
    """The limits one request passes: the profile's rate window, then an in-flight slot."""

    def __init__(
        self,
        requests_per_minute: int = REQUESTS_PER_MINUTE,
        max_in_flight: int = MAX_IN_FLIGHT,
        *,
        rate: RateWindow | None = None,
        in_flight: InFlight | None = None,
    ) -> None:
        self.rate = rate or RateWindow(requests_per_minute)
        self.in_flight = in_flight or InFlight(max_in_flight)

    @contextlib.contextmanager
    def slot(self, units: int = 1) -> Iterator[None]:
        """Count ``units`` against the rate, then hold an in-flight slot during the block."""
        self.rate.acquire(units)
        with self.in_flight.slot():
            yield

    def pause(self, seconds: float) -> None:
        """Hold every request of the profile for ``seconds``."""
        self.rate.pause(seconds)


_REGISTRY_LOCK = threading.Lock()
_RATES: dict[tuple[str, int], RateWindow] = {}
_IN_FLIGHT: dict[tuple[str, str], InFlight] = {}


def limiter_for(
    base_url: str,
    profile_id: int,
    application_id: str,
    *,
    requests_per_minute: int | None = None,
    max_in_flight: int | None = None,
) -> Limiter:
    """The process-wide limiter of a profile and application (created on first use).

    Explicit limits replace the current ones, so a benchmark can scale them at any time.
    """
    with _REGISTRY_LOCK:
        rate = _RATES.get((base_url, profile_id))
        if rate is None:
            rate = _RATES[(base_url, profile_id)] = RateWindow(
                requests_per_minute or _env_int(REQUESTS_PER_MINUTE_ENV, REQUESTS_PER_MINUTE)
            )
        elif requests_per_minute:
            rate.per_minute = requests_per_minute
        flight = _IN_FLIGHT.get((base_url, application_id))
        if flight is None:
            flight = _IN_FLIGHT[(base_url, application_id)] = InFlight(
                max_in_flight or _env_int(MAX_IN_FLIGHT_ENV, MAX_IN_FLIGHT)
            )
        elif max_in_flight:
            flight.limit = max_in_flight
    return Limiter(rate=rate, in_flight=flight)


def reset_registry() -> None:
    """Forget every shared limiter (tests)."""
    with _REGISTRY_LOCK:
        _RATES.clear()
        _IN_FLIGHT.clear()
