"""Client-side limits, shared by every operation of the process (reference §5, design §6).

ChannelAdvisor allows 2,000 requests a minute per profile — every part of a ``$batch`` counts,
plus the batch itself — and 5 requests in flight per application. Two registries hold the
state so that every client of the process shares it: the rate window is keyed by
``(base_url, profile_id)``, the in-flight cap by ``(base_url, application_id)``.

Rules:

* a request of ``units`` (1, or parts + 1 for a batch) waits until the units sent in the last
  60 seconds plus its own fit in the limit (a sliding window, so no 60-second span ever holds
  more than the limit, whatever window ChannelAdvisor counts with);
* its units are counted when it is sent AND again from when its answer arrived: ChannelAdvisor
  counts a request when it receives it, and a batch's parts as it works through them, any time
  until it answers; a window that forgot units from the send would free budget up to a round
  trip before ChannelAdvisor does, and the next request would earn a 429;
* it then waits for one of the in-flight slots and holds it until the answer is read;
* a 429 pauses the whole profile for the wait chosen, not only the request that got it;
* token calls (``/oauth2/token``) are not API requests and pass outside the limiter, so a
  refresh never waits behind requests that are themselves waiting for a token.

The limits are constructor arguments (and environment defaults,
``HUB_CHANNELADVISOR_REQUESTS_PER_MINUTE`` / ``HUB_CHANNELADVISOR_MAX_IN_FLIGHT``, and
``HUB_CHANNELADVISOR_RATE_WINDOW_SECONDS`` for the window) independent of the connection
settings, so benchmarks and tests can scale them.

Shared by every process: with ``HUB_REDIS_URL`` set, the same two limits live in Redis
(:class:`RedisRateWindow`, :class:`RedisInFlight`), so every worker and CLI process on every
machine spends one budget per profile and one set of in-flight slots per application. Each
decision is one atomic Lua script using Redis's clock. An in-flight slot is a sorted-set entry
that expires (after the longest a request may take, :data:`SLOT_TTL_SECONDS`), so a killed
worker's slot frees itself. Without ``HUB_REDIS_URL`` the budget is counted per process.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hub_channeladvisor.client import outcomes
from hub_core.errors import ChannelError

REQUESTS_PER_MINUTE = 2000
MAX_IN_FLIGHT = 5
WINDOW_SECONDS = 60.0
REQUESTS_PER_MINUTE_ENV = "HUB_CHANNELADVISOR_REQUESTS_PER_MINUTE"
MAX_IN_FLIGHT_ENV = "HUB_CHANNELADVISOR_MAX_IN_FLIGHT"
WINDOW_ENV = "HUB_CHANNELADVISOR_RATE_WINDOW_SECONDS"
REDIS_URL_ENV = "HUB_REDIS_URL"
#: An in-flight slot nobody released (its process died) frees itself after this long: longer
#: than any request may take (the ``$batch`` read timeout plus the connect timeout).
SLOT_TTL_SECONDS = 200.0
#: How often a request waiting for a shared in-flight slot asks again.
SLOT_POLL_SECONDS = 0.02


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


def _env_float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, ""))
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
        return self.send(units)[1]

    def answered(self, sent: tuple[float, int]) -> None:
        """Count a send (as :meth:`send` returned it) from now, when its answer arrived, so
        that its units leave the window no earlier than ChannelAdvisor's count of them.

        The entry moves to the end of the log with the latest stamp, which keeps the log in
        time order; one already pruned (a request longer than the window) is counted again.
        """
        with self._lock:
            now = self.clock()
            if self._log:
                now = max(now, self._log[-1][0])
            try:
                self._log.remove(sent)
            except ValueError:
                self._used += sent[1]
            self._log.append((now, sent[1]))

    def send(self, units: int = 1) -> tuple[tuple[float, int], float]:
        """:meth:`acquire`, returning the log entry too (for :meth:`answered`)."""
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
                    if self._log:
                        now = max(now, self._log[-1][0])  # a test clock may lag the floor
                    entry = (now, units)
                    self._log.append(entry)
                    self._used += units
                    self.total_units += units
                    self.total_waited += waited
                    return entry, waited
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


def safe_redis_url(url: str) -> str:
    """``url`` with its password hidden (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _redis_failure(url: str, exc: Exception) -> ChannelError:
    return ChannelError(
        f"Cannot reach Redis at {safe_redis_url(url)} ({REDIS_URL_ENV}), which holds the "
        f"ChannelAdvisor rate budget shared by every hub process: {exc.__class__.__name__}: "
        f"{exc}. Start Redis there, or unset {REDIS_URL_ENV} to count the budget per process."
    )


# KEYS: the log of sends (a sorted set of "id:units" scored by time), the units it holds, the
# pause-until time. ARGV: window, limit, units, id. Returns {1, "0"} when counted, else
# {0, seconds to wait}.
_RATE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local units = tonumber(ARGV[3])
local paused = tonumber(redis.call('GET', KEYS[3]) or '0')
if paused > now then
  return {0, tostring(paused - now)}
end
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - window)
if #old > 0 then
  local freed = 0
  for _, member in ipairs(old) do
    freed = freed + tonumber(string.match(member, ':(%d+)$'))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  redis.call('DECRBY', KEYS[2], freed)
