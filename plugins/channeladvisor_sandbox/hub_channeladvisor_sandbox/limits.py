"""Request limits of the real service (reference §5): requests per minute per profile in a
sliding window, and concurrent requests per application.

The 429 answer is `{"Message": "Too Many Requests"}` with `Retry-After: <seconds>` (the
seconds until enough budget frees up; 1 for the in-flight limit). No source documents
either (reference §5, UNCERTAIN): the body follows SV's fixture, and Retry-After can be
switched off (`retry_after=False`) because the real service may not send it.

The token endpoint is outside both limits. Limits are read from the sandbox's configuration
on every call, so a benchmark can change them at run time (and shrink the 60 s window to
scale time). A refused request consumes no budget (otherwise a client that keeps
retrying could never get through) and never enters the in-flight count.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any


class RateLimiter:
    """At most `limit` units per `window` seconds per key (a profile id), sliding window."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._events: dict[Any, deque[tuple[float, int]]] = {}
        self._used: dict[Any, int] = {}

    def try_acquire(self, key: Any, units: int, limit: int, window: float) -> tuple[bool, float]:
        """Take `units` from the key's budget: (True, 0) or (False, seconds to wait)."""
        now = self.clock()
        with self._lock:
            events = self._events.setdefault(key, deque())
            used = self._used.get(key, 0)
            while events and events[0][0] <= now - window:
                used -= events.popleft()[1]
            if used + units > limit:
                self._used[key] = used
                # Wait until enough of the oldest units leave the window.
                need = used + units - limit
                wait = window
                for stamp, count in events:
                    need -= count
                    if need <= 0:
                        wait = stamp + window - now
                        break
                return False, max(wait, 0.0)
            events.append((now, units))
            self._used[key] = used + units
            return True, 0.0

    def usage(self, key: Any, window: float) -> int:
        """Units the key has spent within the current window."""
        now = self.clock()
        with self._lock:
            events = self._events.get(key)
            if not events:
                return 0
            return sum(count for stamp, count in events if stamp > now - window)

    def reset(self) -> None:
        """Forget all spent budget."""
        with self._lock:
            self._events.clear()
            self._used.clear()


def retry_after_seconds(wait: float) -> str:
    """A Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait)))


class InFlightLimiter:
    """At most `limit` concurrent requests per key (an application id)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[str, int] = {}
        self._attempts: dict[str, int] = {}
        self.max_admitted: dict[str, int] = {}
        self.max_attempted: dict[str, int] = {}

    def try_enter(self, key: str, limit: int) -> bool:
        """Admit a request unless `limit` are already in flight for the key."""
        with self._lock:
            attempts = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempts
            self.max_attempted[key] = max(self.max_attempted.get(key, 0), attempts)
            current = self._current.get(key, 0)
            if current >= limit:
                self._attempts[key] = attempts - 1
                return False
            self._current[key] = current + 1
            self.max_admitted[key] = max(self.max_admitted.get(key, 0), current + 1)
            return True

    def leave(self, key: str) -> None:
        """A request admitted by `try_enter` has finished."""
        with self._lock:
            self._current[key] = max(0, self._current.get(key, 0) - 1)
            self._attempts[key] = max(0, self._attempts.get(key, 0) - 1)

    def current(self, key: str) -> int:
        """Requests of the key in flight right now."""
        with self._lock:
            return self._current.get(key, 0)

    def reset_peaks(self) -> None:
        """Forget the observed maxima (the log reset does this)."""
        with self._lock:
            self.max_admitted = {k: v for k, v in self._current.items() if v}
            self.max_attempted = {k: v for k, v in self._attempts.items() if v}