end
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
if used + units <= limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. units)
  redis.call('INCRBY', KEYS[2], units)
  local ttl = math.ceil(window * 1000) + 1000
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  return {1, '0'}
end
local need = used + units - limit
local freed = 0
local sent = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #sent, 2 do
  freed = freed + tonumber(string.match(sent[i], ':(%d+)$'))
  if freed >= need then
    return {0, tostring(tonumber(sent[i + 1]) + window - now)}
  end
end
return {0, tostring(window)}
"""

# KEYS: the log of sends. ARGV: the member ("id:units"). Moves a send to now, if still logged.
_TOUCH_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
end
return 1
"""

# KEYS: the pause-until time. ARGV: seconds. Keeps the later of the two pauses.
_PAUSE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > current then
  redis.call('SET', KEYS[1], tostring(until_), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""

# KEYS: the slots (a sorted set of slot ids scored by expiry). ARGV: limit, ttl, id. Returns
# the slots taken (this one included) when it got one, else 0.
_SLOT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local taken = redis.call('ZCARD', KEYS[1])
if taken < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
  return taken + 1
end
return 0
"""


class RedisRateWindow:
    """:class:`RateWindow` kept in Redis: at most ``per_minute`` units in any ``window``
    seconds for every process counting on ``key``."""

    def __init__(
        self,
        client: Any,
        key: str,
        per_minute: int = REQUESTS_PER_MINUTE,
        *,
        url: str = "",
        window: float = WINDOW_SECONDS,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.client = client
        self.key = key
        self.url = url
        self.per_minute = per_minute
        self.window = window
        self._sleep = sleep
        self._rate = client.register_script(_RATE_SCRIPT)
        self._pause = client.register_script(_PAUSE_SCRIPT)
        self._touch = client.register_script(_TOUCH_SCRIPT)
        self._lock = threading.Lock()
        #: Units this process sent so far, and seconds it spent waiting.
        self.total_units = 0
        self.total_waited = 0.0

    @property
    def _keys(self) -> list[str]:
        return [f"{self.key}:log", f"{self.key}:used", f"{self.key}:paused"]

    def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        import redis

        try:
            return script(keys=keys, args=args)
        except redis.exceptions.ConnectionError as exc:
            raise _redis_failure(self.url, exc) from None
        except redis.exceptions.TimeoutError as exc:
            raise _redis_failure(self.url, exc) from None

    def used(self) -> int:
        """Units counted in the current window, by every process."""
        import redis

        keys = self._keys
        try:
            cutoff = float(self.client.time()[0]) - self.window
            pipe = self.client.pipeline()
            pipe.zrangebyscore(keys[0], cutoff, "+inf")
            entries = pipe.execute()[0]
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise _redis_failure(self.url, exc) from None
        return sum(int(e.rsplit(b":", 1)[1]) for e in entries)

    def available(self) -> int:
        """Units that could be sent now without waiting."""
        return max(0, self.per_minute - self.used())

    def pause(self, seconds: float) -> None:
        """Hold every request of the profile, in every process, for ``seconds``."""
        self._call(self._pause, [self._keys[2]], [seconds])

    def try_acquire(self, units: int = 1, send_id: str | None = None) -> float:
        """Count ``units`` if they fit in the shared window now and return 0; else count
        nothing and return the seconds to wait before asking again. ``send_id`` names the
        send for :meth:`answered`."""
        units = max(1, min(units, self.per_minute))
        counted, wait = self._call(
            self._rate,
            self._keys,
            [self.window, self.per_minute, units, send_id or uuid.uuid4().hex],
        )
        if int(counted):
            with self._lock:
                self.total_units += units
            return 0.0
        # The oldest sends leave the window (or the pause ends) by then.
        return min(max(float(wait), 0.001), self.window)

    def answered(self, send_id: str, units: int) -> None:
        """Count a send from the moment its answer arrived: ChannelAdvisor counts a batch's
        parts as it works through them, any time until it answers, so the units stay in the
        window until a whole window after the answer."""
        units = max(1, min(units, self.per_minute))
        self._call(self._touch, [self._keys[0]], [f"{send_id}:{units}"])

    def acquire(self, units: int = 1) -> float:
        """Wait until ``units`` more fit in the shared window, count them, return the wait."""
        sleep = self._sleep or outcomes.sleep
        waited = 0.0
        while wait := self.try_acquire(units):
            sleep(wait)
            waited += wait
        with self._lock:
            self.total_waited += waited
        return waited


class RedisInFlight:
    """:class:`InFlight` kept in Redis: at most ``limit`` requests at once for every process
    using ``key``; a slot expires after ``ttl`` seconds if its holder died."""

    def __init__(
        self,
        client: Any,
        key: str,
        limit: int = MAX_IN_FLIGHT,
        *,
        url: str = "",
        ttl: float = SLOT_TTL_SECONDS,
        poll: float = SLOT_POLL_SECONDS,
    ) -> None:
        self.client = client
        self.key = key
        self.url = url
        self.limit = limit
        self.ttl = ttl
        self.poll = poll
        self._take = client.register_script(_SLOT_SCRIPT)
        self._lock = threading.Lock()
        #: Slots in use (by every process) when this process last took one; the highest seen.
        self.current = 0
        self.peak = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one shared slot while the block runs."""
        import redis

        slot_id = uuid.uuid4().hex
        try:
            while not (
                taken := int(self._take(keys=[self.key], args=[self.limit, self.ttl, slot_id]))
            ):
                time.sleep(self.poll)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise _redis_failure(self.url, exc) from None
        with self._lock:
            self.current = taken
            self.peak = max(self.peak, taken)
        try:
            yield
        finally:
            with contextlib.suppress(redis.exceptions.RedisError):  # it expires anyway
                self.client.zrem(self.key, slot_id)


_REGISTRY_LOCK = threading.Lock()
_REDIS_CLIENTS: dict[str, Any] = {}


def redis_client(url: str) -> Any:
    """One Redis client per URL for the process, checked once: unreachable, a clear error."""
    with _REGISTRY_LOCK:
        client = _REDIS_CLIENTS.get(url)
        if client is not None:
            return client
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
        client.ping()
    except (redis.exceptions.RedisError, ValueError) as exc:
        raise _redis_failure(url, exc) from None
    with _REGISTRY_LOCK:
        return _REDIS_CLIENTS.setdefault(url, client)


class Limiter:
    """The limits one request passes: the profile's rate window, then an in-flight slot."""

    def __init__(
        self,
        requests_per_minute: int = REQUESTS_PER_MINUTE,
        max_in_flight: int = MAX_IN_FLIGHT,
        *,
        rate: RateWindow | RedisRateWindow | None = None,
        in_flight: InFlight | RedisInFlight | None = None,
    ) -> None:
        self.rate: RateWindow | RedisRateWindow = rate or RateWindow(requests_per_minute)
        self.in_flight: InFlight | RedisInFlight = in_flight or InFlight(max_in_flight)

    @contextlib.contextmanager
    def slot(self, units: int = 1) -> Iterator[None]:
        """Count ``units`` against the rate, then hold an in-flight slot during the block;
        when the block ends (the answer is read), count the units again from then."""
        rate = self.rate
        if isinstance(rate, RateWindow):
            sent, _ = rate.send(units)
            try:
                with self.in_flight.slot():
                    yield
            finally:
                rate.answered(sent)
            return
        rate.acquire(units)
        with self.in_flight.slot():
            yield

    def pause(self, seconds: float) -> None:
        """Hold every request of the profile for ``seconds``."""
        self.rate.pause(seconds)


class SharedLimiter(Limiter):
    """The limits kept in Redis, passed in the other order: an in-flight slot first, then the
    rate counted at once, so units are counted when the request really leaves; and counted
    again from when its answer arrived, since ChannelAdvisor may count a batch's parts at any
    moment until it answers.

    (Counted first and then held back behind the slots, a burst would reach ChannelAdvisor
    later than it was counted and meet the next window's burst there.) A request never holds a
    slot while it waits for its profile's rate: it gives the slot back, waits, and tries again.
    """

    rate: RedisRateWindow
    in_flight: RedisInFlight

    def __init__(
        self,
        rate: RedisRateWindow,
        in_flight: RedisInFlight,
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__(rate=rate, in_flight=in_flight)
        self._sleep = sleep

    @contextlib.contextmanager
    def slot(self, units: int = 1) -> Iterator[None]:
        """Hold a shared in-flight slot with ``units`` counted against the shared rate."""
        sleep = self._sleep or outcomes.sleep
        send_id = uuid.uuid4().hex
        while True:
            with self.in_flight.slot():
                wait = self.rate.try_acquire(units, send_id)
                if not wait:
                    try:
                        yield
                    finally:
                        self.rate.answered(send_id, units)
                    return
            sleep(wait)
            with self.rate._lock:
                self.rate.total_waited += wait


_RATES: dict[tuple[str, str, int], RateWindow | RedisRateWindow] = {}
_IN_FLIGHT: dict[tuple[str, str, str], InFlight | RedisInFlight] = {}
#: Redis key prefix of the shared limits.
REDIS_PREFIX = "hub:channeladvisor"


def limiter_for(
    base_url: str,
    profile_id: int,
    application_id: str,
    *,
    requests_per_minute: int | None = None,
    max_in_flight: int | None = None,
) -> Limiter:
    """The limiter of a profile and application (created on first use): shared by every
    process through Redis when ``HUB_REDIS_URL`` is set, else by every client of this process.

    Connections sharing a profile share its budget. Explicit limits replace the current ones,
    so a benchmark can scale them at any time.

    :raises ChannelError: ``HUB_REDIS_URL`` is set but Redis cannot be reached.
    """
    redis_url = os.environ.get(REDIS_URL_ENV, "").strip()
    client = redis_client(redis_url) if redis_url else None
    per_minute = requests_per_minute or _env_int(REQUESTS_PER_MINUTE_ENV, REQUESTS_PER_MINUTE)
    flight_limit = max_in_flight or _env_int(MAX_IN_FLIGHT_ENV, MAX_IN_FLIGHT)
    window = _env_float(WINDOW_ENV, WINDOW_SECONDS)
    with _REGISTRY_LOCK:
        rate = _RATES.get((redis_url, base_url, profile_id))
        if rate is None:
            rate = _RATES[(redis_url, base_url, profile_id)] = (
                RedisRateWindow(
                    client,
                    f"{REDIS_PREFIX}:rate:{base_url}:{profile_id}",
                    per_minute,
                    url=redis_url,
                    window=window,
                )
                if client is not None
                else RateWindow(per_minute, window=window)
            )
        elif requests_per_minute:
            rate.per_minute = requests_per_minute
        flight = _IN_FLIGHT.get((redis_url, base_url, application_id))
        if flight is None:
            flight = _IN_FLIGHT[(redis_url, base_url, application_id)] = (
                RedisInFlight(
                    client,
                    f"{REDIS_PREFIX}:in_flight:{base_url}:{application_id}",
                    flight_limit,
                    url=redis_url,
                )
                if client is not None
                else InFlight(flight_limit)
            )
        elif max_in_flight:
            flight.limit = max_in_flight
    if isinstance(rate, RedisRateWindow) and isinstance(flight, RedisInFlight):
        return SharedLimiter(rate, flight)
    return Limiter(rate=rate, in_flight=flight)  # type: ignore[arg-type]


def reset_registry() -> None:
    """Forget every shared limiter and Redis client of this process (tests)."""
    with _REGISTRY_LOCK:
        _RATES.clear()
        _IN_FLIGHT.clear()
        _REDIS_CLIENTS.clear()
